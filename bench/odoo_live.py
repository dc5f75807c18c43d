"""A live prefork Odoo (18.0, 19.0) for the benchmarks of the product's own paths inside Odoo.

Odoo servers are found the way the Odoo tests find them (scripts/odoo_locate.py: ODOO<N>_PATH,
ODOO<N>_VENV, ODOO<N>_PYTHON, or ~/.config/plane-connector/odoo.env); a benchmark with none is
SKIPPED with the reason. Per series, one server is started for the whole ``python -m bench`` run
and shared by the Odoo benchmarks (installing a database takes a minute or more):

* this tree's plane_connector is synced into that Odoo's Python (``odoo-tests.sh --sync-only``);
* a fresh database gets ``ipai_plane_project_sync`` and the bench-only ``ipai_plane_bench``
  (bench/odoo_addons: the trivial route of the webhook benchmark, never shipped);
* the server runs prefork (``--workers 2`` and Odoo's default two cron workers), with the
  Plane API keys and the webhook secret in its environment (fake, made at run time);
* bench-only PostgreSQL triggers NOTIFY the benchmark of every sync-job, delivery and task change,
  which the benchmark timestamps when the transaction commits (a NOTIFY is delivered then);
* the server is stopped and its database dropped by :func:`stop_all` (``python -m bench`` calls
  it at the end, and at exit in any case).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import secrets
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import odoo_db
from bench.common import BENCH_DIR, BenchResult, Skip

log = logging.getLogger("bench.odoo")

ROOT = BENCH_DIR.parent
MODULES = ("ipai_plane_project_sync", "ipai_plane_bench")
DB_HOST = os.environ.get("ODOO_DB_HOST", "127.0.0.1")
DB_PORT = os.environ.get("ODOO_DB_PORT", "5432")
DB_USER = os.environ.get("ODOO_DB_USER", "odoo")  # Odoo 19 refuses the "postgres" role
HTTP_WORKERS = 2
CRON_WORKERS = 2  # Odoo's default --max-cron-threads
#: One API key per benchmark (its own budget row in PostgreSQL), one webhook secret.
KEY_ENVS = {name: f"PLANE_BENCH_KEY_{name.upper()}" for name in ("latency", "backfill", "webhook")}
SECRET_ENV = "PLANE_BENCH_WEBHOOK_SECRET"

# Timestamped at commit: sync jobs (created, claimed, done), deliveries (stored, processed) and
# the task fields the latency benchmark changes.
_NOTIFY_SQL = """
CREATE OR REPLACE FUNCTION bench_notify_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bench_job', json_build_object('op', TG_OP, 'id', NEW.id,
    'task', NEW.task_id, 'kind', NEW.kind, 'state', NEW.state)::text);
  RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION bench_notify_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bench_delivery', json_build_object('op', TG_OP, 'id', NEW.id,
    'delivery', NEW.delivery_id, 'state', NEW.state)::text);
  RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION bench_notify_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bench_task', json_build_object('id', NEW.id, 'stage', NEW.stage_id,
    'name', NEW.name)::text);
  RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS bench_job ON plane_sync_job;
CREATE TRIGGER bench_job AFTER INSERT OR UPDATE ON plane_sync_job
  FOR EACH ROW EXECUTE FUNCTION bench_notify_job();
DROP TRIGGER IF EXISTS bench_delivery ON plane_webhook_delivery;
CREATE TRIGGER bench_delivery AFTER INSERT OR UPDATE OF state ON plane_webhook_delivery
  FOR EACH ROW EXECUTE FUNCTION bench_notify_delivery();
DROP TRIGGER IF EXISTS bench_task ON project_task;
CREATE TRIGGER bench_task AFTER UPDATE ON project_task FOR EACH ROW
  WHEN (OLD.stage_id IS DISTINCT FROM NEW.stage_id OR OLD.name IS DISTINCT FROM NEW.name)
  EXECUTE FUNCTION bench_notify_task();
