# Sourced by the Makefile and .ci/run: puts the project's Node.js first on PATH.
_ms2m_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$_ms2m_root/.tools/node_modules/node/bin/node" ]]; then
  export PATH="$_ms2m_root/.tools/node_modules/node/bin:$PATH"
fi
export PATH="$_ms2m_root/node_modules/.bin:$PATH"
unset _ms2m_root
