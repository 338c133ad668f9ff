#!/usr/bin/env bash
# Local base images for `make images`, where public bases (Docker Hub, gcr.io) cannot be pulled:
#   localhost/ms2m-base-node:<major>   Debian minbase (mmdebstrap, from this machine's apt archive)
#                                      + Node.js from the npm registry (node-linux-<arch>) in
#                                      /usr/local/bin/node; users nonroot (65532) and node (1000)
#   localhost/ms2m-base-agent:<major>  the same plus skopeo and ca-certificates (a layer on top, so
#                                      nodes pull the Debian+Node layer once for all three images)
# Both live in a buildah store (vfs) under $MS2M_CACHE/images/buildah and carry a label with a
# hash of what defines them (this script, the Node.js version, the Debian suite, the arch);
# a matching label means nothing is rebuilt. Needs root, buildah, mmdebstrap, npm.
# Prints KEY=value lines: BASE_NODE, BASE_AGENT, BUILDAH_ROOT, BUILDAH_RUNROOT.
#   MS2M_BASE_NODE_VERSION  Node.js version (default: the project's Node.js if it is a 24.x,
#                           else the newest 24.x on the npm registry)
#   MS2M_BASE_SUITE         Debian suite (default bookworm)
#   MS2M_DEBIAN_MIRROR      archive URL (default: the one this machine's apt sources use for the suite)
set -euo pipefail

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SCRIPT")/../.." && pwd)"
# The images' Node.js major: the bundles target node24, the public bases are nodejs24 / node:24.
NODE_MAJOR=24
SUITE="${MS2M_BASE_SUITE:-bookworm}"
CACHE="${MS2M_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ms2m}/images"
BUILDAH_ROOT="$CACHE/buildah/root"
BUILDAH_RUNROOT="$CACHE/buildah/runroot"
BASE_NODE="localhost/ms2m-base-node:$NODE_MAJOR"
BASE_AGENT="localhost/ms2m-base-agent:$NODE_MAJOR"
KEY_LABEL=io.ms2m.base-key
# What the agent runs: skopeo loads checkpoint images into containers-storage (overlay driver,
# built into skopeo; the kernel's overlayfs does the rest). skopeo's dependency chain asks for a
# "container-network-stack" and "gnupg | gpg": naming netavark (4 MB) and gpg avoids apt picking
# containernetworking-plugins + iptables (45 MB) and all of gnupg.
AGENT_PACKAGES="skopeo ca-certificates netavark gpg"

log() { echo "[images/bases] $*" >&2; }
die() { echo "[images/bases] ERROR: $*" >&2; exit 1; }

case "$(uname -m)" in
  x86_64) NODE_ARCH=x64 ;;
  aarch64) NODE_ARCH=arm64 ;;
  *) die "no Node.js package for $(uname -m)" ;;
esac
# shellcheck source=../env.sh
source "$ROOT/hack/env.sh"
[[ $EUID -eq 0 ]] || die "needs root (mmdebstrap --mode=root, buildah with its own store)"
for tool in buildah mmdebstrap npm flock; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install buildah mmdebstrap)"
done

NODE_VERSION="${MS2M_BASE_NODE_VERSION:-}"
if [[ -z "$NODE_VERSION" ]]; then
  NODE_VERSION="$(node -p process.versions.node 2>/dev/null || true)"
  if [[ "${NODE_VERSION%%.*}" != "$NODE_MAJOR" ]]; then
    NODE_VERSION="$(npm view "node-linux-$NODE_ARCH@$NODE_MAJOR" version --json |
      node -e 'const v = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log([v].flat().at(-1))')"
  fi
fi
[[ "${NODE_VERSION%%.*}" == "$NODE_MAJOR" ]] || die "Node.js $NODE_VERSION is not a $NODE_MAJOR.x"

mkdir -p "$CACHE"
# One builder at a time (make images and a test may start together); the second waits, then
# finds the bases built.
exec 9>"$CACHE/bases.lock"
flock 9

