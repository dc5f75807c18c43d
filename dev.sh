#!/usr/bin/env bash
# The project's two front-door commands (see README):
#   ./dev.sh demo   set up, then run `plane-connector demo` against the embedded Plane emulator
#   ./dev.sh test   set up, then run every check and test suite (what .ci/run calls)
# and the release build:
#   ./dev.sh dist   the manylinux2014 abi3 wheel and the sdist into dist/ (cross-built with zig)
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

# The wheel users install: abi3 (CPython 3.10+), manylinux2014 (glibc 2.17), no OpenSSL.
# `--zig` links against glibc 2.17's symbols whatever this machine's glibc is; zig and
# auditwheel come from PyPI (requirements-dev.txt), so a fresh machine needs nothing else.
build_dist() {
  local target
  target=$(rustc -vV | sed -n 's/^host: //p')
  log "building the wheel (manylinux2014, $target) and the sdist into dist/"
  rm -rf dist
  mkdir -p dist
  # maturin finds zig as `python3 -m ziglang`: the venv's python must come first on PATH.
  PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" build --release --zig \
    --compatibility manylinux2014 --target "$target" --out dist
  PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" sdist --out dist
  "$VENV/bin/auditwheel" show dist/*.whl
  "$PY" scripts/tree_stamp.py >dist/TREE
  ls -l dist
}

# dist/ as built from this very tree (rebuilt only when the sources changed since).
ensure_dist() {
  if [ -f dist/TREE ] && ls dist/*.whl >/dev/null 2>&1 \
      && [ "$(cat dist/TREE)" = "$("$PY" scripts/tree_stamp.py)" ]; then
    log "dist/ is up to date with this tree: $(basename dist/*.whl)"
    return
  fi
  build_dist
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

  # The release wheel, built once: tests/dist installs it into a cargo-less venv, and the Odoo
  # tests (tests/odoo's live servers and scripts/odoo-tests.sh) install that same file.
  ensure_dist
  PLANE_CONNECTOR_WHEEL=$(ls "$ROOT"/dist/*.whl)
  export PLANE_CONNECTOR_WHEEL

  log "pytest"
  "$PY" -m pytest -q tests

  if [ -x scripts/odoo-tests.sh ]; then
    log "Odoo addon tests (with the wheel file $(basename "$PLANE_CONNECTOR_WHEEL"))"
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
  dist)
    ensure_rust
    ensure_python
    build_dist
    ;;
  *)
    echo "usage: ./dev.sh demo|test|build|dist" >&2
    exit 2
    ;;
esac
