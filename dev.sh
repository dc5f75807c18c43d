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

# The clock on each step: CI has a time budget, and this is where the minutes show.
log() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

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

# Debian packages for the suites that use real programs, installed when missing and possible:
# the keyring: tests run against gnome-keyring's Secret Service on a private D-Bus bus that the
# tests start themselves (secret-tool stores by hand as an operator would, Xvfb gives the unlock
# prompt a screen); the Odoo browser tours drive Debian's chromium.
KEYCHAIN_TOOLS="dbus-daemon:dbus gnome-keyring-daemon:gnome-keyring secret-tool:libsecret-tools Xvfb:xvfb"
BROWSER_TOOLS="chromium:chromium"

debian_missing() {  # the Debian packages (of "program:package" pairs) whose program is not on PATH
  local tool
  for tool in "$@"; do
    command -v "${tool%%:*}" >/dev/null || printf '%s ' "${tool#*:}"
  done
}

debian_install() {  # best effort: root and apt-get, else nothing (the caller says what is skipped)
  [ -n "$1" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
  log "installing $1(Debian)"
  # shellcheck disable=SC2086 # a list of package names
  ( export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends $1 \
      || { apt-get update -q && apt-get install -y -q --no-install-recommends $1; }
  ) >/dev/null 2>&1 || true
}

ensure_keychain() {
  # shellcheck disable=SC2086
  debian_install "$(debian_missing $KEYCHAIN_TOOLS)"
  local missing
  # shellcheck disable=SC2086
  missing=$(debian_missing $KEYCHAIN_TOOLS)
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

ensure_browser() {
  # shellcheck disable=SC2086
  debian_install "$(debian_missing $BROWSER_TOOLS)"
  # scripts/odoo-tests.sh looks for Chromium itself and says plainly when the tours are skipped.
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
  ensure_browser
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
  "$PY" -m pytest -q --durations=10 tests

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
