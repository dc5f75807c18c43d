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

# --- ./dev.sh test: the steps, some side by side --------------------------------------------
# The release wheel is built once (dist/) and that file is what everything Python tests: it is
# installed into the venv, into a cargo-less venv (tests/dist) and into each Odoo. The Rust
# checks (their own cargo profile directory, so they share no lock with the wheel's build) run
# beside it at a lower priority, the Odoo series beside pytest and beside each other. A step
# that runs in the background writes to its own file, printed whole when it ends, so no two
# outputs interleave.
STEPS_DIR=""
STEP_TIMES=""
FAILED=()

clock() { date +%s; }

step_done() {  # NAME START RC [END]
  local secs=$((${4:-$(clock)} - $2)) mark=""
  [ "$3" = 0 ] || { mark="  (FAILED, exit $3)"; FAILED+=("$1"); }
  STEP_TIMES+=$(printf '%6d s  %s%s' "$secs" "$1" "$mark")$'\n'
}

# step NAME CMD...: one step in the foreground, timed; its failure is recorded, the run goes on.
step() {
  local name=$1 t0 rc=0
  shift
  log "$name"
  t0=$(clock)
  "$@" </dev/null || rc=$?
  step_done "$name" "$t0" "$rc"
  return "$rc"
}

slot_of() { printf '%s/%s' "$STEPS_DIR" "$(printf '%s' "$1" | tr -c 'A-Za-z0-9' _)"; }

# background NAME CMD...: a step in its own session (an interrupted run stops all of it), its
# output into a file.
background() {
  local name=$1 slot
  shift
  slot=$(slot_of "$name")
  log "$name: started in the background"
  clock >"$slot.start"
  setsid -w bash -c 'echo $$ >"$0.pgid"; "$@"; echo $? >"$0.rc"; date +%s >"$0.end"' "$slot" "$@" \
    </dev/null >"$slot.log" 2>&1 &
  echo $! >"$slot.pid"
}

# finish NAME: wait for a background step, then print its output and its time.
finish() {
  local name=$1 slot rc
  slot=$(slot_of "$name")
  [ -f "$slot.pid" ] || return 0
  wait "$(cat "$slot.pid")" 2>/dev/null || true
  rc=$(cat "$slot.rc" 2>/dev/null || echo 1)
  log "$name (ran in the background): its output"
  cat "$slot.log" >&2
  rm -f "$slot.pid" "$slot.pgid"
  # Its own time, not the wait for it (it may have ended long before the foreground did).
  step_done "$name" "$(cat "$slot.start")" "$rc" "$(cat "$slot.end" 2>/dev/null || clock)"
}

