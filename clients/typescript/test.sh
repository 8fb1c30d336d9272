#!/usr/bin/env bash
# Installs the pinned dependencies (package-lock.json) from the npm registry,
# builds with tsc and runs the live tests (node --test), which start and stop
# ../testenv.sh themselves. Needs Node >= 20, the workspace's satcheld built
# and docker-registry installed.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm test
