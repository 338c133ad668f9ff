#!/usr/bin/env bash
# Builds everything a real worker node needs into the cache folder that build-kube.sh uses,
# keyed by version; later runs reuse it (a no-op in well under a second):
#   kubelet    from k8s.io/kubernetes (same wrapper module as the control plane)
#   crio,pinns from github.com/cri-o/cri-o (no Debian release packages it)
#   crictl     from sigs.k8s.io/cri-tools
#   criu       Debian sid's packages unpacked privately, run with sid's own glibc loader
#   pause      a tiny static binary packed as a one-layer OCI image layout
# plus the Debian packages the nodes use (runc, conmon, CNI plugins, ...).
# Prints KEY=path lines at the end: KUBELET, CRIO, PINNS, CRICTL, CRIU (the wrapper),
# CRIU_CONFIG, PAUSE_OCI. See shared/reference/REAL-RUNTIME.md for why each choice was made.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/kube-wrapper.sh
source "$HERE/lib/kube-wrapper.sh"

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
CRIO_VERSION="${CRIO_VERSION:-v1.36.1}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.36.0}"
# Debian sid moves: the upstream part of the version it serves must match this (the cache
# folder is keyed by it); when sid moves on, the build stops and says what to set.
CRIU_VERSION="${CRIU_VERSION:-4.2.1}"
# Bump when the image's layout changes; a changed pause.c is rebuilt anyway (stamp below).
PAUSE_VERSION=1
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SYSTEM_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# Keyring that verifies sid first; the fallback below fetches a newer one when it cannot.
CRIU_APT_KEYRING="${CRIU_APT_KEYRING:-$SYSTEM_KEYRING}"

CACHE_ROOT="${MS2M_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ms2m}"
KUBELET_BIN="$CACHE_ROOT/kubelet-$KUBE_VERSION/bin"
CRIO_BIN="$CACHE_ROOT/crio-$CRIO_VERSION/bin"
CRICTL_BIN="$CACHE_ROOT/crictl-$CRICTL_VERSION/bin"
CRIU_DIR="$CACHE_ROOT/criu-$CRIU_VERSION"
PAUSE_DIR="$CACHE_ROOT/pause-$PAUSE_VERSION"

# cri-o v1.36 asks for k8s.io/* v0.36.0-rc.0, which the proxy refuses: use the staging
# release that matches the kubelet instead.
CRIO_STAGING_VERSION="${CRIO_STAGING_VERSION:-v0.${KUBE_VERSION#v1.}}"
CRIO_BUILDTAGS="containers_image_openpgp containers_image_ostree_stub exclude_graphdriver_btrfs exclude_graphdriver_devicemapper seccomp"

# libc6-dev: gcc only recommends it, and pinns and pause link statically against libc.a.
NODE_PACKAGES=(runc conmon containernetworking-plugins libseccomp-dev libc6-dev pkg-config gcc make
  iptables buildah mmdebstrap umoci skopeo)

# Go builds share 2 cores with everything else on the machine.
NICE=(nice -n 10)

log() { echo "[build-node] $*" >&2; }
die() { echo "[build-node] ERROR: $*" >&2; exit 1; }

# Scratch directories, removed on exit whether the build worked or not.
WORKDIRS=()
trap '[[ ${#WORKDIRS[@]} -eq 0 ]] || rm -rf "${WORKDIRS[@]}"' EXIT
new_work() { WORK="$(mktemp -d)"; WORKDIRS+=("$WORK"); }

ensure_node_packages() {
  local installed missing=() p
  installed=" $(dpkg-query -W -f='${Package}:${db:Status-Status} ' "${NODE_PACKAGES[@]}" 2>/dev/null || true)"
  for p in "${NODE_PACKAGES[@]}"; do
    [[ "$installed" == *" $p:installed "* ]] || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

build_kubelet() {
  if [[ -x "$KUBELET_BIN/kubelet" ]]; then return 0; fi
  local work t0=$SECONDS; new_work; work="$WORK"
  log "building kubelet $KUBE_VERSION"
  kube_wrapper_module "$work" "$KUBE_VERSION" ms2m.local/kubeletbuild k8s.io/kubernetes/cmd/kubelet
  local ldflags; ldflags="$(kube_version_ldflags "$KUBE_VERSION")"
  rm -rf "$KUBELET_BIN.tmp"; mkdir -p "$KUBELET_BIN.tmp"
  # Static like upstream's release kubelet (it shares the control plane's build cache).
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod "${NICE[@]}" go build -trimpath -ldflags "$ldflags" \
      -o "$KUBELET_BIN.tmp/kubelet" k8s.io/kubernetes/cmd/kubelet)
  rm -rf "$KUBELET_BIN"; mv "$KUBELET_BIN.tmp" "$KUBELET_BIN"
  log "kubelet $KUBE_VERSION built in $((SECONDS - t0)) s"
}

