#!/usr/bin/env bash
# Runs the Java client's tests against a live registry and satcheld
# (started and stopped by the tests through ../testenv.sh). Maven fetches
# every dependency, protoc and protoc-gen-grpc-java from Maven Central.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
  apt-get update
  apt-get install -y --no-install-recommends maven openjdk-17-jdk-headless
fi

exec mvn -B --no-transfer-progress test "$@"
