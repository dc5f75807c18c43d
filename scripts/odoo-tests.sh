#!/usr/bin/env bash
# Run the Odoo addons' tests (odoo_addons/*/tests) on every real Odoo found: 18.0 and 19.0.
#
#   scripts/odoo-tests.sh            # both series, when present
#   ODOO_SERIES=19 scripts/odoo-tests.sh
#   ODOO_MODULES=ipai_plane_connector scripts/odoo-tests.sh
#   ODOO_TEST_TAGS=/ipai_plane_project_sync:TestPlaneOutage scripts/odoo-tests.sh
#   scripts/odoo-tests.sh --sync-only   # only bring each Odoo venv's plane_connector up to date
#
# Which Odoo servers: scripts/odoo_locate.py decides, from ODOO18_PATH / ODOO19_PATH (a server
# checkout), ODOO18_VENV / ODOO19_VENV or ODOO18_PYTHON / ODOO19_PYTHON (a Python that imports
# odoo), set in the environment or in ~/.config/plane-connector/odoo.env. Nothing about a
# machine is baked in: a series not found is reported as such and skipped.
# Which plane_connector: PLANE_CONNECTOR_WHEEL=dist/<wheel>.whl installs that wheel file into
# each Odoo Python (--no-deps: Odoo's pins never move); without it, this tree is synced in.
# PostgreSQL: ODOO_DB_HOST (127.0.0.1), ODOO_DB_USER (odoo: Odoo 19 refuses the "postgres"
# role), ODOO_DB_PORT (5432).
#
# odoo-bin exits 0 even when an addon silently failed to install (then zero tests ran), so
# the log is checked too: any ERROR/CRITICAL line, a failed/errored test summary, or no test
# of one of our modules having run, fails the run. The last lines (and $LOG_DIR/summary.tsv)
# say how many tests ran per series, or plainly that none did.
#
# The series run side by side (each its own database, port, Chromium profile and log; the
# output of each is printed whole when it ends). PLANE_REQUIRE_ODOO="18 19" (set by .ci/run for
# the series a machine configures) turns "not found" and "tours left out" into failures.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DB_HOST=${ODOO_DB_HOST:-127.0.0.1}
DB_PORT=${ODOO_DB_PORT:-5432}
DB_USER=${ODOO_DB_USER:-odoo}
SERIES=${ODOO_SERIES:-"18 19"}
REQUIRED=" $(echo "${PLANE_REQUIRE_ODOO:-}" | tr , ' ') "
required() { [[ "$REQUIRED" == *" $1 "* ]]; }
LOG_DIR=${ODOO_TEST_LOG_DIR:-$ROOT/.odoo}
mkdir -p "$LOG_DIR"

# Our addons with tests, in install order (a module absent from the tree is skipped);
# ODOO_MODULES=a,b narrows the run.
MODULES=()
for m in $(echo "${ODOO_MODULES:-ipai_plane_connector ipai_bir_plane_sync ipai_plane_project_sync}" | tr , ' '); do
  [ -f "odoo_addons/$m/__manifest__.py" ] && MODULES+=("$m")
done
MODULE_LIST=$(IFS=,; echo "${MODULES[*]}")
# Only our modules' tests: -i with --test-enable would also run base's and web's (minutes, and
# some need wkhtmltopdf).
TEST_TAGS=$(printf '/%s,' "${MODULES[@]}"); TEST_TAGS=${TEST_TAGS%,}
# ODOO_TEST_TAGS narrows further while iterating (Odoo's --test-tags syntax), e.g.
# ODOO_TEST_TAGS=/ipai_plane_project_sync:TestPlaneOutage; CI never sets it.
TEST_TAGS=${ODOO_TEST_TAGS:-$TEST_TAGS}
# The browser tours (tests tagged plane_tour) need Chromium, looked up as Odoo's HttpCase does.
CHROME=$(command -v google-chrome chromium chromium-browser google-chrome-stable 2>/dev/null | head -1)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Bring the Odoo Python's plane_connector up to date: the wheel file named by
# PLANE_CONNECTOR_WHEEL (what users install), or else this tree. Fast path for the tree: it holds
# a built extension (dev.sh's `maturin develop`), so the package directory is copied over the
# installed one (~0.1 s). Otherwise the wheel is built from the tree and installed (minutes: Rust).
sync_wheel() {
  local py=$1 site
  site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
  if [ -n "${PLANE_CONNECTOR_WHEEL:-}" ]; then
    [ -f "$PLANE_CONNECTOR_WHEEL" ] || { echo "PLANE_CONNECTOR_WHEEL=$PLANE_CONNECTOR_WHEEL: no such file"; return 1; }
    # Already there byte for byte: no reinstall, so the --sync-only of a test (tests/odoo,
    # bench) never swaps the package under an Odoo that another run has started from it.
    if wheel_installed "$py" "$site"; then
      echo "$(basename "$PLANE_CONNECTOR_WHEEL") is installed in $site"
      return 0
    fi
    echo "installing $(basename "$PLANE_CONNECTOR_WHEEL") into $site"
    "$py" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall \
      "$PLANE_CONNECTOR_WHEEL" || return 1
    return 0
  fi
  # A real install first (its dist-info is what Odoo's external_dependencies check reads).
  if ! "$py" -c 'import importlib.metadata as m; m.version("plane_connector")' 2>/dev/null \
      || ! ls python/plane_connector/_core*.so >/dev/null 2>&1; then
    echo "installing the plane_connector wheel into $site (builds the Rust core)"
    "$py" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$ROOT" || return 1
    return 0
  fi
  if ! diff -rq -x __pycache__ python/plane_connector "$site/plane_connector" >/dev/null 2>&1; then
    echo "syncing plane_connector from the tree into $site"
    rsync -a --delete --exclude __pycache__ python/plane_connector/ "$site/plane_connector/" || return 1
  fi
}