# With cri-api v0.36.3 the CRI KeyValue.Value is []byte: cri-o's env merging concatenates it
# to a string. string() of a string is also valid Go, so the patch is safe on either API.
patch_crio_source() {
  local file="$1/server/utils.go"
  local old='item.GetKey()+"="+item.GetValue())' new='item.GetKey()+"="+string(item.GetValue()))'
  local count; count="$(grep -cF "$old" "$file" || true)"
  if [[ "$count" != 1 ]]; then
    die "cri-o $CRIO_VERSION: expected exactly one line containing '$old' in server/utils.go, found $count; the patch in hack/build-node.sh (patch_crio_source) needs updating"
  fi
  sed -i 's/item\.GetKey()+"="+item\.GetValue())/item.GetKey()+"="+string(item.GetValue()))/' "$file"
  grep -qF "$new" "$file" || die "cri-o $CRIO_VERSION: patching server/utils.go failed"
}

build_crio() {
  if [[ -x "$CRIO_BIN/crio" && -x "$CRIO_BIN/pinns" ]]; then return 0; fi
  local work t0=$SECONDS; new_work; work="$WORK"
  log "building cri-o $CRIO_VERSION with k8s.io staging modules $CRIO_STAGING_VERSION (cold builds take several minutes)"
  local json moddir info
  json="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/cri-o/cri-o@$CRIO_VERSION")"
  moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")"
  info="$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p' <<<"$json")"
  [[ -d "$moddir" && -f "$info" ]] || die "go mod download github.com/cri-o/cri-o@$CRIO_VERSION gave no module directory"
  # The module cache is read-only and must stay pristine: patch a private copy.
  local src="$work/cri-o"
  cp -r "$moddir" "$src"; chmod -R u+w "$src"
  patch_crio_source "$src"
  local minor="${CRIO_STAGING_VERSION#v0.}"; minor="${minor%%.*}"
  local staging=() m
  mapfile -t staging < <(grep -E "^[[:space:]]*k8s\.io/[a-z0-9-]+ v0\.$minor\." "$src/go.mod" | awk '{print $1}' | sort -u)
  [[ ${#staging[@]} -gt 0 ]] || die "cri-o $CRIO_VERSION: no k8s.io staging modules v0.$minor.* found in its go.mod"
  local edits=()
  for m in "${staging[@]}"; do edits+=("-replace=$m=$m@$CRIO_STAGING_VERSION"); done
  (cd "$src" && go mod edit "${edits[@]}")
  # Same version stamp as cri-o's Makefile (commit and date of the release tag).
  local commit date
  commit="$(sed -n 's/.*"Hash":"\([0-9a-f]*\)".*/\1/p' "$info")"
  date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")"
  local ldflags="-s -w -X github.com/cri-o/cri-o/internal/version.buildCommit=$commit"
  ldflags+=" -X github.com/cri-o/cri-o/internal/version.buildDate=$date"
  rm -rf "$CRIO_BIN.tmp"; mkdir -p "$CRIO_BIN.tmp"
  # seccomp needs cgo and libseccomp-dev.
  (cd "$src" && CGO_ENABLED=1 GOFLAGS=-mod=mod "${NICE[@]}" go build -trimpath -tags "$CRIO_BUILDTAGS" \
      -ldflags "$ldflags" -o "$CRIO_BIN.tmp/crio" ./cmd/crio)
  # pinns: cri-o's own C helper that pins namespaces; its Makefile links it statically.
  "${NICE[@]}" make -s -C "$src/pinns" >/dev/null
  cp "$src/bin/pinns" "$CRIO_BIN.tmp/pinns"
  rm -rf "$CRIO_BIN"; mv "$CRIO_BIN.tmp" "$CRIO_BIN"
  log "cri-o $CRIO_VERSION built in $((SECONDS - t0)) s"
}

build_crictl() {
  if [[ -x "$CRICTL_BIN/crictl" ]]; then return 0; fi
  local work t0=$SECONDS; new_work; work="$WORK"
  log "building crictl $CRICTL_VERSION"
  rm -rf "$CRICTL_BIN.tmp"; mkdir -p "$CRICTL_BIN.tmp"
  # cri-tools' go.mod has no replace directives: it installs as published.
  (cd "$work" && CGO_ENABLED=0 GOBIN="$CRICTL_BIN.tmp" "${NICE[@]}" go install -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
      "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION")
  rm -rf "$CRICTL_BIN"; mv "$CRICTL_BIN.tmp" "$CRICTL_BIN"
  log "crictl $CRICTL_VERSION built in $((SECONDS - t0)) s"
}

# papt DIR CMD ARGS...: apt-get/apt-cache on a private configuration in DIR (own sources,
# lists, cache and an empty dpkg status), so nothing of the system's apt state is read or
# changed. Sandbox user root: the cache lives under root's home, which _apt cannot enter.
papt() {
  local dir="$1" cmd="$2"; shift 2
  "$cmd" -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
    -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" -o Dir::State::Status="$dir/status" \
    -o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Acquire::Languages=none \
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false -o APT::Sandbox::User=root \
    "$@"
}

# papt_init DIR SUITE KEYRING: a private apt for one suite, verified with KEYRING.
papt_init() {
  local dir="$1" suite="$2" keyring="$3"
  rm -rf "$dir"; mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  : > "$dir/status"
  echo "deb [signed-by=$keyring] $DEBIAN_MIRROR $suite main" > "$dir/sources.list"
  papt "$dir" apt-get update -qq >"$dir/update.log" 2>&1
}

# sid_keyring WORK: sets up the private apt for sid in WORK/apt-sid and SID_KEYRING to the
# keyring that verified it (SID_KEYRING_NOTE says where that came from). The system's
# keyring does while Debian signs sid with a key it holds; once sid is signed only with
# newer keys, take debian-archive-keyring from stable, whose index the system's keyring
# still verifies (a chain of signatures, not a switched-off check).
sid_keyring() {
  local work="$1"
  SID_KEYRING="$CRIU_APT_KEYRING"; SID_KEYRING_NOTE="$CRIU_APT_KEYRING"
  if papt_init "$work/apt-sid" sid "$SID_KEYRING"; then return 0; fi
  log "sid's index does not verify with $CRIU_APT_KEYRING:"; sed 's/^/    /' "$work/apt-sid/update.log" >&2
  log "fetching a newer debian-archive-keyring from stable (verified with $SYSTEM_KEYRING)"
  papt_init "$work/apt-stable" stable "$SYSTEM_KEYRING" \
    || { cat "$work/apt-stable/update.log" >&2; die "cannot verify Debian stable either: update the system's debian-archive-keyring package"; }
  mkdir -p "$work/keyring-deb" "$work/keyring"
  (cd "$work/keyring-deb" && papt "$work/apt-stable" apt-get download -qq debian-archive-keyring) >&2
  local deb; deb="$(echo "$work"/keyring-deb/debian-archive-keyring_*.deb)"
  dpkg -x "$deb" "$work/keyring"
  SID_KEYRING="$work/keyring/usr/share/keyrings/debian-archive-keyring.gpg"
  SID_KEYRING_NOTE="debian-archive-keyring $(dpkg-deb -f "$deb" Version) from Debian stable"
  [[ -f "$SID_KEYRING" ]] || die "debian-archive-keyring from stable has no $SID_KEYRING"
  papt_init "$work/apt-sid" sid "$SID_KEYRING" \
    || { cat "$work/apt-sid/update.log" >&2; die "sid's index does not verify with stable's debian-archive-keyring either"; }
}

criu_wrapper() {
  cat <<'SH'
#!/bin/sh
# CRIU from Debian sid, run with sid's own glibc loader and libraries (bookworm's glibc is too
# old for it, and bookworm's criu 3.17 cannot handle this kernel). Made by hack/build-node.sh.
# Tests make one node's checkpoints fail by creating this file: /run/crio is per node (each
# node has its own mount namespace).
if [ -e /run/crio/ms2m-fault-criu ]; then
  echo 'ms2m injected fault: criu refused (remove /run/crio/ms2m-fault-criu)' >&2
  exit 1
fi
self=$(readlink -f "$0")
top=${self%/*}; top=${top%/*}
root=$top/root
# Without it every dump hangs at "Waiting for PID to trap" on these VMs: the hardware
# breakpoint criu sets never fires in the guest.
export CRIU_FAULT=130
# The kubelet's checkpoint API passes no CRIU options; established TCP connections need
# tcp-established (criu reads this file in RPC mode too).
export CRIU_CONFIG_FILE="${CRIU_CONFIG_FILE:-$top/etc/criu.conf}"
lib=$root/usr/lib/x86_64-linux-gnu
exec "$lib/ld-linux-x86-64.so.2" --argv0 "$0" --library-path "$lib:$root/lib/x86_64-linux-gnu" \
  "$root/usr/sbin/criu" "$@"
SH
}

build_criu() {
  if [[ -x "$CRIU_DIR/bin/criu" && -f "$CRIU_DIR/VERSIONS" ]]; then return 0; fi
  [[ "$(uname -m)" == x86_64 ]] || die "the private criu is set up for x86_64 only"
  local work t0=$SECONDS; new_work; work="$WORK"
  log "fetching criu $CRIU_VERSION from Debian sid (private apt, unpacked, not installed)"
  sid_keyring "$work"
  local apt="$work/apt-sid"
  local candidate upstream
  candidate="$(papt "$apt" apt-cache policy criu | awk '/Candidate:/ {print $2}')"
  [[ -n "$candidate" && "$candidate" != "(none)" ]] || die "Debian sid has no criu package"
  upstream="${candidate#*:}"; upstream="${upstream%-*}"
  if [[ "$upstream" != "$CRIU_VERSION" ]]; then
    die "Debian sid now has criu $candidate, not $CRIU_VERSION: run with CRIU_VERSION=$upstream (and update the default in hack/build-node.sh once it is tested)"
  fi
  # criu and its whole Depends/Pre-Depends closure, sid's libc6 included: the binary must
  # run on sid's own loader and libraries.
  local pkgs=()
  mapfile -t pkgs < <(papt "$apt" apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances criu | grep -v '^[[:space:]<]' | sort -u)
  [[ " ${pkgs[*]} " == *" libc6 "* ]] || die "criu's dependency closure from sid lacks libc6: ${pkgs[*]}"
  mkdir -p "$work/debs"
  (cd "$work/debs" && papt "$apt" apt-get download -qq "${pkgs[@]}") >&2
  local tmp="$CRIU_DIR.tmp" deb
  rm -rf "$tmp"; mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/root"
  {
    echo "criu $candidate from Debian sid ($DEBIAN_MIRROR), fetched $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "sid index: $(grep -m1 '^Date:' "$apt"/lists/*_dists_sid_InRelease), verified with $SID_KEYRING_NOTE"
    echo "packages (name version sha256):"
    for deb in "$work"/debs/*.deb; do
      dpkg -x "$deb" "$tmp/root"
      echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version) $(sha256sum "$deb" | cut -d' ' -f1)"
    done
  } > "$tmp/VERSIONS.tmp"
  criu_wrapper > "$tmp/bin/criu"; chmod 755 "$tmp/bin/criu"
  cat > "$tmp/etc/criu.conf" <<'CONF'
# Read by criu through CRIU_CONFIG_FILE, set by bin/criu next to this file. The kubelet's
# checkpoint API passes no CRIU options: without these, a container with an established
# TCP connection fails to dump; on restore the connection comes back closed (the app sees
# an error and reconnects from its new address).
tcp-established
tcp-close
CONF
  # Check the unpacked criu runs, bypassing the wrapper's fault file on this host.
  local lib="$tmp/root/usr/lib/x86_64-linux-gnu" got
  got="$("$lib/ld-linux-x86-64.so.2" --library-path "$lib" "$tmp/root/usr/sbin/criu" --version)" \
    || die "the unpacked criu does not run"
  [[ "$got" == *"Version: $CRIU_VERSION"* ]] || die "the unpacked criu reports '$got', expected $CRIU_VERSION"
  mv "$tmp/VERSIONS.tmp" "$tmp/VERSIONS"
  rm -rf "$CRIU_DIR"; mv "$tmp" "$CRIU_DIR"
  log "criu $candidate unpacked in $((SECONDS - t0)) s (${#pkgs[@]} packages, list in $CRIU_DIR/VERSIONS)"
}

# oci_blob DIR FILE: moves FILE into DIR's blobs, prints "sha256:<hex> <size>".
oci_blob() {
  local dir="$1" file="$2" hex size
  hex="$(sha256sum "$file" | cut -d' ' -f1)"; size="$(stat -c %s "$file")"
  mv "$file" "$dir/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

build_pause() {
  local src="$HERE/node/pause.c" sum
  sum="$(sha256sum "$src" | cut -d' ' -f1)"
  if [[ -f "$PAUSE_DIR/oci/index.json" && "$(cat "$PAUSE_DIR/pause.c.sha256" 2>/dev/null)" == "$sum" ]]; then
    return 0
  fi
  local t0=$SECONDS tmp="$PAUSE_DIR.tmp"
  log "building the pause image"
  rm -rf "$tmp"; mkdir -p "$tmp/bin" "$tmp/rootfs" "$tmp/oci/blobs/sha256"
  gcc -static -Os -Wall -Wextra -Werror -o "$tmp/bin/pause" "$src"
  strip -s "$tmp/bin/pause"
  cp "$tmp/bin/pause" "$tmp/rootfs/pause"
  # Reproducible layer: fixed owner and time, so the same pause.c gives the same image ID.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=ustar \
    -C "$tmp/rootfs" -cf "$tmp/layer.tar" pause
  local diff_id layer config manifest
  diff_id="sha256:$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)"
  gzip -n -9 "$tmp/layer.tar"
  read -r -a layer <<<"$(oci_blob "$tmp/oci" "$tmp/layer.tar.gz")"
  printf '%s' '{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux",' \
    '"config":{"Entrypoint":["/pause"]},' \
    '"rootfs":{"type":"layers","diff_ids":["'"$diff_id"'"]},' \
    '"history":[{"created":"1970-01-01T00:00:00Z","created_by":"hack/build-node.sh from hack/node/pause.c"}]}' \
    > "$tmp/config.json"
  read -r -a config <<<"$(oci_blob "$tmp/oci" "$tmp/config.json")"
  printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",' \
    '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'"${config[0]}"'","size":'"${config[1]}"'},' \
    '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"'"${layer[0]}"'","size":'"${layer[1]}"'}]}' \
    > "$tmp/manifest.json"
  read -r -a manifest <<<"$(oci_blob "$tmp/oci" "$tmp/manifest.json")"
  printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",' \
    '"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"'"${manifest[0]}"'","size":'"${manifest[1]}"',' \
    '"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    > "$tmp/oci/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$tmp/oci/oci-layout"
  rm -rf "$tmp/rootfs"
  skopeo inspect "oci:$tmp/oci:latest" >/dev/null || die "skopeo cannot read the pause image layout"
  echo "$sum" > "$tmp/pause.c.sha256"
  rm -rf "$PAUSE_DIR"; mv "$tmp" "$PAUSE_DIR"
  log "pause image built in $((SECONDS - t0)) s"
}

mkdir -p "$CACHE_ROOT"
# One build at a time (setup.sh and a developer may start this together).
exec 9>"$CACHE_ROOT/.build-node.lock"
flock 9
ensure_node_packages
build_pause
build_criu
build_crictl
build_crio
build_kubelet
# One line per artifact (test/harness/node-binaries.ts reads them).
echo "KUBELET=$KUBELET_BIN/kubelet"
echo "CRIO=$CRIO_BIN/crio"
echo "PINNS=$CRIO_BIN/pinns"
echo "CRICTL=$CRICTL_BIN/crictl"
echo "CRIU=$CRIU_DIR/bin/criu"
echo "CRIU_CONFIG=$CRIU_DIR/etc/criu.conf"
echo "PAUSE_OCI=$PAUSE_DIR/oci"
