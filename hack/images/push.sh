#!/usr/bin/env bash
# Pushes the images `make images` built (.build/images/*.tar) to REGISTRY as
# REGISTRY/ms2m/{controller,agent,workload}:<tag>, TLS unverified (a plain-HTTP registry works).
# Prints the references as JSON: {"controller": "...", "agent": "...", "workload": "..."}.
#   hack/images/push.sh REGISTRY [--tag TAG] [--pin]      (--pin: REGISTRY/ms2m/<name>@sha256:...)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ $# -ge 1 ]] || { echo "usage: $0 REGISTRY [--tag TAG] [--pin]" >&2; exit 2; }
# shellcheck source=../env.sh
source "$ROOT/hack/env.sh"
exec node "$ROOT/hack/images/images.ts" push "$@"
