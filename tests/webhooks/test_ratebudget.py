"""Shared rate budgets: the granted schedule never puts more than `limit` slots in any window.

Assertions are on the schedule the budget returns (and stores), never on how long anything slept.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2
import pytest
from plane_connector.ratebudget import LocalRateBudget, PostgresRateBudget, RateBudget
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

from . import workers

EPS = 1e-6


def assert_within_limit(slots: list[float], limit: int, window: float) -> None:
    """No half-open window [t, t + window) holds more than `limit` slots."""
    s = sorted(slots)
    for i in range(len(s) - limit):
        assert s[i + limit] - s[i] >= window - EPS, (i, s[i], s[i + limit])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_budget_schedule() -> None:
    clock = FakeClock()
    budget = LocalRateBudget(clock=clock, margin_fraction=0.0, margin_seconds=0.0)
    waits = [budget.reserve("k", 3, 10.0) for _ in range(7)]
    assert waits == [0, 0, 0, 10, 10, 10, 20]
    clock.now += 15  # time passes: two of the last three slots are still in the window
    assert budget.reserve("k", 3, 10.0) == pytest.approx(5.0)
    assert budget.reserve("other", 3, 10.0) == 0  # keys are independent
    assert isinstance(budget, RateBudget)


def test_local_budget_threads() -> None:
    budget = LocalRateBudget()
    with ThreadPoolExecutor(8) as pool:
        slots = list(pool.map(lambda _: budget.reserve_slot("k", 5, 60.0).slot_at, range(40)))
    assert_within_limit(slots, 5, 60.0)
    # Tight, not wasteful: 7 windows plus the default margin (1% + 50 ms) each.
    assert max(slots) - min(slots) == pytest.approx(7 * 60.65, abs=1.0)


def test_margin_spaces_a_slot_from_the_one_it_replaces() -> None:
    # Plane counts arrivals, which lag their slots by a varying amount; the margin absorbs it.
    clock = FakeClock()
    budget = LocalRateBudget(clock=clock, margin_fraction=0.02, margin_seconds=0.1)
    assert [budget.reserve("k", 2, 10.0) for _ in range(3)] == pytest.approx([0, 0, 10.3])


@pytest.mark.parametrize("bad", [("", 5, 1.0), ("k", 0, 1.0), ("k", 5, 0.0), ("k", 5, -1.0)])
def test_bad_arguments(bad) -> None:
    with pytest.raises(ValueError):
        LocalRateBudget().reserve(*bad)


@pytest.fixture
def budget_table(pg_schema: str) -> str:
    return f"{pg_schema}.plane_rate_budget"


@contextlib.contextmanager
def _repeatable_read(pg_dsn: str) -> Iterator[Any]:
    conn = psycopg2.connect(pg_dsn)
    conn.set_isolation_level(ISOLATION_LEVEL_REPEATABLE_READ)  # as Odoo's cursors
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


@pytest.mark.parametrize("cursors", ["read-committed", "odoo-repeatable-read"])
def test_postgres_budget_threads_never_exceed_the_limit(pg_dsn, budget_table, cursors) -> None:
    key = hashlib.sha256(b"plane_api_test").hexdigest()
    if cursors == "read-committed":
        make = lambda: PostgresRateBudget.from_dsn(pg_dsn, table=budget_table)  # noqa: E731
    else:
        make = lambda: PostgresRateBudget(  # noqa: E731
            lambda: _repeatable_read(pg_dsn), table=budget_table
        )
    barrier = threading.Barrier(8)

    def worker(_: int) -> list[tuple[float, float]]:
        budget = make()  # one per thread: separate connections, like separate workers
        barrier.wait(timeout=30)
        return [(r.slot_at, r.now) for r in (budget.reserve_slot(key, 5, 60.0) for _ in range(5))]

    with ThreadPoolExecutor(8) as pool:
        grants = [g for batch in pool.map(worker, range(8)) for g in batch]
    slots = [slot for slot, _ in grants]
    assert_within_limit(slots, 5, 60.0)
    # The first `limit` go now; the rest exactly one window apart per group of five.
    first = min(now for _, now in grants)
    offsets = sorted(round((slot - first) / 60.0) for slot in slots)
    assert offsets == sorted([k for k in range(8) for _ in range(5)])
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT slot_at FROM {budget_table} WHERE key_id = %s", (key,))
        stored = [r[0] for r in cur.fetchall()]
    assert sorted(stored) == sorted(slots)


def test_postgres_budget_processes_share_one_schedule(pg_dsn, budget_table) -> None:
    PostgresRateBudget.from_dsn(pg_dsn, table=budget_table).ensure_schema()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_reserve_and_report, args=(results, pg_dsn, budget_table, "k", 5, barrier)
        )
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    slots = [s for _ in procs for s in results.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(slots) == 20
    assert_within_limit(slots, 5, 60.0)


def _reserve_and_report(results: Any, *args: Any) -> None:
    results.put(workers.reserve_many(*args))


def test_keys_are_independent_and_old_slots_pruned(pg_dsn, budget_table) -> None:
    budget = PostgresRateBudget.from_dsn(pg_dsn, table=budget_table)
    assert [budget.reserve("a", 2, 60.0) for _ in range(2)] == [0.0, 0.0]
    assert budget.reserve("a", 2, 60.0) > 59.0
    assert budget.reserve("b", 2, 60.0) == 0.0
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO {budget_table} (key_id, slot_at) "
            "SELECT 'c', extract(epoch FROM now()) - 1000 - g FROM generate_series(1, 50) g"
        )
    assert budget.reserve("c", 2, 60.0) == 0.0  # long-gone slots do not count...
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {budget_table} WHERE key_id = 'c'")
        assert cur.fetchone()[0] == 1  # ...and are deleted


def test_dead_database_raises_or_fails_open(budget_table, caplog) -> None:
    dead = "postgresql://postgres@127.0.0.1:1/test"
    with pytest.raises(psycopg2.OperationalError):
        PostgresRateBudget.from_dsn(dead, table=budget_table).reserve("k", 5, 60.0)
    with caplog.at_level(logging.WARNING, logger="plane_connector.ratebudget"):
        wait = PostgresRateBudget.from_dsn(dead, table=budget_table, fail_open=True).reserve(
            "k", 5, 60.0
        )
    assert wait == 0.0 and "rate budget unavailable" in caplog.text
    with pytest.raises(ValueError):  # bad arguments are never swallowed
        PostgresRateBudget.from_dsn(dead, fail_open=True).reserve("k", 0, 60.0)


class RecordingBudget(PostgresRateBudget):
    """Keeps every grant (pruning removes old rows from the table)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grants: list[tuple[str, float]] = []

    def reserve_slot(self, key_id: str, limit: int, window: float) -> Any:
        grant = super().reserve_slot(key_id, limit, window)
        self.grants.append((key_id, grant.slot_at))
        return grant


def test_plane_client_uses_the_shared_budget(pg_dsn, budget_table, plane_emulator) -> None:
    """Two clients on one key, each with its own budget object on the shared table."""
    from plane_connector import PlaneClient
    from plane_connector.dedupe import psycopg2_connect

    key = plane_emulator.add_api_key()
    key_id = hashlib.sha256(key.encode()).hexdigest()
    budgets = [RecordingBudget(psycopg2_connect(pg_dsn), table=budget_table) for _ in range(2)]
    clients = [
        PlaneClient(
            plane_emulator.base_url,
            api_key=key,
            requests_per_minute=3,
            rate_window=0.5,
            rate_budget=budget,
        )
        for budget in budgets
    ]
    for _ in range(4):
        for client in clients:
            client.me()
    grants = [g for b in budgets for g in b.grants]
    assert len(grants) == 8  # every request reserved a slot
    assert {k for k, _ in grants} == {key_id}  # the key's hash, never the key
    assert_within_limit([slot for _, slot in grants], 3, 0.5)
    assert sum(c.stats["throttle_waits"] for c in clients) >= 1
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT DISTINCT key_id FROM {budget_table}")
        assert cur.fetchall() == [(key_id,)]
