"""SIGKILL between claim and commit, then Plane's re-delivery: nothing lost, nothing doubled.

A child process receives three recorded deliveries and processes them (the effect row and the
delivery's state change in one transaction). It stops at a chosen point — every point between
the claim and the final commit, on the second delivery — and is killed there with SIGKILL.
Then the deliveries come again (with new delivery ids, as Plane retries) and a worker processes
the queue: each event must have exactly one effect and exactly one delivery row, state done.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
from plane_connector.dedupe import PostgresDeliveryStore
from plane_connector.webhooks import WebhookReceiver

from .effects import effects_for

CHILD = Path(__file__).with_name("kill_child.py")
POINTS = [
    "claim-before-commit",
    "claim-after-commit",
    "process-in-handler",
    "process-before-commit",
    "process-after-commit",
]
NAMES = ["issue-created", "issue-updated-name", "project-created"]


def _wait_backends_gone(pg_dsn: str, app: str) -> None:
    # The server notices the dead client and rolls back its transaction; wait (bounded) for it,
    # or rows it still locks would be skipped by the re-processing.
    deadline = time.monotonic() + 30
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        conn.autocommit = True
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,))
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.02)
    raise AssertionError(f"backends of {app} still alive")


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_then_redelivery_loses_and_doubles_nothing(store, pg_dsn, samples, point) -> None:
    secret = samples[NAMES[0]].secret
    picked = [samples[n] for n in NAMES]
    assert all(s.secret == secret for s in picked)
    effects = effects_for(store, pg_dsn)  # creates the effect table before the child runs
    app = f"kill-{uuid.uuid4().hex[:8]}"
    spec = {
        "secret": secret,
        "pause": point,
        "nth": 1 if point in ("process-before-commit", "process-after-commit") else 2,
        "app": app,
        "deliveries": [{"headers": s.headers, "body": s.body.decode()} for s in picked],
    }
    if isinstance(store, PostgresDeliveryStore):
        spec.update(kind="pg", dsn=pg_dsn, table=store.table)
    else:
        spec.update(kind="sqlite", path=store.path)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline().strip()
        assert line == f"at:{point}", (line, child.stderr.read() if not line else "")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
        child.stderr.close()
    if spec["kind"] == "pg":
        _wait_backends_gone(pg_dsn, app)

    # Plane re-delivers everything (new delivery ids, same bytes), then a worker runs the queue.
    receiver = WebhookReceiver(store, secret)
    answers = []
    for s in picked:
        status, answer = receiver.handle(s.with_headers(X_Plane_Delivery=str(uuid.uuid4())), s.body)
        assert status == 200
        answers.append(answer["status"])
    effects.process(store)

    rows = store.fetch()
    assert len(rows) == len(picked)  # one row per event: the retries were recognised
    assert {r.state for r in rows} == {"done"}
    by_body = {r.payload.encode(): r.delivery_id for r in rows}
    assert set(by_body) == {s.body for s in picked}  # nothing lost
    assert sorted(effects.rows()) == sorted(by_body.values())  # exactly one effect per event
    # What the child had committed before it died is recognised; the rest is stored now.
    expected = {
        "claim-before-commit": ["duplicate", "accepted", "accepted"],
        "claim-after-commit": ["duplicate", "duplicate", "accepted"],
    }.get(point, ["duplicate"] * 3)
    assert answers == expected
