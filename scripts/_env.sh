# Shared by scripts/*.sh: find Python ≥ 3.12 and create/refresh the virtualenv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for candidate in python3.13 python3.12; do
    if command -v "$candidate" >/dev/null 2>&1; then command -v "$candidate"; return; fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for version in 3.13 3.12; do
      found=$(ls -d "$(pyenv root)"/versions/${version}.*/bin/python${version} 2>/dev/null | sort -V | tail -n 1 || true)
      if [ -n "$found" ]; then echo "$found"; return; fi
    done
  fi
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    command -v python3; return
  fi
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
