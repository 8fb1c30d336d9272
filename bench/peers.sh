#!/usr/bin/env bash
# Makes sure the peer clients the benchmarks compare against are built:
# the ORAS CLI 1.3.6, regctl 0.11.7 and crane 0.22.1 (and helm 3.21.4, for the
# chart's tests, and cosign 3.1.3 and 2.6.5, for the signature tests), from
# their Go modules, into $(go env GOPATH)/bin (cosign 2 into its cosign2/
# directory, beside cosign 3). Builds only what is missing or at another
# version. Prints shell assignments for the callers to eval:
#
#   eval "$(bench/peers.sh)"     # sets oras=, regctl=, crane=, helm=, cosign= and cosign2=
set -euo pipefail
ORAS_VERSION=1.3.6
REGCTL_VERSION=0.11.7
CRANE_VERSION=0.22.1
HELM_VERSION=3.21.4
COSIGN_VERSION=3.1.3
COSIGN2_VERSION=2.6.5

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
# cosign, like helm, is asked for its module's version.
module_version() {
  go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }' || true
}
cosign="$gobin/cosign"
if [ "$(module_version "$cosign" github.com/sigstore/cosign/v3)" != "v$COSIGN_VERSION" ]; then
  echo "building cosign $COSIGN_VERSION (about 2.5 min)" >&2
  GOFLAGS=-mod=mod go install "github.com/sigstore/cosign/v3/cmd/cosign@v$COSIGN_VERSION" >&2
fi
cosign2="$gobin/cosign2/cosign"
if [ "$(module_version "$cosign2" github.com/sigstore/cosign/v2)" != "v$COSIGN2_VERSION" ]; then
  echo "building cosign $COSIGN2_VERSION (about 2.3 min)" >&2
  GOBIN="$gobin/cosign2" GOFLAGS=-mod=mod go install "github.com/sigstore/cosign/v2/cmd/cosign@v$COSIGN2_VERSION" >&2
fi
printf 'oras=%q\nregctl=%q\ncrane=%q\nhelm=%q\ncosign=%q\ncosign2=%q\n' \
  "$oras" "$regctl" "$crane" "$helm" "$cosign" "$cosign2"
