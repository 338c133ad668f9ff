#!/usr/bin/env bash
# Builds the real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) and etcd from their published Go modules into a cache folder
# outside the repository, keyed by version. Later runs reuse the cache.
#
# k8s.io/kubernetes cannot be `go install`ed: the wrapper module in lib/kube-wrapper.sh
# (shared with build-node.sh, which builds the kubelet) pins its staging modules instead.
set -euo pipefail

# shellcheck source=lib/kube-wrapper.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/kube-wrapper.sh"

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${MS2M_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ms2m}"
# One build at a time (setup and a test may both ask): the second waits, then finds it built.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build-kube.lock"
flock 9
KUBE_BIN="$CACHE_ROOT/kube-$KUBE_VERSION/bin"
ETCD_BIN="$CACHE_ROOT/etcd-$ETCD_VERSION/bin"

log() { echo "[build-kube] $*" >&2; }

build_kube() {
  if [[ -x "$KUBE_BIN/kube-apiserver" && -x "$KUBE_BIN/kube-controller-manager" \
     && -x "$KUBE_BIN/kube-scheduler" && -x "$KUBE_BIN/kubectl" ]]; then
    return 0
  fi
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building Kubernetes $KUBE_VERSION (cold builds take several minutes)"
  kube_wrapper_module "$work" "$KUBE_VERSION" ms2m.local/kubebuild \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  local ldflags; ldflags="$(kube_version_ldflags "$KUBE_VERSION")"
  mkdir -p "$KUBE_BIN.tmp"
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$KUBE_BIN.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$KUBE_BIN"; mv "$KUBE_BIN.tmp" "$KUBE_BIN"
}

build_etcd() {
  if [[ -x "$ETCD_BIN/etcd" ]]; then return 0; fi
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building etcd $ETCD_VERSION"
  # etcd's server module replaces its sibling modules with relative paths; pin them instead.
  cat > "$work/go.mod" <<GOMOD
module ms2m.local/etcdbuild

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
GOMOD
  (cd "$work" && GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  mkdir -p "$ETCD_BIN.tmp"
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$ETCD_BIN"; mv "$ETCD_BIN.tmp" "$ETCD_BIN"
}

build_etcd
build_kube
echo "KUBE_BIN=$KUBE_BIN"
echo "ETCD_BIN=$ETCD_BIN"