BUILDAH=(buildah --root "$BUILDAH_ROOT" --runroot "$BUILDAH_RUNROOT" --storage-driver vfs)
# A failed build leaves neither its working container (a full vfs copy) nor the rootfs tar.
CTR=""
TAR=""
cleanup() {
  if [[ -n "$CTR" ]]; then "${BUILDAH[@]}" rm "$CTR" >/dev/null 2>&1 || true; fi
  if [[ -n "$TAR" ]]; then rm -f "$TAR"; fi
}
trap cleanup EXIT
KEY="$({ cat "$SCRIPT"; echo "node=$NODE_VERSION suite=$SUITE arch=$NODE_ARCH"; } | sha256sum | cut -c1-16)"

image_key() {
  "${BUILDAH[@]}" inspect --type image --format "{{index .OCIv1.Config.Labels \"$KEY_LABEL\"}}" "$1" 2>/dev/null || true
}

# "URI SUITE" for every enabled `deb` entry of this machine's apt sources (one-line and deb822).
apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk '
      function flush(  n, m, i, j, u, s) {
        if (types ~ /(^| )deb( |$)/ && enabled != "no") {
          n = split(uris, u, " "); m = split(suites, s, " ")
          for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j]
        }
        types = uris = suites = enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[A-Za-z-]+:/ {
        key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^[ \t]+/, "")
        if (key == "types") types = $0; else if (key == "uris") uris = $0
        else if (key == "suites") suites = $0; else if (key == "enabled") enabled = tolower($0)
      }
      END { flush() }' "$f"
  done
}

# mmdebstrap mirror lines: the suite, its -updates and -security where this machine uses them.
mirrors() {
  local entries main security
  entries="$(apt_entries)"
  main="${MS2M_DEBIAN_MIRROR:-$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$entries")}"
  [[ -n "$main" ]] || die "no apt source for Debian $SUITE on this machine; set MS2M_DEBIAN_MIRROR"
  echo "deb $main $SUITE main"
  if grep -q " $SUITE-updates\$" <<<"$entries"; then echo "deb $main $SUITE-updates main"; fi
  security="$(awk -v s="$SUITE-security" '$2 == s { print $1; exit }' <<<"$entries")"
  if [[ -n "$security" ]]; then echo "deb $security $SUITE-security main"; fi
}

# The real binary of the npm `node` package is in node-linux-<arch>; kept per version.
fetch_node() {
  local dir="$CACHE/node-v$NODE_VERSION-linux-$NODE_ARCH" tmp
  if [[ ! -x "$dir/node" ]]; then
    log "fetching node-linux-$NODE_ARCH@$NODE_VERSION from the npm registry"
    tmp="$dir.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    (cd "$tmp" && npm pack --silent "node-linux-$NODE_ARCH@$NODE_VERSION" >/dev/null)
    tar -xzf "$tmp"/node-linux-*.tgz -C "$tmp" package/bin/node
    mkdir -p "$dir"
    mv "$tmp/package/bin/node" "$dir/node"
    rm -rf "$tmp"
  fi
  echo "$dir/node"
}