# Whether every file of the wheel PLANE_CONNECTOR_WHEEL is in site-packages with the hash its
# RECORD gives.
wheel_installed() {
  "$1" - "$PLANE_CONNECTOR_WHEEL" "$2" <<'EOF' 2>/dev/null
import base64, csv, hashlib, io, sys, zipfile
from pathlib import Path
wheel, site = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel) as zf:
    [record] = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
    rows = list(csv.reader(io.TextIOWrapper(zf.open(record), "utf-8")))
for name, digest, _size in rows:
    if not digest:
        continue
    algo, _, want = digest.partition("=")
    path = site / name
    if not path.is_file():
        sys.exit(1)
    got = base64.urlsafe_b64encode(hashlib.new(algo, path.read_bytes()).digest())
    if got.rstrip(b"=").decode() != want:
        sys.exit(1)
EOF
}

# Odoo drives Chromium through websocket-client, which its requirements.txt does not list. When
# Odoo's Python lacks it, the copy in this project's dev venv is lent on PYTHONPATH: a directory
# holding only that (pure-Python) package, so nothing else of the dev venv reaches Odoo.
websocket_path() {
  # One directory per run and series: the series start side by side.
  local py=$1 dir="$LOG_DIR/pylib.$$.$2" src
  "$py" -c 'import websocket' 2>/dev/null && return 0
  src=$("${PLANE_CONNECTOR_VENV:-$ROOT/.venv}/bin/python" -c \
    'import os, websocket; print(os.path.dirname(websocket.__file__))' 2>/dev/null) || return 1
  mkdir -p "$dir" && ln -sfn "$src" "$dir/websocket" && echo "$dir"
}

# One line per run for the summary: series, PASS/FAIL, tests run, what was left out.
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$SUMMARY"; }