stop_background() {  # on exit: whatever still runs in the background is ours to stop
  local pgid
  for pgid in "$STEPS_DIR"/*.pgid; do
    [ -f "$pgid" ] && kill -TERM -- "-$(cat "$pgid")" 2>/dev/null
  done
  rm -rf "$STEPS_DIR"
}

rust_checks() {
  set -e
  echo "--- cargo fmt --check"
  cargo fmt --all -- --check
  echo "--- cargo clippy -D warnings (the core, all targets)"
  cargo clippy --quiet --all-targets -- -D warnings
  echo "--- cargo clippy -D warnings (with the python glue)"
  cargo clippy --quiet --features python --lib -- -D warnings
  echo "--- cargo test"
  cargo test --quiet
}

install_dist_wheel() {
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall \
    "$PLANE_CONNECTOR_WHEEL"
}

guard() {
  # The empty tree as base: the whole tree is the diff, so a clean clone is checked in full.
  "$VENV/bin/plane-connector" guard --base 4b825dc642cb6eb9a060e54bf8d69288fbee4904
}

# The tests that start real prefork Odoo servers and time them (tests/odoo: live servers and the
# chaos scenario; tests/bench: the Odoo benchmarks' smoke run). They start when the main pytest
# is over, beside the addon tests' tail, not beside both: on 2 cores, two Odoo series, pytest
# and these together made the timed ones (the chaos convergence, the back-fill pace) fail for
# want of CPU. Per series (ODOO_SERIES) three lanes run side by side: two of the servers' tests,
# which start at once, and the benchmarks' smoke run with the chaos run (marker cpu_timed),
# which wait for the addon tests' end mark. Once the addon tests are over these mostly wait (on
# webhooks, crons, Plane's rate): with one lane per series the machine was 75 % idle. The
# modules are installed once per series into a template (bench/odoo_db.py) that the lanes
# share. The files of those folders that start no Odoo (static checks, the harness's helpers,
# benchmarks 1-6 at smoke size) run once, in the main pytest beside the addon tests. A new
# live test file is named test_live_*.py (or joins a lane below) so that it runs here.
LIVE_ODOO_TESTS="tests/odoo/test_live_*.py tests/odoo/test_chaos.py tests/bench/test_bench_smoke.py"
# The lanes (pytest arguments, "|" between lanes) cover exactly those files: the issue-21 live
# checks (their own server, ~2 minutes of waiting), the other servers' tests, the timed ones.
LIVE_ODOO_LANES="tests/odoo/test_live_hardening.py"
LIVE_ODOO_LANES+="|tests/odoo/test_live_*.py --deselect tests/odoo/test_live_hardening.py"
LIVE_ODOO_LANES+="|tests/bench/test_bench_smoke.py tests/odoo/test_chaos.py"

# pytest_part NAME ARGS...: one pytest run, its output kept for the summary.
pytest_part() {
  local name=$1 rc=0
  shift
  "$PY" -m pytest -q --durations=10 "$@" | tee "$STEPS_DIR/pytest-$name.out" || rc=$?
  # 5 is "no tests collected": never a pass.
  [ "$rc" != 5 ] || echo "pytest collected no tests" >&2
  return "$rc"
}

pytest_main() {
  local ignore=() dir
  # shellcheck disable=SC2086 # file globs, expanded here
  for dir in $LIVE_ODOO_TESTS; do ignore+=("--ignore=$dir"); done
  pytest_part main "${ignore[@]}" tests
}

pytest_live_odoo() {  # SERIES...: the Odoo series found (none: one run per lane, which skips)
  local series lane lanes runs=() pids=() rc=0 wanted=" ${ODOO_SERIES:-$*} " i
  wanted=${wanted//,/ }
  IFS='|' read -ra lanes <<<"$LIVE_ODOO_LANES"
  # shellcheck disable=SC2046 # series names, one word each
  set -- $(for series in "$@"; do [[ "$wanted" != *" $series "* ]] || echo "$series"; done)
  for series in "${@:-any}"; do
    for i in "${!lanes[@]}"; do
      lane="live-odoo-$series-$((i + 1))"
      runs+=("$lane")
      # shellcheck disable=SC2086 # a list of test files
      if [ "$series" = any ]; then
        pytest_part "$lane" ${lanes[$i]} >"$STEPS_DIR/$lane.log" 2>&1 &
      else
        ODOO_SERIES=$series pytest_part "$lane" ${lanes[$i]} >"$STEPS_DIR/$lane.log" 2>&1 &
      fi
      pids+=("$!")
    done
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || rc=1; done
  for lane in "${runs[@]}"; do  # whole, one after the other: no interleaved lines
    echo "--- pytest, $lane"
    cat "$STEPS_DIR/$lane.log"
  done
  return "$rc"
}

# The last lines: what ran, per suite and per Odoo series, so that a green run says what it means.
report_last_lines() {
  local pytest_line series line part odoo=()
  pytest_line=$(for out in "$STEPS_DIR"/pytest-main.out "$STEPS_DIR"/pytest-live-odoo*.out; do
    [ -f "$out" ] || continue
    part=$(basename "$out" .out)
    printf '%s: %s\n' "${part#pytest-}" "$(tail -n 1 "$out" | tr -d '=' | sed 's/^ *//; s/ *$//')"
  done | paste -sd ';' | sed 's/;/; /g')
  for series in 18 19; do
    line=$(awk -F'\t' -v s="$series" \
      '$1 == s {print $2 ", " $3 " tests ran" ($4 != "" ? " (" $4 ")" : "")}' \
      "${ODOO_TEST_LOG_DIR:-$ROOT/.odoo}/summary.tsv" 2>/dev/null || true)
    odoo+=("Odoo $series.0 addon tests: ${line:-NOT RUN (no Odoo $series.0 found here)}")
  done
  log "summary"
  {
    if [ "${#FAILED[@]}" = 0 ]; then
      echo "PASS: fmt, clippy x2, cargo test, ruff, stubtest, guard, dist, pytest, Odoo (see below)"
    else
      echo "FAIL: $(printf '%s; ' "${FAILED[@]}" | sed 's/; $//')"
    fi
    echo "pytest: ${pytest_line:-did not run}"
    printf '%s\n' "${odoo[@]}"
  } >&2
}