build_node_base() {
  local t0=$SECONDS lines
  local -a mirror_lines
  lines="$(mirrors)"
  mapfile -t mirror_lines <<<"$lines"
  MS2M_NODE_BIN="$(fetch_node)"
  export MS2M_NODE_BIN
  TAR="$(mktemp --suffix=.tar)"
  log "building $BASE_NODE (Debian $SUITE minbase from ${mirror_lines[0]#deb }, Node.js $NODE_VERSION)"
  # path-exclude also lands in /etc/dpkg/dpkg.cfg.d, so packages added later (the agent layer,
  # a public-base-style apt-get in a Dockerfile) are trimmed the same way. Copyright files stay.
  # The merged-usr hook sets up /usr the debootstrap way (usr-is-merged); otherwise apt pulls in
  # usrmerge and, through it, 50 MB of perl.
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar --skip=output/dev \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='install -m 0755 "$MS2M_NODE_BIN" "$1/usr/local/bin/node"' \
    --customize-hook='chroot "$1" /usr/bin/env -i /usr/local/bin/node -e "process.exit(0)"' \
    --customize-hook='echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin" >> "$1/etc/passwd"' \
    --customize-hook='echo "nonroot:x:65532:" >> "$1/etc/group" && echo "nonroot:!*:19000::::::" >> "$1/etc/shadow"' \
    --customize-hook='echo "node:x:1000:1000::/home/node:/bin/sh" >> "$1/etc/passwd"' \
    --customize-hook='echo "node:x:1000:" >> "$1/etc/group" && echo "node:!*:19000::::::" >> "$1/etc/shadow"' \
    --customize-hook='install -d -o 65532 -g 65532 "$1/home/nonroot" && install -d -o 1000 -g 1000 "$1/home/node"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/*.log "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/*' \
    "$SUITE" "$TAR" "${mirror_lines[@]}" >"$CACHE/mmdebstrap.log" 2>&1 ||
    { tail -n 30 "$CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $CACHE/mmdebstrap.log)"; }
  CTR="$("${BUILDAH[@]}" from scratch)"
  "${BUILDAH[@]}" add --quiet "$CTR" "$TAR" / >/dev/null
  rm -f "$TAR"
  TAR=""
  "${BUILDAH[@]}" config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --cmd '["node"]' \
    --label "$KEY_LABEL=$KEY" \
    --label "org.opencontainers.image.description=Debian $SUITE minbase + Node.js $NODE_VERSION (ms2m local base)" \
    "$CTR"
  "${BUILDAH[@]}" commit --quiet --rm "$CTR" "$BASE_NODE" >/dev/null
  CTR=""
  log "built $BASE_NODE in $((SECONDS - t0)) s"
}

build_agent_base() {
  local t0=$SECONDS
  log "building $BASE_AGENT ($AGENT_PACKAGES on $BASE_NODE)"
  CTR="$("${BUILDAH[@]}" from --pull=never "$BASE_NODE")"
  "${BUILDAH[@]}" run --isolation chroot "$CTR" -- sh -ec "
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $AGENT_PACKAGES >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt/* /var/log/*.log /var/cache/debconf/*-old
    skopeo --version >/dev/null" >"$CACHE/agent-base.log" 2>&1 ||
    { tail -n 30 "$CACHE/agent-base.log" >&2; die "installing $AGENT_PACKAGES failed (log: $CACHE/agent-base.log)"; }
  "${BUILDAH[@]}" config --label "$KEY_LABEL=$KEY" \
    --label "org.opencontainers.image.description=$BASE_NODE + $AGENT_PACKAGES (ms2m local base)" "$CTR"
  "${BUILDAH[@]}" commit --quiet --rm "$CTR" "$BASE_AGENT" >/dev/null
  CTR=""
  log "built $BASE_AGENT in $((SECONDS - t0)) s"
}

rebuilt=0
if [[ "$(image_key "$BASE_NODE")" != "$KEY" ]]; then
  build_node_base
  rebuilt=1
fi
# Rebuilt on top of a new node base too, so both share its layer.
if [[ $rebuilt -eq 1 || "$(image_key "$BASE_AGENT")" != "$KEY" ]]; then
  build_agent_base
  rebuilt=1
fi
# Drop what the new bases replaced (untagged images) from the vfs store: every vfs layer is a
# full copy of its root filesystem.
if [[ $rebuilt -eq 1 ]]; then "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true; fi

echo "BASE_NODE=$BASE_NODE"
echo "BASE_AGENT=$BASE_AGENT"
echo "BUILDAH_ROOT=$BUILDAH_ROOT"
echo "BUILDAH_RUNROOT=$BUILDAH_RUNROOT"
