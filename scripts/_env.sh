# Shared by scripts/*.sh: find Python ≥ 3.12 and create/refresh the virtualenv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

find_python() {
  local candidates=()
  for name in python3.13 python3.12 python3; do
    command -v "$name" >/dev/null 2>&1 && candidates+=("$(command -v "$name")")
  done
  if command -v pyenv >/dev/null 2>&1; then
    for version in 3.13 3.12; do
      while IFS= read -r found; do candidates+=("$found"); done < <(
        ls -d "$(pyenv root)"/versions/${version}.*/bin/python${version} 2>/dev/null | sort -V -r)
    done
  fi
  for candidate in "${candidates[@]}"; do   # a pyenv shim may exist yet refuse to run
    if python_ok "$candidate"; then echo "$candidate"; return; fi
  done
  echo "LeanCore needs Python 3.12 or newer (Django 6)." >&2
  exit 1
}

ensure_venv() {  # $1: requirements file
  local req="$1"
  if [ ! -x .venv/bin/python ]; then
    "$(find_python)" -m venv .venv
  fi
  local stamp=".venv/.installed-$(basename "$req")"
  if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
    touch "$stamp"
  fi
}

ensure_chromium() {  # the browser tests (tests/browser) drive Debian's Chromium; never `playwright install`
  [ -x /usr/bin/chromium ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "The browser tests need Chromium at /usr/bin/chromium (Debian's chromium package): they will fail." >&2
    return 0
  fi
  local as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  echo "Installing Chromium (Debian's chromium package) for the browser tests…"
  local install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)
  if ! "${install[@]}" >/dev/null; then  # a stale package list: refresh it once, then try again
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true
    "${install[@]}" >/dev/null || echo "Installing Chromium failed: the browser tests will fail." >&2
  fi
}
