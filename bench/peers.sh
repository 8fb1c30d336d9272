#!/usr/bin/env bash
# Makes sure the peer clients the benchmarks compare against are built:
# the ORAS CLI 1.3.6, regctl 0.11.7 and crane 0.22.1 (and helm 3.21.4, for the
# chart's tests), from their Go modules, into
# $(go env GOPATH)/bin. Builds only what is missing or at another version.
# Prints shell assignments for the callers to eval:
#
#   eval "$(bench/peers.sh)"     # sets oras=, regctl=, crane= and helm= to their paths
set -euo pipefail
ORAS_VERSION=1.3.6
REGCTL_VERSION=0.11.7
CRANE_VERSION=0.22.1
HELM_VERSION=3.21.4

command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || { echo "needs Go 1.26 (with the Go module proxy)" >&2; exit 1; }
command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"

oras="$gobin/oras"
# Captured first: with pipefail, `grep -q` closing the pipe early would fail it.
have="$("$oras" version 2>/dev/null || true)"
if ! grep -q "^Version: *$ORAS_VERSION\$" <<<"$have"; then
  echo "building oras $ORAS_VERSION (about 25 s)" >&2
  GOFLAGS=-mod=mod go install "oras.land/oras/cmd/oras@v$ORAS_VERSION" >&2
fi
regctl="$gobin/regctl"
have="$("$regctl" version --format '{{.VCSTag}}' 2>/dev/null || true)"
if [ "$have" != "v$REGCTL_VERSION" ]; then
  echo "building regctl $REGCTL_VERSION" >&2
  GOFLAGS=-mod=mod go install "github.com/regclient/regclient/cmd/regctl@v$REGCTL_VERSION" >&2
fi
crane="$gobin/crane"
have="$("$crane" version 2>/dev/null || true)"
if [ "$have" != "$CRANE_VERSION" ] && [ "$have" != "v$CRANE_VERSION" ]; then
  echo "building crane $CRANE_VERSION" >&2
  GOFLAGS=-mod=mod go install "github.com/google/go-containerregistry/cmd/crane@v$CRANE_VERSION" >&2
fi
helm="$gobin/helm"
# helm built by go install reports only v3.21: ask the binary's module.
have="$(go version -m "$helm" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" { print $3 }' || true)"
if [ "$have" != "v$HELM_VERSION" ]; then
  echo "building helm $HELM_VERSION" >&2
  GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" >&2
fi
printf 'oras=%q\nregctl=%q\ncrane=%q\nhelm=%q\n' "$oras" "$regctl" "$crane" "$helm"
