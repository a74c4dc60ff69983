# Shared by scripts/run and scripts/test: a virtual environment with the pinned
# dependencies, rebuilt only when pyproject.toml changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GATEWAY_VENV:-$ROOT/.venv}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "error: $* is missing and this is not a Debian-like system; install it by hand" >&2; exit 1
  fi
  echo "--> apt-get install $*" >&2
  as_root apt-get update -qq >&2 || { echo "error: apt-get update failed (are you root?)" >&2; exit 1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

ensure_venv() {
  local extra="$1" python stamp
  python="$(find_python)" || { apt_install python3 python3-venv python3-dev; python="$(find_python)"; }
  stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-$extra"
  if [ ! -f "$stamp" ]; then
    echo "--> installing into $VENV" >&2
    "$python" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; "$python" -m venv "$VENV"; }
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[$extra]" >&2
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}
