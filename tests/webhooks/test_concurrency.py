"""Concurrent deliveries and workers on real PostgreSQL and SQLite: one event, one effect.

Also the REPEATABLE READ trap: Odoo runs requests in REPEATABLE READ, where a naive
``INSERT … ON CONFLICT DO NOTHING`` racing a duplicate fails with a serialization error; the
store's claim does not.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from plane_connector.dedupe import PostgresDeliveryStore, SQLiteDeliveryStore
from plane_connector.webhooks import WebhookReceiver
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

from . import workers
from .effects import effects_for
from .test_stores import make_delivery

N = 10


def _spec(store: Any, pg_dsn: str) -> tuple[str, str, str]:
    if isinstance(store, PostgresDeliveryStore):
        return ("pg", pg_dsn, store.table)
    return ("sqlite", store.path, "")


def _fresh_store(spec: tuple[str, str, str]) -> Any:
    kind, location, table = spec
    if kind == "pg":
        return PostgresDeliveryStore.from_dsn(location, table=table, create=False)
    return SQLiteDeliveryStore(location)


@pytest.mark.parametrize("same_delivery_id", [True, False], ids=["redelivery", "plane-retries"])
def test_ten_threads_one_event_one_effect(store, pg_dsn, samples, same_delivery_id) -> None:
    sample = samples["issue-created"]
    spec = _spec(store, pg_dsn)
    barrier = threading.Barrier(N)
    effects: list[str] = []
    lock = threading.Lock()

    def on_accepted(delivery: Any) -> None:
        with lock:
            effects.append(delivery.delivery_id)

    def one(i: int) -> str:
        # Each thread: its own store object, so its own database connection.
        receiver = WebhookReceiver(_fresh_store(spec), sample.secret, on_accepted=on_accepted)
        headers = (
            sample.headers
            if same_delivery_id
            else sample.with_headers(X_Plane_Delivery=str(uuid.uuid4()))
        )
        barrier.wait(timeout=30)
        status, answer = receiver.handle(headers, sample.body)
        assert status == 200
        return answer["status"]

    with ThreadPoolExecutor(N) as pool:
        outcomes = Counter(pool.map(one, range(N)))
    assert outcomes == {"accepted": 1, "duplicate": N - 1}
    assert len(effects) == 1
    assert store.counts() == {"received": 0, "done": 1, "failed": 0, "dead": 0}


def test_ten_processes_one_event_one_row(store, pg_dsn, samples) -> None:
    sample = samples["issue_comment-created"]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N)
    results = ctx.Queue()
    spec = _spec(store, pg_dsn)

    procs = [
        ctx.Process(
            target=_deliver_and_report,
            args=(
                results,
                spec,
                sample.with_headers(X_Plane_Delivery=str(uuid.uuid4())),
                sample.body,
                sample.secret,
                barrier,
            ),
        )
        for _ in range(N)
    ]
    for p in procs:
        p.start()
    outcomes = Counter(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert outcomes == {"200:accepted": 1, "200:duplicate": N - 1}
    assert store.counts()["received"] == 1


def _deliver_and_report(results: Any, *args: Any) -> None:
    results.put(workers.deliver(*args))


def test_concurrent_workers_process_each_row_exactly_once(store, pg_dsn) -> None:
    effects = effects_for(store, pg_dsn)
    deliveries = [make_delivery(i) for i in range(30)]
    for d in deliveries:
        assert store.claim(d).claimed
    barrier = threading.Barrier(4)

    def worker(_: int) -> tuple[int, int]:
        barrier.wait(timeout=30)
        done = skipped = 0
        while True:
            report = effects.process(_fresh_store(_spec(store, pg_dsn)), limit=5)
            done += report.done
            skipped += report.skipped
            if report.processed == 0 and report.skipped == 0:
                return done, skipped

    with ThreadPoolExecutor(4) as pool:
        totals = list(pool.map(worker, range(4)))
    assert sum(done for done, _ in totals) == 30
    rows = effects.rows()
    assert sorted(rows) == sorted(d.delivery_id for d in deliveries)  # each once, none twice
    assert store.counts()["done"] == 30


# --- the REPEATABLE READ trap --------------------------------------------------------------


def _wait_until_blocked(pg_dsn: str, application_name: str) -> None:
    """Wait (bounded) until the session named application_name waits on a lock."""
    deadline = time.monotonic() + 30
    with contextlib.closing(psycopg2.connect(pg_dsn)) as conn:
        conn.autocommit = True
        while time.monotonic() < deadline:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = %s AND wait_event_type = 'Lock'",
                    (application_name,),
                )
                if cur.fetchone()[0]:
                    return
            time.sleep(0.02)
    raise AssertionError(f"{application_name} never blocked on the conflicting insert")


def _race(pg_dsn: str, table: str, delivery: Any, contender: Callable[[], Any], app: str) -> Any:
    """Hold an uncommitted insert of ``delivery``; run ``contender`` until it blocks; commit."""
    holder = psycopg2.connect(pg_dsn)
    try:
        with holder.cursor() as cur:
            cur.execute(
                f"INSERT INTO {table} (delivery_id, fingerprint, event, action, payload, state, "
                "attempts, received_at) VALUES (%s, %s, 'issue', 'created', '{}', 'received', 0, "
                "now())",
                (delivery.delivery_id, delivery.fingerprint),
            )
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(contender)
            _wait_until_blocked(pg_dsn, app)
            holder.commit()
            return future.result(timeout=30)
    finally:
        holder.close()


def test_naive_on_conflict_in_repeatable_read_raises(pg_dsn, pg_store) -> None:
    delivery = make_delivery(1)
    app = f"naive-{uuid.uuid4().hex[:8]}"

    def naive() -> Any:
        conn = psycopg2.connect(pg_dsn, application_name=app)
        conn.set_session(isolation_level="REPEATABLE READ")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO {pg_store.table} (delivery_id, fingerprint, event, action, "
                    "payload, state, attempts, received_at) VALUES (%s, %s, 'issue', 'created', "
                    "'{}', 'received', 0, now()) ON CONFLICT DO NOTHING",
                    (delivery.delivery_id, delivery.fingerprint),
                )
            conn.commit()
            return None
        except psycopg2.Error as exc:
            return exc
        finally:
            conn.close()

    error = _race(pg_dsn, pg_store.table, delivery, naive, app)
    assert isinstance(error, psycopg2.errors.SerializationFailure)


@contextlib.contextmanager
def _odoo_like_cursor(pg_dsn: str, app: str, how: str) -> Iterator[Any]:
    """A cursor in a fresh REPEATABLE READ transaction, the way Odoo's Cursor sets it up."""
    conn = psycopg2.connect(pg_dsn, application_name=app)
    if how == "set_isolation_level":  # what odoo.sql_db.Cursor does
        conn.set_isolation_level(ISOLATION_LEVEL_REPEATABLE_READ)
    else:
        conn.set_session(isolation_level="REPEATABLE READ")
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["set_isolation_level", "set_session"])
def test_store_claim_on_repeatable_read_cursors_is_a_quiet_duplicate(
    pg_dsn, pg_store, how, caplog
) -> None:
    delivery = make_delivery(2)
    app = f"claim-{uuid.uuid4().hex[:8]}"
    store = PostgresDeliveryStore(lambda: _odoo_like_cursor(pg_dsn, app, how), table=pg_store.table)
    with caplog.at_level(logging.DEBUG):
        result = _race(pg_dsn, pg_store.table, delivery, lambda: store.claim(delivery), app)
    assert (result.claimed, result.duplicate_of) == (False, "delivery_id")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # And a fresh delivery through the same REPEATABLE READ connections is claimed.
    assert store.claim(make_delivery(3)).claimed