run_tests() {
  STEPS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/plane-dev-test.XXXXXX")
  trap stop_background EXIT
  trap 'exit 130' INT TERM HUP
  local t_all rust="Rust checks: fmt, clippy (both ways), cargo test" odoo found
  t_all=$(clock)
  ensure_rust
  # First, as they need nothing but cargo; niced: they take what the set-up, the wheel's build
  # and the tests leave of the CPU.
  background "$rust" nice -n 10 bash -c "$(declare -f rust_checks); rust_checks"
  ensure_python
  ensure_postgres
  ensure_keychain
  ensure_browser
  export PLANE_TEST_PG_DSN=${PLANE_TEST_PG_DSN:-postgresql://postgres@127.0.0.1:5432/test}
  # The last run's Odoo summary must not speak for this one.
  rm -f "${ODOO_TEST_LOG_DIR:-$ROOT/.odoo}/summary.tsv"

  step "release wheel: dist/ (manylinux2014, abi3) and the sdist" ensure_dist || exit 1
  PLANE_CONNECTOR_WHEEL=$(ls "$ROOT"/dist/*.whl)
  export PLANE_CONNECTOR_WHEEL
  step "installing $(basename "$PLANE_CONNECTOR_WHEEL") into $VENV" install_dist_wheel || exit 1

  found=$(python3 scripts/odoo_locate.py | cut -f1 | tr '\n' ' ' | sed 's/ $//')
  odoo="Odoo addon tests (${found:-no Odoo found}; the series side by side)"
  if [ -n "$found" ]; then
    # Into each Odoo once, before the addon tests and pytest's live Odoo tests start side by
    # side (their own syncs then find it there and leave it alone).
    step "the wheel into Odoo $found" scripts/odoo-tests.sh --sync-only || true
  fi
  background "$odoo" scripts/odoo-tests.sh

  step "ruff" "$VENV/bin/ruff" check python tests bench odoo_addons || true
  step "stub check (mypy.stubtest)" \
    "$PY" -m mypy.stubtest plane_connector._core --allowlist stubtest-allowlist.txt || true
  step "secrets / schema guard" guard || true
  step "pytest (all but the live Odoo tests, beside the addon tests)" pytest_main || true
  # The live Odoo tests start now, beside the addon tests' last minute or two: their first
  # minutes build the template databases and wait on servers and webhooks. The one whose goals
  # are timings (the chaos run, marker cpu_timed) waits for the addon step's end mark first
  # (tests/conftest.py), so it still has the CPU to itself.
  live="pytest: the live Odoo tests ($LIVE_ODOO_TESTS; ${found:-no Odoo found})"
  # shellcheck disable=SC2086 # a list of series
  PLANE_TIMED_TESTS_AFTER="$(slot_of "$odoo").end" \
    background "$live" bash -c "$(declare -f pytest_part pytest_live_odoo); \
      LIVE_ODOO_LANES='$LIVE_ODOO_LANES' PY='$PY' STEPS_DIR='$STEPS_DIR' \
      pytest_live_odoo $found"
  finish "$odoo"
  # The Rust checks' output before the live pytest run's, so that the last runner lines of
  # the log are pytest's counts, not cargo's doc-test "0 passed".
  finish "$rust"
  finish "$live"
  log "done in $(( ($(clock) - t_all) / 60 )) min $(( ($(clock) - t_all) % 60 )) s; the steps, slowest first:"
  sort -rn <<<"$STEP_TIMES" | sed '/^$/d' >&2
  report_last_lines
  [ "${#FAILED[@]}" = 0 ]
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
