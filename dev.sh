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

setup() {
  ensure_rust
  ensure_python
  build_wheel
}

run_tests() {
  setup
  ensure_postgres
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