"""

_LOG_LINE = odoo_db.LOG_LINE


def _load_locator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "odoo_locate", ROOT / "scripts" / "odoo_locate.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("odoo_locate", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_located: tuple[dict[str, Any], dict[str, str]] | None = None


def locate() -> tuple[dict[str, Any], dict[str, str]]:
    """({series: Odoo}, {series: why not found}), looked up once per run."""
    global _located
    if _located is None:
        found, missing = _load_locator().find_all()
        _located = ({o.series: o for o in found}, missing)
    return _located


def wanted_series() -> list[str]:
    """``ODOO_SERIES`` (e.g. ``19``): the series this run is narrowed to; [] when unset."""
    return os.environ.get("ODOO_SERIES", "").replace(",", " ").split()


def series_or_skip() -> tuple[list[str], dict[str, str]]:
    """The series to measure, and why the others are not; Skip when there is none.

    ``ODOO_SERIES`` (e.g. ``19``) narrows the run, as it does for scripts/odoo-tests.sh."""
    found, missing = locate()
    wanted = wanted_series()
    if wanted:
        missing = {**{s: "not in ODOO_SERIES" for s in found if s not in wanted},
                   **{s: why for s, why in missing.items() if s in wanted}}
        found = {s: o for s, o in found.items() if s in wanted}
    if not found:
        raise Skip(
            "no Odoo found: "
            + "; ".join(f"{s}.0 {why}" for s, why in sorted(missing.items()))
            + " (see scripts/odoo_locate.py)"
        )
    return sorted(found), missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    """The first truthy value of ``predicate()``; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


@dataclass
class Event:
    """One NOTIFY from the bench triggers, with the moment it arrived (≈ its commit)."""

    at: float
    channel: str
    data: dict[str, Any]


