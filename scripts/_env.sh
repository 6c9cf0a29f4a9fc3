# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: makes .venv (Python 3.11+) with the pinned
# requirements, installing the MariaDB client headers first if mysqlclient needs them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "taskq needs Python 3.11 or newer on PATH" >&2; return 1
}

ensure_system_packages() {
  # mysqlclient compiles against the MariaDB/MySQL client library, found via pkg-config.
  if pkg-config --exists mariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing the MariaDB client headers that mysqlclient builds against..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmariadb-dev pkg-config >/dev/null
  else
    echo "mysqlclient needs the MariaDB client headers: install libmariadb-dev and pkg-config" >&2
    return 1
  fi
}

# TASKQ_VENV (default .venv) names the virtualenv, TASKQ_PYTHON the interpreter that makes it,
# and TASKQ_DJANGO a Django version to install over the pinned one (CI's Django 6 run).
VENV="${TASKQ_VENV:-.venv}"

ensure_venv() {
  local requirements="$1" stamp
  stamp="$VENV/.installed-$(basename "$1")"
  local python="${TASKQ_PYTHON:-}"
  [ -n "$python" ] || python=$(find_python)
  if [ ! -x "$VENV/bin/python" ]; then
    "$python" -m venv "$VENV"
  fi
  # Reinstall only when a requirements file (or the Django override) changed since the last install.
  local digest
  digest=$( (cat requirements*.txt; echo "${TASKQ_DJANGO:-}") | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    ensure_system_packages
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r "$requirements"
    if [ -n "${TASKQ_DJANGO:-}" ]; then
      "$VENV/bin/python" -m pip install -q "Django==$TASKQ_DJANGO"
    fi
    "$VENV/bin/python" -m pip install -q --no-deps -e .
    echo "$digest" > "$stamp"
  fi
}
