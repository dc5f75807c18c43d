"""A real Odoo server in prefork mode (--workers 2, a cron worker) against the Plane emulator.

What the in-process Odoo tests cannot show: webhooks from the emulator (real signed HTTP, no
test cookie) reaching /plane/webhook on a multi-process server, the cron worker woken by the
delivery and processing it in another process, and the Plane client working in forked workers.
Skipped when no Odoo is installed here (see scripts/odoo-tests.sh for where they are looked for).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import xmlrpc.client
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from plane_connector import sign_body
from plane_connector.testing import PlaneEmulator

ROOT = Path(__file__).resolve().parents[2]
DB_USER = os.environ.get("ODOO_DB_USER", "odoo")
WEBHOOK_SECRET = "plane_wh_" + uuid.uuid4().hex

_spec = importlib.util.spec_from_file_location("odoo_locate", ROOT / "scripts" / "odoo_locate.py")
assert _spec and _spec.loader
odoo_locate = importlib.util.module_from_spec(_spec)
sys.modules["odoo_locate"] = odoo_locate  # dataclasses look their module up there
_spec.loader.exec_module(odoo_locate)
FOUND, MISSING = odoo_locate.find_all()
SERVERS = {o.series: o for o in FOUND}
SERIES = sorted(SERVERS)


def _odoo(series: str) -> tuple[Path, str]:
    odoo = SERVERS[series]
    return odoo.path, odoo.python


def _addons(path: Path) -> str:
    dirs = [d for d in (path / "addons", path / "odoo" / "addons") if d.is_dir()]
    return ",".join([*map(str, dirs), str(ROOT / "odoo_addons")])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module", params=SERIES or [pytest.param("none", marks=pytest.mark.skip(
    reason="no Odoo found: " + "; ".join(f"{s}.0 {why}" for s, why in MISSING.items())))])
def live_odoo(request, tmp_path_factory) -> Iterator[dict]:
    series = request.param
    path, python = _odoo(series)
    if not Path(python).is_file():
        pytest.skip(f"no Python for Odoo {series}.0 at {python}")
    # That Odoo must run this tree's plane_connector, not the one synced last time.
    sync = subprocess.run(
        [str(ROOT / "scripts" / "odoo-tests.sh"), "--sync-only"], capture_output=True, text=True,
        timeout=900, env=dict(os.environ, ODOO_SERIES=series),
    )
    assert sync.returncode == 0, sync.stdout[-2000:] + sync.stderr[-2000:]
    db = f"plane_live{series}_{uuid.uuid4().hex[:8]}"
    emulator = PlaneEmulator(rate_limit=600, seed=3).start()
    env = dict(os.environ, IPAI_LIVE_PLANE_KEY=emulator.api_key,
               IPAI_LIVE_PLANE_WH=WEBHOOK_SECRET)
    base = [python, str(path / "odoo-bin"), f"--addons-path={_addons(path)}", "-d", db,
            "--db_host", "127.0.0.1", "--db_user", DB_USER, "--http-interface", "127.0.0.1"]
    log = tmp_path_factory.mktemp("odoo") / "odoo.log"
    proc = None
    try:
        init = subprocess.run(
            [*base, "-i", "ipai_bir_plane_sync", "--stop-after-init", "--max-cron-threads", "0",
             "--http-port", str(_free_port()), *(["--without-demo=all"] if series == "18" else [])],
            capture_output=True, text=True, timeout=600, env=env,
        )
        assert init.returncode == 0, init.stderr[-3000:]
        port = _free_port()
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [*base, "--workers", "2", "--max-cron-threads", "1", "--http-port", str(port),
                 f"--db-filter=^{db}$", "--logfile", str(log)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        url = f"http://127.0.0.1:{port}"
        common = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common")
        uid = _wait_until(lambda: _try(lambda: common.authenticate(db, "admin", "admin", {})),
                          90, "Odoo to answer XML-RPC")
        models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)

        def call(model, method, *args, **kw):
            return models.execute_kw(db, uid, "admin", model, method, list(args), kw)

        for key, value in {
            "plane.base_url": emulator.base_url,
            "plane.workspace_slug": emulator.workspace_slug,
            "plane.api_key_ref": "env:IPAI_LIVE_PLANE_KEY",
            "plane.webhook_secret_ref": "env:IPAI_LIVE_PLANE_WH",
            "plane.bir.project_id": emulator.project_id,
        }.items():
            call("ir.config_parameter", "set_param", key, value)
        yield {"url": url, "db": db, "call": call, "emulator": emulator, "log": log,
               "series": series}
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        emulator.stop()
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", DB_USER, "--if-exists", db],
                       capture_output=True, timeout=120)


def _try(fn):
    try:
        return fn()
    except (OSError, xmlrpc.client.Error):
        return None


def test_webhook_round_trip_on_a_prefork_server(live_odoo):
    call, emulator = live_odoo["call"], live_odoo["emulator"]
    filing_id = call("bir.filing", "create", {"form_code": "2550M", "period": "2026-10",
                                              "due_date": "2026-11-20"})
    call("bir.filing", "action_plane_sync", [filing_id])
    (filing,) = call("bir.filing", "read", [filing_id], ["plane_work_item_id", "state"])
    item_id = filing["plane_work_item_id"]
    assert emulator.work_item(item_id)["name"] == "BIR 2550M 2026-10"

    # Plane delivers to the multi-worker server by ?db= (the db filter also names it).
    hook = emulator.register_webhook(
        f"{live_odoo['url']}/plane/webhook?db={live_odoo['db']}", WEBHOOK_SECRET
    )
    done = next(s["id"] for s in emulator.states() if s["group"] == "completed")
    emulator.update_work_item(item_id, state=done)
    (attempt,) = emulator.wait_for_deliveries(1, timeout=30)
    assert (attempt.outcome, attempt.status) == ("delivered", 200), attempt
    assert attempt.webhook_id == hook["id"]

    # No cron call from here: the delivery woke the cron worker, another process. The
    # reconciliation cron (due at the server's start) may sweep the same change in first and
    # mark the filing done before the delivery's turn, so wait for both.
    def delivery_rows():
        return call("plane.webhook.delivery", "search_read",
                    [("webhook_id", "=", hook["id"])], ["state", "attempts"])

    _wait_until(
        lambda: call("bir.filing", "read", [filing_id], ["state"])[0]["state"] == "done"
        and [r["state"] for r in delivery_rows()] == ["done"],
        60, "the cron worker to process the delivery and mark the filing done",
    )
    rows = delivery_rows()
    assert rows == [{"id": rows[0]["id"], "state": "done", "attempts": 1}]
    log = live_odoo["log"].read_text()
    assert " ERROR " not in log and " CRITICAL " not in log, log[-3000:]
    assert emulator.api_key not in log and WEBHOOK_SECRET not in log


def _post(url: str, body: bytes, delivery_id: str) -> tuple[int, str]:
    headers = {
        "Content-Type": "application/json", "X-Plane-Delivery": delivery_id,
        "X-Plane-Event": "issue", "X-Plane-Signature": sign_body(WEBHOOK_SECRET, body),
    }
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())["status"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()[:200]


def test_concurrent_duplicates_are_stored_once(live_odoo):
    """Each event is sent three times at once (same delivery id twice, then Plane's retry with a
    new id and the same bytes) to two HTTP workers: one row per event, processed once."""
    webhook_id = str(uuid.uuid4())
    bodies = [json.dumps({
        "event": "issue", "action": "created", "webhook_id": webhook_id,
        "workspace_id": str(uuid.uuid4()),
        "data": {"id": str(uuid.uuid4()), "name": f"burst {i}", "state": {"group": "backlog"}},
        "activity": {"field": None},
    }).encode() for i in range(12)]
    sends = []
    for body in bodies:
        first = str(uuid.uuid4())
        sends += [(body, first), (body, first), (body, str(uuid.uuid4()))]
    url = f"{live_odoo['url']}/plane/webhook"
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda s: _post(url, *s), sends))
    assert {code for code, _ in answers} == {200}, answers
    statuses = [status for _, status in answers]
    assert statuses.count("accepted") == len(bodies), statuses
    assert statuses.count("duplicate") == 2 * len(bodies)

    call = live_odoo["call"]
    fields = ["fingerprint", "state", "attempts"]

    def all_done():
        rows = call("plane.webhook.delivery", "search_read",
                    [("webhook_id", "=", webhook_id)], fields)
        return rows if rows and all(r["state"] == "done" for r in rows) else None

    rows = _wait_until(all_done, 60, "the cron worker to process the burst")
    assert sorted(r["fingerprint"] for r in rows) == sorted(
        hashlib.sha256(b).hexdigest() for b in bodies)
    assert {r["attempts"] for r in rows} == {1}
    log = live_odoo["log"].read_text()
    assert " ERROR " not in log and " CRITICAL " not in log, log[-3000:]