class Listener:
    """LISTENs on the bench channels in a thread; ``wait`` for an event matching a predicate."""

    CHANNELS = ("bench_job", "bench_delivery", "bench_task")

    def __init__(self, dsn: str) -> None:
        import psycopg2

        self._conn = psycopg2.connect(dsn)
        self._conn.autocommit = True
        with self._conn.cursor() as cur:
            for channel in self.CHANNELS:
                cur.execute(f"LISTEN {channel}")
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="bench-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            if select.select([self._conn], [], [], 0.2)[0]:
                now = time.time()
                self._conn.poll()
                batch = []
                while self._conn.notifies:
                    n = self._conn.notifies.pop(0)
                    batch.append(Event(now, n.channel, json.loads(n.payload)))
                if batch:
                    with self._cond:
                        self.events.extend(batch)
                        self._cond.notify_all()

    def mark(self) -> int:
        """An index to wait from (events before it are ignored)."""
        with self._cond:
            return len(self.events)

    def wait(self, match: Callable[[Event], bool], since: int, timeout: float) -> Event | None:
        """The first event from index ``since`` on that matches; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self.events):
                    if match(self.events[i]):
                        return self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self._conn.close()


@dataclass
class LiveOdoo:
    """One running prefork Odoo server of one series, with its own database."""

    series: str
    path: Path
    python: str
    keys: dict[str, str] = field(default_factory=dict)
    webhook_secret: str = ""
    db: str = ""
    port: int = 0
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    listener: Listener | None = None
    uid: int = 0
    start_seconds: float = 0.0
    #: More environment for the server (e.g. a live Plane's key, referenced as env:NAME).
    extra_env: dict[str, str] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dsn(self) -> str:
        return f"postgresql://{DB_USER}@{DB_HOST}:{DB_PORT}/{self.db}"

    def _base_cmd(self) -> list[str]:
        dirs = [d for d in (self.path / "addons", self.path / "odoo" / "addons") if d.is_dir()]
        addons = ",".join([*map(str, dirs), str(ROOT / "odoo_addons"),
                           str(BENCH_DIR / "odoo_addons")])
        return [self.python, str(self.path / "odoo-bin"), f"--addons-path={addons}",
                "-d", self.db, "--db_host", DB_HOST, "--db_port", DB_PORT, "--db_user", DB_USER,
                "--http-interface", "127.0.0.1"]  # fmt: skip

    def _env(self) -> dict[str, str]:
        # The server gets only the PLANE_* variables the harness gives it. The addons read
        # PLANE_BASE_URL, PLANE_*_REF, PLANE_CA_BUNDLE and the PLANE_SECRET_* policy from the
        # environment as the operator's settings, and an operator's secret option pins the
        # base URL to the operator's host (issue 21.3): a lab's live.env (it exports
        # PLANE_BASE_URL and PLANE_API_KEY_REF for `plane-connector health`) inherited here
        # sent the chaos run's Odoo straight to the real Plane instead of the fault proxy, and
        # with the wrong key.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLANE_")}
        for name, key in self.keys.items():
            env[KEY_ENVS[name]] = key
        env[SECRET_ENV] = self.webhook_secret
        env.update(self.extra_env)
        return env

    def start(self) -> LiveOdoo:
        started = time.perf_counter()
        odoo_db.sync(self.series)
        check = subprocess.run(
            ["psql", "-h", DB_HOST, "-p", DB_PORT, "-U", DB_USER, "-d", "postgres", "-Atc",
             "SELECT 1"], capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if check.returncode != 0:
            raise Skip(f"PostgreSQL role {DB_USER!r} cannot connect at {DB_HOST}:{DB_PORT} "
                       f"(createuser -h {DB_HOST} -U postgres --createdb {DB_USER})")
        self.keys = {name: "plane_api_" + secrets.token_hex(16) for name in KEY_ENVS}
        self.webhook_secret = "plane_wh_" + secrets.token_hex(16)
        self.db = f"plane_bench{self.series}_{uuid.uuid4().hex[:8]}"
        self._tmp = tempfile.TemporaryDirectory(prefix=f"bench-odoo{self.series}-")
        self.log_path = Path(self._tmp.name) / "odoo.log"
        log.info("Odoo %s: %s into %s", self.series, ",".join(MODULES), self.db)
        # The other series measured in this run get their template beside this one.
        others = {s: o for s, o in locate()[0].items()
                  if not wanted_series() or s in wanted_series()}
        odoo_db.create(self, MODULES, self.db, found=others)
        self._install_notify_triggers()
        self.port = free_port()
        # Appending: Odoo's --logfile handler appends too, so neither writer overwrites the
        # other's lines (a crashing child's stderr went over the log records otherwise).
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [*self._base_cmd(), *odoo_db.data_dir_args(), "--workers", str(HTTP_WORKERS),
                 "--max-cron-threads", str(CRON_WORKERS), "--http-port", str(self.port),
                 # not Odoo's fixed 8072: another server on the machine may hold it
                 "--gevent-port", str(free_port()),
                 f"--db-filter=^{self.db}$", "--logfile", str(self.log_path),
                 # the cron's own timeline (job acquired/released, workers notified)
                 "--log-handler", "odoo.addons.base.models.ir_cron:DEBUG"],
                stdout=out, stderr=subprocess.STDOUT, env=self._env(),
                # its own process group: the master, its workers and its gevent child are
                # stopped together, even a worker the master lost track of
                start_new_session=True,
            )  # fmt: skip
        common = xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/common")
        self.uid = wait_until(
            lambda: _try(lambda: common.authenticate(self.db, "admin", "admin", {})),
            120, f"Odoo {self.series} to answer XML-RPC", step=0.3,
        )
        self.listener = Listener(self.dsn)
        self.start_seconds = time.perf_counter() - started
        time.sleep(1.0)  # a child that cannot start has crashed by now
        crashed = odoo_db.crashed_outside_logging(self.log_lines(), self.series)
        if crashed:
            raise RuntimeError(crashed)
        log.info("Odoo %s up on %s in %.0fs", self.series, self.url, self.start_seconds)
        return self

    def _install_notify_triggers(self) -> None:
        import psycopg2

        conn = psycopg2.connect(self.dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(_NOTIFY_SQL)
        finally:
            conn.close()

    def call(self, model: str, method: str, *args: Any, **kw: Any) -> Any:
        """``execute_kw`` as admin (a new connection per call: the proxy is not thread-safe)."""
        models = xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/object", allow_none=True)
        return models.execute_kw(self.db, self.uid, "admin", model, method, list(args), kw)

    def set_params(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self.call("ir.config_parameter", "set_param", key, value)

    def configure_plane(self, emu: Any, key_name: str, *, rpm: int, window: float) -> None:
        """Point the connector at ``emu`` with this benchmark's API key and rate settings."""
        self.set_params({
            "plane.base_url": emu.base_url,
            "plane.workspace_slug": emu.workspace_slug,
            "plane.api_key_ref": f"env:{KEY_ENVS[key_name]}",
            "plane.webhook_secret_ref": f"env:{SECRET_ENV}",
            "plane.requests_per_minute": str(rpm),
            "plane.rate_window": str(window),
        })  # fmt: skip

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg2

        conn = psycopg2.connect(self.dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def cron_id(self, xmlid: str) -> int:
        module, name = xmlid.split(".")
        rows = self.sql("SELECT res_id FROM ir_model_data WHERE module = %s AND name = %s",
                        (module, name))
        return int(rows[0][0])

    def log_offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path and self.log_path.exists() else 0

    def log_lines(self, offset: int = 0) -> list[str]:
        if not self.log_path or not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace").splitlines()

    def log_errors(self, offset: int = 0) -> list[str]:
        """ERROR / CRITICAL lines of the server log from ``offset`` on, and the tracebacks of
        processes that crashed outside Odoo's logging (a child's stderr goes to the same file)."""
        out = []
        previous = ""
        for line in self.log_lines(offset):
            if " ERROR " in line or " CRITICAL " in line:
                out.append(line)
            elif line.startswith("Traceback (most recent call last)") and not _LOG_LINE.match(
                previous
            ):
                out.append(line)
            if not line.startswith(" "):
                previous = line
        return out

    def log_events(self, offset: int = 0) -> list[tuple[float, int, str, str]]:
        """(epoch seconds, pid, logger, message) of each log line from ``offset`` on."""
        out = []
        for line in self.log_lines(offset):
            m = _LOG_LINE.match(line)
            if m:
                stamp = time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
                # Odoo logs local time; this process shares the machine's zone.
                epoch = time.mktime(stamp)
                out.append((epoch + int(m.group(2)) / 1000, int(m.group(3)), m.group(6),
                            m.group(7)))
        return out

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.proc is not None:
            odoo_db.terminate(self.proc)
            try:  # whatever of the group is left (the master's pid is the group's id)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc = None
        if self.db:
            odoo_db.drop(self.db)
            self.db = ""
        if self._tmp is not None:
            keep = os.environ.get("PLANE_BENCH_KEEP_ODOO_LOG")
            if keep and self.log_path and self.log_path.exists():
                Path(keep).mkdir(parents=True, exist_ok=True)
                dest = Path(keep) / f"odoo{self.series}.log"
                dest.write_bytes(self.log_path.read_bytes())
            self._tmp.cleanup()
            self._tmp = None


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (OSError, xmlrpc.client.Error):
        return None


_servers: dict[str, LiveOdoo] = {}
_failed: dict[str, BaseException] = {}


def server(series: str) -> LiveOdoo:
    """The running server of ``series`` for this run (started on first use)."""
    if series in _failed:
        raise RuntimeError(f"Odoo {series} did not start: {_failed[series]}")
    if series not in _servers:
        found, _ = locate()
        odoo = found[series]
        live = LiveOdoo(series, odoo.path, odoo.python)
        try:
            live.start()
        except BaseException as exc:
            live.stop()
            if not isinstance(exc, Skip):
                _failed[series] = exc
            raise
        _servers[series] = live
    return _servers[series]


def stop_all() -> None:
    """Stop every server this run started and drop their databases."""
    for series in list(_servers):
        _servers.pop(series).stop()


atexit.register(stop_all)


def per_series(
    res: BenchResult,
    details: dict[str, Any],
    measure: Callable[[LiveOdoo], dict[str, Any]],
    figures: Callable[[str, dict[str, Any]], None],
) -> BenchResult:
    """Run ``measure`` on the server of each Odoo series found and let ``figures(series, out)``
    add that series' rows to ``res``. A series that fails is reported as an error of the
    benchmark without hiding the other's figures; series not found are named in the notes."""
    found, missing = series_or_skip()
    notes = [f"Odoo {s}.0 not measured: {why}" for s, why in sorted(missing.items())]
    errors = []
    for series in found:
        try:
            out = measure(server(series))
        except Skip:
            raise  # a missing prerequisite (PostgreSQL role) holds for every series
        except Exception as exc:  # noqa: BLE001 - one series failing must not hide the other
            log.exception("%s on Odoo %s failed", res.name, series)
            errors.append(f"Odoo {series}.0: {type(exc).__name__}: {exc}")
            continue
        details[series] = out
        figures(series, out)
        notes.extend(out.get("notes", []))
    details["notes"] = notes
    res.details = details
    if errors:
        res.status, res.reason = "error", "; ".join(errors)
    return res


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile (``q`` in 1..99), interpolated between the two nearest ranks:
    ``statistics.quantiles``' "inclusive" method (numpy's default), so that p95 of a small
    sample is not simply its largest value. One value is its own percentile (quantiles wants
    two)."""
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
