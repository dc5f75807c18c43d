#!/usr/bin/env bash
# The project's two front-door commands (see README):
#   ./dev.sh demo   set up, then run `plane-connector demo` against the embedded Plane emulator
#   ./dev.sh test   set up, then run every check and test suite (what .ci/run calls)
# Both do all set-up themselves on a fresh machine: a virtualenv in .venv, the Python
# dev requirements, the wheel built from this tree, and PostgreSQL started if it is down.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$PWD
VENV=${PLANE_CONNECTOR_VENV:-$ROOT/.venv}
PY=$VENV/bin/python

log() { printf '\n==> %s\n' "$*" >&2; }

ensure_python() {
  if [ ! -x "$PY" ]; then
    log "creating virtualenv $VENV"
    local base
    base=$(command -v python3.11 || command -v python3)
    "$base" -m venv "$VENV"
  fi
  log "installing Python dev requirements"
  "$PY" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
}

ensure_rust() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup)" >&2; exit 1; }
}

build_wheel() {
  log "building the wheel into $VENV (maturin develop --release)"
  # --release: the throttle and benchmarks measure real speed; tests run the same binary users get.
  "$VENV/bin/maturin" develop --release -q
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  log "PostgreSQL is down: starting it"
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return
    sleep 1
  done
  echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
  exit 1
}

# The keyring: tests run against the real OS keychain: gnome-keyring's Secret Service on a private
# D-Bus bus that the tests start themselves; secret-tool stores by hand as an operator would, and
# Xvfb gives the unlock prompt a screen. Debian packages, installed when missing and possible.
keychain_missing() {  # the Debian packages whose program is not on PATH
  local tool
  for tool in dbus-daemon:dbus gnome-keyring-daemon:gnome-keyring secret-tool:libsecret-tools Xvfb:xvfb; do
    command -v "${tool%%:*}" >/dev/null || printf '%s ' "${tool#*:}"
  done
}

ensure_keychain() {
  local missing
  missing=$(keychain_missing)
  if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing $missing(Debian) for the keyring: tests against the real OS keychain"
    # shellcheck disable=SC2086 # a list of package names
    ( export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -q --no-install-recommends $missing \
        || { apt-get update -q && apt-get install -y -q --no-install-recommends $missing; }
    ) >/dev/null 2>&1 || true
    missing=$(keychain_missing)
  fi
  if [ -n "$missing" ]; then
    log "NO OS KEYCHAIN: ${missing}not installed and not installable here (needs root and" \
      "apt-get): the keyring: tests against the Secret Service are SKIPPED"
    unset PLANE_REQUIRE_SECRET_SERVICE
  else
    # Everything is there: a keychain test that cannot start its daemon now fails, not skips.
    log "OS keychain: the keyring: tests run on a private gnome-keyring Secret Service"
    export PLANE_REQUIRE_SECRET_SERVICE=1
  fi
}

setup() {
  ensure_rust
  ensure_python
  build_wheel
}

run_tests() {
  setup
  ensure_postgres
  ensure_keychain
  export PLANE_TEST_PG_DSN=${PLANE_TEST_PG_DSN:-postgresql://postgres@127.0.0.1:5432/test}

  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy -D warnings (core, and with the python glue)"
  cargo clippy --quiet --all-targets -- -D warnings
  cargo clippy --quiet --features python --lib -- -D warnings
  log "cargo test"
  cargo test --quiet

  log "ruff"
  "$VENV/bin/ruff" check python tests bench odoo_addons
  log "stub check (mypy.stubtest)"
  "$PY" -m mypy.stubtest plane_connector._core --allowlist stubtest-allowlist.txt

  log "secrets / schema guard"
  # The empty tree as base: the whole tree is the diff, so a clean clone is checked in full.
  if "$PY" -c "import plane_connector.cli.guard" 2>/dev/null; then
    "$VENV/bin/plane-connector" guard --base 4b825dc642cb6eb9a060e54bf8d69288fbee4904
  fi

  log "pytest"
  "$PY" -m pytest -q tests

  if [ -x scripts/odoo-tests.sh ]; then
    log "Odoo addon tests"
    scripts/odoo-tests.sh
  fi
}

case "${1:-}" in
  demo)
    shift
    setup
    exec "$VENV/bin/plane-connector" demo "$@"
    ;;
  test)
    shift
    run_tests "$@"
    ;;
  build)
    setup
    ;;
  *)
    echo "usage: ./dev.sh demo|test|build" >&2
    exit 2
    ;;
esac
