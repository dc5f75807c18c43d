"""A real Odoo server in prefork mode for the end-to-end tests (shared by tests/odoo/test_live_*).

It gives the server a fresh database with the given modules (a copy of a template into which
they were installed once per run: bench/odoo_db.py), starts ``--workers 2`` with a cron worker
on a free loopback port, and talks to it over XML-RPC. Odoo is found as scripts/odoo-tests.sh
finds it (scripts/odoo_locate.py: ODOO<N>_PATH, _PYTHON, _VENV or the per-user odoo.env).
"""

from __future__ import annotations

import http.cookiejar
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ lives at the repository root, outside the package
    sys.path.insert(0, str(ROOT))

from bench import odoo_db  # noqa: E402

DB_USER = odoo_db.DB_USER

# Odoo is found the way scripts/odoo-tests.sh finds it (scripts/odoo_locate.py).
if "odoo_locate" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "odoo_locate", ROOT / "scripts" / "odoo_locate.py")
    assert _spec and _spec.loader
    sys.modules["odoo_locate"] = importlib.util.module_from_spec(_spec)  # for dataclasses
    _spec.loader.exec_module(sys.modules["odoo_locate"])
#: ``ODOO_SERIES`` (e.g. ``19``) narrows the run, as it does for scripts/odoo-tests.sh and bench.
NARROWED = tuple(os.environ.get("ODOO_SERIES", "").replace(",", " ").split())
FOUND, MISSING = sys.modules["odoo_locate"].find_all(*[NARROWED] if NARROWED else [])
SERVERS = {o.series: o for o in FOUND}
SERIES = sorted(SERVERS)
NOT_FOUND = "no Odoo found: " + "; ".join(f"{s}.0 {why}" for s, why in MISSING.items())
#: Series that must run here: .ci/run sets it to those the machine configures, so that an Odoo
#: gone missing fails its tests instead of skipping them.
REQUIRED = sorted(s for s in set(os.environ.get("PLANE_REQUIRE_ODOO", "").replace(",", " ").split())
                  if not NARROWED or s in NARROWED)


def series_params() -> list[Any]:
    """Params of a per-series fixture: each series found and each required one (which fails in
    ``server()`` when not found), else one skipped param that says why none runs."""
    wanted = sorted(set(SERIES) | set(REQUIRED))
    return wanted or [pytest.param("none", marks=pytest.mark.skip(reason=NOT_FOUND))]


def server(series: str) -> Any:
    """The Odoo found for ``series``; a required one not found fails the test."""
    if series not in SERVERS:
        pytest.fail(f"Odoo {series}.0 is required here (PLANE_REQUIRE_ODOO) but not found: "
                    f"{MISSING.get(series, 'not looked for')}")
    return SERVERS[series]


def addons_path(series: str) -> str:
    """Odoo's own addons and ours, for ``--addons-path``."""
    return ",".join([*map(str, SERVERS[series].addons_dirs), str(ROOT / "odoo_addons")])


