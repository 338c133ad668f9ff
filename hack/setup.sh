#!/usr/bin/env bash
# Installs what a fresh machine lacks, idempotently: Node.js 24 (from the npm registry's
# `node` package, into .tools/), the Debian packages the tests use, the npm dependencies,
# the Go-built Kubernetes control plane and what the real worker nodes run (build-node.sh).
# Prints the PATH line to use afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_MAJOR=24
TOOLS="$ROOT/.tools"
log() { echo "[setup] $*" >&2; }

# Node >= 22.19 runs the TypeScript sources directly (type stripping); older gets Node 24.
node_ok() { "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null; }

ensure_node() {
  if command -v node >/dev/null && node_ok node; then return 0; fi
  if [[ -x "$TOOLS/node_modules/node/bin/node" ]] && node_ok "$TOOLS/node_modules/node/bin/node"; then return 0; fi
  log "system Node.js is older than 22.19: installing Node.js $NODE_MAJOR into $TOOLS"
  mkdir -p "$TOOLS"
  npm install --no-save --no-package-lock --prefix "$TOOLS" "node@$NODE_MAJOR" >/dev/null
}

ensure_debian_packages() {
  local missing=()
  command -v skopeo >/dev/null || missing+=(skopeo)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
  command -v openssl >/dev/null || missing+=(openssl)
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The tests use the broker at 127.0.0.1:5672; start one where none runs.
ensure_rabbitmq() {
  if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then return 0; fi
  log "starting rabbitmq-server"
  # A node whose app was stopped (rabbitmqctl stop_app) only needs start_app.
  rabbitmqctl start_app >/dev/null 2>&1 || rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then return 0; fi
    sleep 1
  done
  log "RabbitMQ did not start on 127.0.0.1:5672"; return 1
}

ensure_npm_deps() {
  export PATH="$TOOLS/node_modules/node/bin:$PATH"
  local stamp="$ROOT/node_modules/.ms2m-lock-stamp"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)" ]]; then
    return 0
  fi
  log "installing npm dependencies"
  (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null)
  sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1 > "$stamp"
}

ensure_node
ensure_debian_packages
ensure_rabbitmq
ensure_npm_deps
bash "$ROOT/hack/build-kube.sh" >/dev/null
bash "$ROOT/hack/build-helm.sh" >/dev/null # Helm, for the chart (charts/ms2m) and its tests
# What a real worker node runs (kubelet, CRI-O, crictl, CRIU, pause image, runc, ...).
bash "$ROOT/hack/build-node.sh" >/dev/null
log "ready"
