#!/usr/bin/env bash
# Installs the Go client's dependencies (from the Go module proxy) and runs
# its checks and tests. The tests start their own registry and satcheld
# through ../testenv.sh, which needs docker-registry and a built satcheld.
set -euo pipefail
cd "$(dirname "$0")"
command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH

go mod download
go mod verify

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -count=1 -v ./...
