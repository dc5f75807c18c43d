"""Delivery stores: schema, claim keys, and the processing queue, on real PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid

import psycopg2
import pytest
from plane_connector.dedupe import (
    Delivery,
    DeliveryStoreError,
    PostgresDeliveryStore,
    SQLiteDeliveryStore,
    default_backoff,
    describe_error,
    ensure_schema,
    open_store,
)

from .effects import effects_for


def make_delivery(n: int = 0, *, event: str = "issue", event_id: str | None = None) -> Delivery:
    payload = {"event": event, "action": "created", "webhook_id": "w", "data": {"id": f"item-{n}"}}
    body = json.dumps(payload).encode()
    return Delivery(
        delivery_id=str(uuid.uuid4()),
        event=event,
        action="created",
        fingerprint=hashlib.sha256(body).hexdigest(),
        event_id=event_id,
        webhook_id="w",
        body=body,
        payload=payload,
    )


@pytest.fixture
def effects(store, pg_dsn):
    return effects_for(store, pg_dsn)


def test_schema_has_the_shared_constraint_names(pg_dsn, pg_schema, pg_store) -> None:
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = %s AND contype = 'u' ORDER BY conname",
            (pg_schema,),
        )
        names = [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT column_name, is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'plane_webhook_delivery'",
            (pg_schema,),
        )
        columns = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
    assert names == [
        "plane_webhook_delivery_delivery_id_uniq",
        "plane_webhook_delivery_event_id_uniq",
        "plane_webhook_delivery_fingerprint_event_id_uniq",
        "plane_webhook_delivery_fingerprint_fingerprint_uniq",
        "plane_webhook_delivery_fingerprint_uniq",
    ]
    assert set(columns) >= {
        "id",
        "delivery_id",
        "fingerprint",
        "event_id",
        "event",
        "action",
        "webhook_id",
        "payload",
        "state",
        "attempts",
        "last_error",
        "received_at",
        "processed_at",
        "next_attempt_at",
    }
    # Odoo sets no database defaults: the store must not rely on any either.
    assert [c for c, (_, default) in columns.items() if default and c != "id"] == []
    assert columns["event_id"][0] == "YES" and columns["state"][0] == "NO"
    # Idempotent.
    pg_store.ensure_schema()


def test_claim_keys(store) -> None:
    a = make_delivery(1, event_id="ev-1")
    assert store.claim(a).claimed
    same_id = make_delivery(2)
    same_id = Delivery(**{**same_id.__dict__, "delivery_id": a.delivery_id})
    same_body = Delivery(**{**a.__dict__, "delivery_id": str(uuid.uuid4()), "event_id": None})
    same_event = Delivery(**{**make_delivery(3).__dict__, "event_id": "ev-1"})
    assert store.claim(same_id).duplicate_of == "delivery_id"
    assert store.claim(same_body).duplicate_of == "fingerprint"
    result = store.claim(same_event)
    assert (result.claimed, result.duplicate_of, result.existing_delivery_id) == (
        False,
        "event_id",
        a.delivery_id,
    )
    # Rows without event_id (v1) never collide on it: NULLs are distinct.
    assert store.claim(make_delivery(4)).claimed and store.claim(make_delivery(5)).claimed
    assert store.counts()["received"] == 3


def test_process_pending_commits_effect_and_state_together(store, effects) -> None:
    ids = [make_delivery(i) for i in range(3)]
    for d in ids:
        store.claim(d)
    report = effects.process(store)
    assert (report.done, report.failed, report.dead, report.skipped) == (3, 0, 0, 0)
    assert effects.rows() == [d.delivery_id for d in ids]
    rows = store.fetch(state="done")
    assert len(rows) == 3 and all(r.attempts == 1 and r.processed_at for r in rows)
    assert effects.process(store).processed == 0  # nothing left
    assert len(effects.rows()) == 3


def test_a_rolled_back_caller_transaction_undoes_effect_and_state(store, effects) -> None:
    store.claim(make_delivery(1))

    def abort():
        raise RuntimeError("caller crashed before commit")

    with pytest.raises(RuntimeError):
        effects.process(store, before_commit=abort)
    assert effects.rows() == [] and store.counts()["received"] == 1
    assert effects.process(store).done == 1 and len(effects.rows()) == 1


def test_failure_rolls_back_only_that_rows_effect(store, effects, caplog) -> None:
    good, bad = make_delivery(1, event="issue"), make_delivery(2, event="project")
    store.claim(good)
    store.claim(bad)
    with caplog.at_level(logging.WARNING, logger="plane_connector.dedupe"):
        report = effects.process(store, fail=lambda d: d.event == "project")
    assert (report.done, report.failed) == (1, 1)
    assert effects.rows() == [good.delivery_id]  # the failing handler's insert was rolled back
    (row,) = store.fetch(state="failed")
    assert row.delivery_id == bad.delivery_id and row.attempts == 1
    assert row.last_error == "RuntimeError: handler failed on project"
    assert row.next_attempt_at > row.received_at
    assert "will retry" in caplog.text
    # Not due yet (default backoff is a minute): the next run leaves it alone.
    assert effects.process(store).processed == 0


def test_attempts_are_bounded_then_dead_then_retry(store, effects, caplog) -> None:
    d = make_delivery(1)
    store.claim(d)
    states = []
    for _ in range(4):
        with caplog.at_level(logging.ERROR, logger="plane_connector.dedupe"):
            effects.process(store, fail=lambda _: True, max_attempts=3, backoff=lambda n: 0)
        states.append((store.fetch()[0].state, store.fetch()[0].attempts))
    assert states == [("failed", 1), ("failed", 2), ("dead", 3), ("dead", 3)]
    (row,) = store.fetch()
    assert row.next_attempt_at is None and row.last_error.startswith("RuntimeError")
    assert "is dead after 3 attempts" in caplog.text
    assert effects.rows() == []
    assert store.retry(None, row.id) is True
    assert store.retry(None, row.id) is False  # already back in the queue
    assert (store.fetch()[0].state, store.fetch()[0].attempts) == ("received", 0)
    assert effects.process(store).done == 1 and effects.rows() == [d.delivery_id]


def test_a_deferred_failure_uses_no_attempt_and_stops_the_run(store, effects) -> None:
    """An outage of the API a handler calls is not the delivery's fault: ``defer`` puts the row
    back as it was, due later, and the run stops instead of meeting the outage once per row."""
    deliveries = [make_delivery(n) for n in range(3)]
    for d in deliveries:
        store.claim(d)
    asked = []

    def defer(exc: BaseException) -> float | None:
        asked.append(str(exc))
        return 30.0 if "handler failed" in str(exc) else None

    report = effects.process(store, fail=lambda _: True, defer=defer)
    assert (report.deferred, report.failed, report.dead, report.done) == (1, 0, 0, 0)
    assert len(asked) == 1, "the run stopped at the first deferred row"
    rows = {r.delivery_id: r for r in store.fetch()}
    first = rows[deliveries[0].delivery_id]
    assert (first.state, first.attempts) == ("received", 0)
    assert first.last_error.startswith("deferred: RuntimeError")
    assert first.next_attempt_at is not None
    assert first.next_attempt_at - first.received_at >= dt.timedelta(seconds=25)
    assert {(r.state, r.attempts) for r in rows.values()} == {("received", 0)}
    assert effects.rows() == []
    # The others were never tried: they run now; the deferred one waits for its time.
    assert effects.process(store, defer=defer).done == 2
    # ``defer`` answering None is an ordinary failure; an absurd number is clamped.
    store.claim(make_delivery(7))
    report = effects.process(store, fail=lambda _: True, defer=lambda _: None)
    assert report.failed == 1 and report.deferred == 0
    store.claim(make_delivery(8))
    report = effects.process(store, fail=lambda _: True, defer=lambda _: float("inf"))
    assert report.deferred == 1


def test_unparseable_stored_payload_is_a_failure_not_a_crash(pg_store, pg_dsn) -> None:
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO {pg_store.table} (delivery_id, fingerprint, event, action, payload, "
            "state, attempts, received_at) VALUES ('x', 'y', 'issue', 'created', 'not json', "
            "'received', 0, now())"
        )
    report = pg_store.process_pending(None, lambda d: None, max_attempts=1)
    assert report.dead == 1
    assert pg_store.fetch()[0].last_error.startswith("JSONDecodeError")


def test_last_error_is_redacted_and_truncated() -> None:
    err = RuntimeError(
        "POST failed for X-API-Key plane_api_" + "0123456789abcdef" * 2 + " with "
        "Authorization: Bearer pln_abcdefghijklmnop, dsn postgresql://odoo:hunter2@db/odoo "
        "password=swordfish " + "x" * 5000
    )
    text = describe_error(err)
    for secret in (
        "0123456789abcdef0123456789abcdef",
        "pln_abcdefghijklmnop",
        "hunter2",
        "swordfish",
    ):
        assert secret not in text
    assert text.startswith("RuntimeError: POST failed") and len(text) <= 2000


def test_backoff_grows_and_is_capped() -> None:
    assert [default_backoff(n) for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert default_backoff(50) == 3600


def test_fetch_and_counts_validate(store) -> None:
    d = make_delivery(7)
    store.claim(d)
    assert [r.delivery_id for r in store.fetch(delivery_id=d.delivery_id)] == [d.delivery_id]
    assert store.fetch(state="dead") == []
    with pytest.raises(ValueError, match="unknown state"):
        store.fetch(state="weird")
    assert "payload" not in repr(store.fetch()[0]).split("(", 1)[1].split("state")[0]


def test_table_names_cannot_inject_sql(pg_dsn) -> None:
    for bad in ("x; DROP TABLE y", "Upper", "a.b.c", "", "1abc"):
        with pytest.raises(DeliveryStoreError, match="invalid table name"):
            PostgresDeliveryStore.from_dsn(pg_dsn, table=bad, create=False)


def test_ensure_schema_on_a_caller_cursor(pg_dsn, pg_schema) -> None:
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        ensure_schema(cur, table=f"{pg_schema}.other_deliveries")
    store = PostgresDeliveryStore.from_dsn(
        pg_dsn, table=f"{pg_schema}.other_deliveries", create=False
    )
    assert store.claim(make_delivery()).claimed


def test_open_store_specs(tmp_path, pg_dsn) -> None:
    assert isinstance(open_store(f"sqlite:{tmp_path}/a.sqlite3"), SQLiteDeliveryStore)
    assert isinstance(open_store(str(tmp_path / "b.sqlite3")), SQLiteDeliveryStore)
    with pytest.raises(DeliveryStoreError):
        open_store("sqlite:")
    with pytest.raises(DeliveryStoreError, match="cannot open"):
        SQLiteDeliveryStore(str(tmp_path / "missing-dir" / "c.sqlite3"))


def test_sqlite_is_durable_wal(sqlite_store) -> None:
    import sqlite3

    conn = sqlite3.connect(sqlite_store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_purge_removes_only_old_done_rows(store) -> None:
    old_done, old_dead, new_done = make_delivery(1), make_delivery(2), make_delivery(3)
    for d in (old_done, old_dead, new_done):
        store.claim(d)
    store.process_pending(None, lambda d: None)
    store.mark_failed(old_dead.delivery_id, RuntimeError("x"), max_attempts=1)
    _age(store, [old_done.delivery_id, old_dead.delivery_id], days=40)
    with pytest.raises(ValueError, match=">= 1"):
        store.purge(None, older_than_days=0.5)
    assert store.purge(None, older_than_days=30) == 1
    assert {r.delivery_id for r in store.fetch()} == {old_dead.delivery_id, new_done.delivery_id}
    # The row is gone, its fingerprint is not: the same delivery again is still a duplicate.
    assert store.claim(old_done).duplicate_of == "delivery_id"
    with pytest.raises(ValueError, match="fingerprint_days"):
        store.purge(None, older_than_days=30, fingerprint_days=10)


def _replay(delivery: Delivery) -> Delivery:
    """The same signed bytes under a fresh X-Plane-Delivery (the header is not signed)."""
    return Delivery(**{**delivery.__dict__, "delivery_id": str(uuid.uuid4())})


def test_a_replay_after_the_purge_is_refused_until_the_fingerprint_retention_ends(store) -> None:
    original = make_delivery(1, event_id="ev-replayed")
    v1 = make_delivery(2)  # Plane CE sends no event id: only the body fingerprint protects it
    for d in (original, v1):
        assert store.claim(d).claimed
    store.process_pending(None, lambda d: None)
    received = {r.delivery_id: r.received_at for r in store.fetch()}
    day = dt.timedelta(days=1)
    after_purge = received[original.delivery_id] + 31 * day
    assert store.purge(None, older_than_days=30, fingerprint_days=90, now=after_purge) == 2
    assert store.fetch() == []

    replayed = store.claim(_replay(original))
    assert (replayed.claimed, replayed.duplicate_of, replayed.existing_delivery_id) == (
        False,
        "event_id",  # the first key that matches, as for a row still in the table
        original.delivery_id,
    )
    same_event = Delivery(**{**make_delivery(3).__dict__, "event_id": "ev-replayed"})
    assert store.claim(same_event).duplicate_of == "event_id"
    assert store.claim(_replay(v1)).duplicate_of == "fingerprint"
    assert store.fetch() == []  # a refused replay leaves no row behind
    # A purge before the fingerprint retention ends keeps refusing...
    store.purge(
        None, older_than_days=30, fingerprint_days=90, now=received[v1.delivery_id] + 89 * day
    )
    assert store.claim(_replay(v1)).duplicate_of == "fingerprint"
    # ...and after it, the fingerprint is forgotten: the same bytes are a new delivery.
    store.purge(
        None, older_than_days=30, fingerprint_days=90, now=received[v1.delivery_id] + 91 * day
    )
    assert store.claim(_replay(v1)).claimed
    assert store.claim(_replay(original)).claimed


def test_purge_moves_fingerprints_in_batches(store) -> None:
    ds = [make_delivery(i) for i in range(5)]
    for d in ds:
        store.claim(d)
    store.process_pending(None, lambda d: None)
    later = max(r.received_at for r in store.fetch()) + dt.timedelta(days=40)
    assert store.purge(None, batch=2, now=later) == 2
    assert store.purge(None, batch=2, now=later) == 2
    assert store.purge(None, batch=2, now=later) == 1
    assert all(store.claim(_replay(d)).duplicate_of == "fingerprint" for d in ds)


def _age(store, delivery_ids: list[str], *, days: int) -> None:
    if isinstance(store, PostgresDeliveryStore):
        with store._connect() as cur:
            cur.execute(
                f"UPDATE {store.table} SET received_at = received_at - %s * interval '1 day' "
                "WHERE delivery_id = ANY(%s)",
                (days, delivery_ids),
            )
        return
    import sqlite3

    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        conn.executemany(
            "UPDATE plane_webhook_delivery SET received_at = "
            "strftime('%Y-%m-%d %H:%M:%f', received_at, ?) WHERE delivery_id = ?",
            [(f"-{days} days", d) for d in delivery_ids],
        )
    finally:
        conn.close()


def _with_app(dsn: str, app: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={app}"


def _backends(pg_dsn: str, app: str) -> list[int]:
    conn = psycopg2.connect(pg_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,))
            return sorted(r[0] for r in cur.fetchall())
    finally:
        conn.close()


def test_a_pooled_store_reuses_connections_and_replaces_a_dropped_one(pg_dsn, pg_table) -> None:
    app = f"pc-pool-{uuid.uuid4().hex[:8]}"
    store = PostgresDeliveryStore.from_dsn(_with_app(pg_dsn, app), table=pg_table, pool_size=2)
    for i in range(20):
        assert store.claim(make_delivery(i)).claimed
    [backend] = _backends(pg_dsn, app)  # one connection served all 20, and stays open

    # The server drops it while it sits in the pool (a restart, an idle timeout): the next
    # delivery is stored on a new connection instead of failing.
    conn = psycopg2.connect(pg_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s, 10000)", (backend,))
            assert cur.fetchone()[0]
    finally:
        conn.close()
    d = make_delivery(99)
    assert store.claim(d).claimed
    assert [r.delivery_id for r in store.fetch(delivery_id=d.delivery_id)] == [d.delivery_id]
    assert len(_backends(pg_dsn, app)) == 1
    assert _backends(pg_dsn, app) != [backend]

    unpooled_app = f"pc-nopool-{uuid.uuid4().hex[:8]}"
    unpooled = PostgresDeliveryStore.from_dsn(
        _with_app(pg_dsn, unpooled_app), table=pg_table, create=False
    )
    assert unpooled.claim(make_delivery(100)).claimed
    assert _backends(pg_dsn, unpooled_app) == []  # one connection per transaction, closed


def test_a_pooled_store_under_threads_claims_each_delivery_once(pg_dsn, pg_table) -> None:
    from concurrent.futures import ThreadPoolExecutor

    app = f"pc-pool-{uuid.uuid4().hex[:8]}"
    store = PostgresDeliveryStore.from_dsn(_with_app(pg_dsn, app), table=pg_table, pool_size=3)
    deliveries = [make_delivery(i) for i in range(40)]

    def worker(_: int) -> list[str]:
        return [d.delivery_id for d in deliveries if store.claim(d).claimed]

    with ThreadPoolExecutor(max_workers=6) as pool:
        claimed = [i for ids in pool.map(worker, range(6), timeout=60) for i in ids]
    assert sorted(claimed) == sorted(d.delivery_id for d in deliveries)
    assert 1 <= len(_backends(pg_dsn, app)) <= 3  # no more than pool_size kept open


def test_a_replay_racing_the_purge_of_its_original_is_refused(pg_dsn, pg_store) -> None:
    """The replay's insert waits on the original's row lock; the purge then commits (row gone,
    fingerprint moved) and the insert goes through: the check after it must still refuse."""
    import concurrent.futures

    original = make_delivery(1)
    pg_store.claim(original)
    pg_store.process_pending(None, lambda d: None)
    later = pg_store.fetch()[0].received_at + dt.timedelta(days=40)
    purger = psycopg2.connect(pg_dsn)
    watcher = psycopg2.connect(pg_dsn)
    watcher.autocommit = True
    try:
        with purger.cursor() as cur:
            assert pg_store.purge(cur, now=later) == 1  # not committed yet
            cur.execute("SELECT pg_backend_pid()")
            purger_pid = cur.fetchone()[0]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            replay = pool.submit(pg_store.claim, _replay(original))
            with watcher.cursor() as cur:
                # Wait (bounded by the query count, not by a sleep) until the claim blocks on
                # the purger's lock.
                for _ in range(100_000):
                    cur.execute(
                        "SELECT %s = ANY(pg_blocking_pids(pid)) FROM pg_stat_activity "
                        "WHERE pid <> pg_backend_pid() AND pid <> %s "
                        "AND datname = current_database() AND wait_event_type = 'Lock'",
                        (purger_pid, purger_pid),
                    )
                    if any(r[0] for r in cur.fetchall()) or replay.done():
                        break
            assert not replay.done(), "the claim did not wait for the purge"
            purger.commit()
            result = replay.result(timeout=60)
    finally:
        purger.close()
        watcher.close()
    assert (result.claimed, result.duplicate_of) == (False, "fingerprint")
    assert pg_store.fetch() == []
