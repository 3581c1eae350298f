# shellcheck shell=bash
# Set-up shared by scripts/test and scripts/demo (sourced, not run): system packages, then .venv.
# Idempotent and quick when all is in place: apt runs only for something missing, pip only when
# pyproject.toml or the Python changed since the last install.

PF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PF_VENV="$PF_ROOT/.venv"

pf_say() {
  if [ -t 2 ]; then printf '\033[1m==> %s\033[0m\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi
}

pf_die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

pf_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    pf_die "root is needed to run: $* (run this script as root, or install sudo)"
  fi
}

# The first Python >= 3.11 among $PYTHON, python3, python3.13, python3.12, python3.11.
pf_find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

# Each check looks for the program itself, not for a package name, so a machine that has it from
# anywhere is never sent to apt.
pf_have_mosquitto() {
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]
}

pf_have_postgres() {
  # Debian puts server binaries (initdb, postgres) and pg_isready under /usr/lib/postgresql/N/bin.
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_isready" ] && return 0
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_isready >/dev/null 2>&1
}

# pf_system_packages [MODE]: what this machine lacks, installed with apt. MODE "run" (the demo)
# needs only Python: the demo's broker and database run in-process. "dev" (the default, the
# tests) adds the real servers the tests start and the browser the dashboard tests drive.
pf_system_packages() {
  local mode=${1:-dev}
  local -a missing=()
  local python version
  if python=$(pf_find_python); then
    # Debian's own Python lacks venv/ensurepip unless python3.X-venv is installed.
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
      version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
      missing+=("python$version-venv")
    fi
  else
    missing+=(python3 python3-venv)
  fi
  if [ "$mode" = dev ]; then
    pf_have_mosquitto || missing+=(mosquitto)
    pf_have_postgres || missing+=(postgresql)
    # The dashboard's end-to-end tests drive Debian's Chromium (tests/web).
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  fi

  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 ||
    pf_die "missing: ${missing[*]}; this script installs them only with apt-get (Debian, Ubuntu)"
  pf_say "installing system packages: ${missing[*]}"
  pf_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  pf_as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# pf_venv MODE: create or refresh .venv and install the project editable with the postgres extra;
# MODE "dev" adds the dev dependency group (test and lint tools), "run" does not.
pf_venv() {
  local mode=$1 python key
  python=$(pf_find_python) || pf_die "no Python >= 3.11 found (tried \$PYTHON, python3, python3.1x)"
  key="$("$python" -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])') $(sha256sum "$PF_ROOT/pyproject.toml" | cut -d' ' -f1)"

  # A venv whose interpreter vanished or differs from the chosen one is rebuilt from scratch.
  if ! [ "$("$PF_VENV/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null)" = \
    "$("$python" -c 'import sys; print(sys.version)')" ]; then
    pf_say "creating .venv with $python"
    "$python" -m venv --clear "$PF_VENV"
  fi

  # The stamp records what the last successful install was made from; dev covers run too.
  if grep -qxF "$key" "$PF_VENV/.printfleet-$mode" 2>/dev/null ||
    { [ "$mode" = run ] && grep -qxF "$key" "$PF_VENV/.printfleet-dev" 2>/dev/null; }; then
    return 0
  fi
  local -a group=()
  [ "$mode" = dev ] && group=(--group dev)
  pf_say "installing printfleet into .venv ($mode)"
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off
  # pip >= 25.1 understands dependency groups (--group).
  "$PF_VENV/bin/python" -m pip install -q --upgrade 'pip>=25.1'
  (cd "$PF_ROOT" && "$PF_VENV/bin/python" -m pip install -q -e '.[postgres]' "${group[@]}")
  printf '%s\n' "$key" >"$PF_VENV/.printfleet-$mode"
}
