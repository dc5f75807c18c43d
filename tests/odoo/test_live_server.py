"""A real Odoo server in prefork mode (--workers 2, a cron worker) against the Plane emulator.

What the in-process Odoo tests cannot show: webhooks from the emulator (real signed HTTP, no
test cookie) reaching /plane/webhook on a multi-process server, the cron worker woken by the
delivery and processing it in another process, and the Plane client working in forked workers.
Skipped when no Odoo is installed here (see scripts/odoo-tests.sh for where they are looked for).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from odoo_server import SERIES, OdooServer, odoo_paths, wait_until
from plane_connector import sign_body
from plane_connector.testing import PlaneEmulator

WEBHOOK_SECRET = "plane_wh_" + uuid.uuid4().hex


@pytest.fixture(scope="module", params=SERIES or [pytest.param("none", marks=pytest.mark.skip(
    reason="no Odoo 18.0/19.0 found (ODOO18_PATH / ODOO19_PATH)"))])
def live_odoo(request, tmp_path_factory) -> Iterator[dict]:
    series = request.param
    _path, python = odoo_paths(series)
    if not Path(python).is_file():
        pytest.skip(f"no Python for Odoo {series}.0 at {python}")
    emulator = PlaneEmulator(rate_limit=600, seed=3).start()
    env = dict(os.environ, IPAI_LIVE_PLANE_KEY=emulator.api_key,
               IPAI_LIVE_PLANE_WH=WEBHOOK_SECRET)
    server = OdooServer(series, "ipai_bir_plane_sync", env,
                        tmp_path_factory.mktemp("odoo") / "odoo.log")
    try:
        server.start()
        server.set_params({
            "plane.base_url": emulator.base_url,
            "plane.workspace_slug": emulator.workspace_slug,
            "plane.api_key_ref": "env:IPAI_LIVE_PLANE_KEY",
            "plane.webhook_secret_ref": "env:IPAI_LIVE_PLANE_WH",
            "plane.bir.project_id": emulator.project_id,
        })
        yield {"url": server.url, "db": server.db, "call": server.call, "emulator": emulator,
               "log": server.log, "series": series}
    finally:
        server.stop()
        emulator.stop()


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

    # No cron call from here: the delivery woke the cron worker, another process.
    wait_until(
        lambda: call("bir.filing", "read", [filing_id], ["state"])[0]["state"] == "done",
        60, "the cron worker to mark the filing done",
    )
    rows = call("plane.webhook.delivery", "search_read",
                [("webhook_id", "=", hook["id"])], ["state", "attempts"])
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

    rows = wait_until(all_done, 60, "the cron worker to process the burst")
    assert sorted(r["fingerprint"] for r in rows) == sorted(
        hashlib.sha256(b).hexdigest() for b in bodies)
    assert {r["attempts"] for r in rows} == {1}
    log = live_odoo["log"].read_text()
    assert " ERROR " not in log and " CRITICAL " not in log, log[-3000:]