def plane_settings(base_url: str, workspace: str, key_var: str, secret_var: str,
                   **more: str) -> dict[str, str]:
    """Settings > Plane of a test server: the API key and the webhook secret are read from
    these environment variables of its process (references, never the values)."""
    return {"plane.base_url": base_url, "plane.workspace_slug": workspace,
            "plane.api_key_ref": f"env:{key_var}", "plane.webhook_secret_ref": f"env:{secret_var}",
            **{f"plane.{k}": v for k, v in more.items()}}


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a test server: this process's, without its ``PLANE_*`` variables,
    plus ``extra`` (the test's own, e.g. the key its settings reference as ``env:NAME``).

    The addons read ``PLANE_BASE_URL``, ``PLANE_*_REF``, ``PLANE_CA_BUNDLE`` and the
    ``PLANE_SECRET_*`` policy from the environment as the operator's settings, and an operator's
    secret option pins the base URL to the operator's host (issue 21.3): a lab's live.env
    (docs/live-plane.md) inherited here would send the test's Odoo to the real Plane with the
    lab's key instead of the emulator the test set in Settings (bench/odoo_live.py does the
    same for the benchmarks' servers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANE_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def attempt(fn):
    try:
        return fn()
    except (OSError, xmlrpc.client.Error):
        return None


class OdooServer:
    """One database, one prefork server; ``call(model, method, *args, **kw)`` as admin.
    ``env``: the variables the test gives the server beside the process's own non-``PLANE_*``
    ones (:func:`server_env`)."""

    def __init__(self, series: str, modules: str, env: dict[str, str], log: Path,
                 db_prefix: str = "plane_live") -> None:
        self.series = series
        self.odoo = server(series)
        self.path, self.python = self.odoo.path, self.odoo.python
        self.modules = modules
        self.env = server_env(env)
        self.log = log
        self.db = f"{db_prefix}{series}_{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self._opener: urllib.request.OpenerDirector | None = None

    def _base(self) -> list[str]:
        return [self.python, str(self.path / "odoo-bin"),
                f"--addons-path={addons_path(self.series)}", "-d", self.db,
                "--db_host", "127.0.0.1", "--db_user", DB_USER,
                "--http-interface", "127.0.0.1"]

    def start(self) -> OdooServer:
        # That Odoo must run this tree's plane_connector, not the one synced last time.
        odoo_db.sync(self.series)
        # A copy of the template that tests/conftest.py built before the first test when the
        # test module names it in ODOO_TEMPLATES (else it is built here, on first use).
        odoo_db.create(self, self.modules.split(","), self.db)
        port = free_port()
        # stdout apart: two writers on one file overwrite each other's lines.
        with open(self.log.with_suffix(".out"), "w") as out:
            self.proc = subprocess.Popen(
                [*self._base(), *odoo_db.data_dir_args(), "--workers", "2",
                 "--max-cron-threads", "1",
                 "--http-port", str(port), "--gevent-port", str(free_port()),
                 f"--db-filter=^{self.db}$", "--logfile", str(self.log)],
                stdout=out, stderr=subprocess.STDOUT, env=self.env,
            )
        self.url = f"http://127.0.0.1:{port}"
        common = xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/common")
        self.uid = wait_until(
            lambda: attempt(lambda: common.authenticate(self.db, "admin", "admin", {})),
            120, "Odoo to answer XML-RPC")
        self._models = xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/object", allow_none=True)
        self.check_no_crash()
        return self

    def check_no_crash(self) -> None:
        """Fail when a process of this server died outside Odoo's logging (its stdout and
        stderr go to the ``.out`` file): a crash-looping child is a broken machine, and every
        test on it would run short of CPU."""
        out = self.log.with_suffix(".out")
        lines = out.read_text(errors="replace").splitlines() if out.exists() else []
        crashed = odoo_db.crashed_outside_logging(lines, self.series)
        if crashed:
            pytest.fail(crashed)

    def call(self, model: str, method: str, *args: Any, **kw: Any) -> Any:
        return self._models.execute_kw(self.db, self.uid, "admin", model, method, list(args), kw)

    def web(self, route: str, params: dict[str, Any]) -> Any:
        """A JSON-RPC call to a web route, in an admin browser session (as the web client)."""
        if self._opener is None:
            self._opener = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            self.web("/web/session/authenticate",
                     {"db": self.db, "login": "admin", "password": "admin"})
        body = json.dumps({"jsonrpc": "2.0", "method": "call", "params": params}).encode()
        request = urllib.request.Request(  # noqa: S310 - the loopback server's own URL
            f"{self.url}{route}", data=body, method="POST",
            headers={"Content-Type": "application/json"})
        with self._opener.open(request, timeout=60) as response:  # noqa: S310 - loopback
            answer = json.loads(response.read())
        if "error" in answer:
            raise AssertionError(f"{route}: {answer['error'].get('data', {}).get('message')}")
        return answer.get("result")

    def set_params(self, params: dict[str, str]) -> None:
        for key, value in params.items():
            self.call("ir.config_parameter", "set_param", key, value)

    def stop(self) -> None:
        if self.proc is not None:
            odoo_db.terminate(self.proc)
        odoo_db.drop(self.db)
        if self.proc is not None:
            self.check_no_crash()  # over the server's whole life

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