def test_redelivery_storm_through_repeatable_read_logs_no_error(
    pg_dsn, pg_store, samples, caplog
) -> None:
    sample = samples["issue-updated-priority"]
    counter = iter(range(10_000))
    store = PostgresDeliveryStore(
        lambda: _odoo_like_cursor(pg_dsn, f"storm-{next(counter)}", "set_isolation_level"),
        table=pg_store.table,
    )
    receiver = WebhookReceiver(store, sample.secret)
    barrier = threading.Barrier(N)

    def burst(i: int) -> list[str]:
        barrier.wait(timeout=30)
        out = []
        for _ in range(5):
            headers = sample.with_headers(X_Plane_Delivery=str(uuid.uuid4()))
            status, answer = receiver.handle(headers, sample.body)
            out.append(f"{status}:{answer['status']}")
        return out

    with caplog.at_level(logging.DEBUG):
        with ThreadPoolExecutor(N) as pool:
            outcomes = Counter(o for batch in pool.map(burst, range(N)) for o in batch)
    assert outcomes == {"200:accepted": 1, "200:duplicate": 5 * N - 1}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert pg_store.counts()["received"] == 1


def test_process_pending_in_repeatable_read_skips_rows_finished_by_others(pg_dsn, pg_store) -> None:
    """A cron worker whose snapshot predates another worker's commit skips that row quietly."""
    first, second = make_delivery(1), make_delivery(2)
    pg_store.claim(first)
    pg_store.claim(second)
    late = psycopg2.connect(pg_dsn)
    late.set_isolation_level(ISOLATION_LEVEL_REPEATABLE_READ)
    try:
        with late.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {pg_store.table}")  # snapshot taken now
            # Meanwhile another worker processes the first row and commits.
            other = pg_store.process_pending(None, lambda d: None, limit=1)
            assert other.done == 1
            handled = []
            report = pg_store.process_pending(cur, lambda d: handled.append(d.delivery_id))
        late.commit()
    finally:
        late.close()
    assert report.skipped == 1 and handled == [second.delivery_id]
    assert pg_store.counts()["done"] == 2