run_series() {
  local series=$1 odoo=$2 py=$3
  if ! psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; then
    # A fresh machine has only the superuser: make the login role Odoo needs (idempotent).
    createuser -h "$DB_HOST" -p "$DB_PORT" -U postgres --createdb "$DB_USER" 2>/dev/null || true
  fi
  if ! psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; then
    echo "FAIL: cannot connect to PostgreSQL $DB_HOST:$DB_PORT as '$DB_USER' (Odoo 19 refuses the"
    echo "      'postgres' role): createuser -h $DB_HOST -U postgres --createdb $DB_USER"
    record "$series" FAIL 0
    return 1
  fi
  local addons="$ROOT/odoo_addons"
  [ -d "$odoo/addons" ] && addons="$odoo/addons,$addons"
  [ -d "$odoo/odoo/addons" ] && addons="$odoo/odoo/addons,$addons"
  # Without Chromium or websocket-client, Odoo would skip the tours one by one: leave them out
  # and say so.
  local tags=$TEST_TAGS note="" pypath="" run=()
  if [ -z "$CHROME" ]; then
    note="no Chromium found: browser tours skipped"
  elif ! pypath=$(websocket_path "$py" "$series"); then
    note="websocket-client not installed in $py (Odoo drives Chromium with it): browser tours skipped"
  fi
  [ -n "$pypath" ] && run=(env "PYTHONPATH=$pypath${PYTHONPATH:+:$PYTHONPATH}")
  local tours_missing=0
  if [ -n "$note" ]; then
    echo "   $note"
    tags="$tags,-plane_tour"
    required "$series" && tours_missing=1
  else
    echo "   browser tours: $CHROME${pypath:+ (websocket-client lent from $pypath)}"
  fi
  local db="plane_odoo${series}_test_$$" port log extra=()
  port=$(free_port)
  log="$LOG_DIR/odoo$series-tests.$$.log"  # per run: CI and a developer may run at once
  # 18 loads demo data unless told not to; 19 loads none by default. Tests never need it.
  [ "$series" -lt 19 ] && extra+=(--without-demo=all)
  dropdb -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" --if-exists "$db" 2>/dev/null
  echo "== Odoo $series.0 ($odoo, $py): installing $MODULE_LIST with tests into database $db"
  local start=$SECONDS
  "${run[@]}" "$py" "$odoo/odoo-bin" --addons-path="$addons" -d "$db" -i "$MODULE_LIST" \
    --db_host "$DB_HOST" --db_port "$DB_PORT" --db_user "$DB_USER" \
    --test-enable --test-tags "$tags" --stop-after-init --log-level=test --http-port "$port" \
    --http-interface 127.0.0.1 --max-cron-threads 0 "${extra[@]}" >"$log" 2>&1
  local rc=$?
  dropdb -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" --if-exists "$db" 2>/dev/null
  local final="$LOG_DIR/odoo$series-tests.log" ok=0
  "$py" "$ROOT/scripts/odoo_log_check.py" --series "$series" --rc "$rc" \
    --seconds $((SECONDS - start)) "$log" "${MODULES[@]}" || ok=1
  mv -f "$log" "$final" && echo "   log: $final"
  [ -n "$pypath" ] && rm -rf "$pypath"
  if [ "$tours_missing" = 1 ]; then
    echo "   FAIL: Odoo $series.0 is required with its browser tours (PLANE_REQUIRE_ODOO)"
    ok=1
  fi
  local ran
  ran=$(grep -oE '[0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests' "$final" | awk '{s += $(NF-1)} END {print s + 0}')
  record "$series" "$([ $ok = 0 ] && echo PASS || echo FAIL)" "$ran" "$note"
  return $ok
}

SYNC_ONLY=0
[ "${1:-}" = "--sync-only" ] && SYNC_ONLY=1
# Per run, then moved into place: a --sync-only from a test may run beside a full run.
SUMMARY="$LOG_DIR/summary.$$.tsv"
: >"$SUMMARY"

status=0
found=$(python3 "$ROOT/scripts/odoo_locate.py" --series "$SERIES" --explain 2>"$LOG_DIR/locate.$$.txt")
sed 's/^/   /' "$LOG_DIR/locate.$$.txt"
rm -f "$LOG_DIR/locate.$$.txt"
# Each Odoo Python gets this plane_connector first, one after the other (seconds)...
ready=()
while IFS=$'\t' read -r series odoo py; do
  [ -n "$series" ] || continue
  if sync_wheel "$py"; then
    ready+=("$series"$'\t'"$odoo"$'\t'"$py")
  else
    echo "FAIL: could not install plane_connector into $py"
    record "$series" FAIL 0
    status=1
  fi
done <<<"$found"

# ... then the series run side by side (minutes each, one CPU each), every one into its own
# file, printed whole in series order so that their lines never interleave.
if [ "$SYNC_ONLY" = 0 ]; then
  pids=() outs=()
  for entry in "${ready[@]}"; do
    IFS=$'\t' read -r series odoo py <<<"$entry"
    out="$LOG_DIR/odoo$series-run.$$.txt"
    run_series "$series" "$odoo" "$py" </dev/null >"$out" 2>&1 &
    pids+=("$!") outs+=("$out")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=1
    cat "${outs[$i]}" && rm -f "${outs[$i]}"
  done
  for s in $SERIES; do
    if required "$s" && ! awk -F'\t' -v s="$s" '$1 == s {f = 1} END {exit !f}' "$SUMMARY"; then
      record "$s" FAIL 0 "required (PLANE_REQUIRE_ODOO) but no Odoo $s.0 found"
      status=1
    fi
  done
fi

if [ "$SYNC_ONLY" = 0 ]; then
  echo "== Odoo tests summary"
  for s in $SERIES; do
    line=$(awk -F'\t' -v s="$s" '$1 == s' "$SUMMARY")
    if [ -n "$line" ]; then
      note=$(cut -f4 <<<"$line")
      echo "   Odoo $s.0: $(cut -f2 <<<"$line"), $(cut -f3 <<<"$line") tests ran${note:+ ($note)}"
    else
      echo "   Odoo $s.0: NOT RUN, no Odoo $s.0 found (see above; README, 'Odoo tests')"
    fi
  done
  mv -f "$SUMMARY" "$LOG_DIR/summary.tsv"
else
  rm -f "$SUMMARY"
fi
exit $status
