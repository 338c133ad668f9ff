# Sourced by hack/build-kube.sh and hack/build-node.sh: builds Kubernetes commands from the
# published k8s.io/kubernetes module.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every staging module
# (k8s.io/api, k8s.io/client-go, ...) with a local path. A throwaway wrapper module pins
# each staging module to its published v0.X.Y tag instead.

# kube_wrapper_module WORK KUBE_VERSION MODULE_PATH PACKAGE...
# Writes the wrapper module into WORK (an empty directory) and resolves its dependencies,
# so that `(cd WORK && GOFLAGS=-mod=mod go build PACKAGE...)` builds those packages.
kube_wrapper_module() {
  local work="$1" kube_version="$2" module="$3"; shift 3
  local staging_version="v0.${kube_version#v1.}"
  local upstream_mod
  upstream_mod="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$kube_version" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  local go_directive
  go_directive="$(sed -n 's/^go \(.*\)$/\1/p' "$upstream_mod" | head -1)"
  {
    echo "module $module"
    echo
    echo "go $go_directive"
    echo
    echo "require k8s.io/kubernetes $kube_version"
    echo
    # Every staging module appears in upstream's go.mod as `k8s.io/<name> v0.0.0`.
    grep -E '^[[:space:]]*k8s\.io/[a-z0-9-]+ v0\.0\.0[[:space:]]*$' "$upstream_mod" | awk '{print $1}' | sort -u \
      | while read -r m; do echo "replace $m => $m $staging_version"; done
  } > "$work/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package ${module##*/}"
    echo
    echo "import ("
    local pkg
    for pkg in "$@"; do echo "	_ \"$pkg\""; done
    echo ")"
  } > "$work/tools.go"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true)
  # Every package carries the version: a bare package path means @upgrade, which picks
  # the newest release the proxy serves and conflicts with the pinned module.
  local versioned=("k8s.io/kubernetes@$kube_version")
  for pkg in "$@"; do versioned+=("$pkg@$kube_version"); done
  (cd "$work" && GOFLAGS=-mod=mod go get "${versioned[@]}")
}

# kube_version_ldflags KUBE_VERSION: the linker flags that make `--version` report it.
kube_version_ldflags() {
  local kube_version="$1"
  local major="${kube_version#v}"; major="${major%%.*}"
  local minor="${kube_version#v*.}"; minor="${minor%%.*}"
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$ldflags"
}
