#!/usr/bin/env bash
# Builds Helm from its published Go module (helm.sh/helm/v4, no replace directives: a plain
# module build) into a cache folder outside the repository, keyed by version, as build-kube.sh
# does for Kubernetes. Later runs reuse the cache. The chart (charts/ms2m) is linted, rendered
# and installed with it by the tests (tooling/helm.ts finds it).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
CACHE_ROOT="${MS2M_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ms2m}"
# One build at a time (setup and a test may both ask): the second waits, then finds it built.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build-helm.lock"
flock 9
HELM_BIN="$CACHE_ROOT/helm-$HELM_VERSION/bin"

log() { echo "[build-helm] $*" >&2; }

build_helm() {
  if [[ -x "$HELM_BIN/helm" ]]; then return 0; fi
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building Helm $HELM_VERSION (a cold build takes a few minutes)"
  local major="${HELM_VERSION%%.*}"
  local module="helm.sh/helm/$major"
  cat > "$work/go.mod" <<GOMOD
module ms2m.local/helmbuild

go 1.26

require $module $HELM_VERSION
GOMOD
  (cd "$work" && GOFLAGS=-mod=mod go get "$module/cmd/helm@$HELM_VERSION" >/dev/null)
  # As Helm's own Makefile: the version, without git metadata (a module has none).
  local ldflags="-s -w -X $module/internal/version.version=$HELM_VERSION -X $module/internal/version.gitTreeState=clean"
  mkdir -p "$HELM_BIN.tmp"
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$HELM_BIN.tmp/helm" "$module/cmd/helm")
  rm -rf "$HELM_BIN"; mv "$HELM_BIN.tmp" "$HELM_BIN"
}

build_helm
echo "HELM_BIN=$HELM_BIN"
