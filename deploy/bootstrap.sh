#!/bin/sh
# Create .venv (even on a Debian without python3-venv/pip: pip is then bootstrapped from PyPI) and install
# carbonwatch into it, editable. Usage: sh deploy/bootstrap.sh [EXTRAS]   e.g. `test`
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "carbonwatch needs Python >= 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    "$PY" -m venv --without-pip .venv
    .venv/bin/python deploy/get_pip.py
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
if [ -n "${1:-}" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$1]"
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
