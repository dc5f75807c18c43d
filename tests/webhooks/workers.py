"""Functions run in child processes by the concurrency tests (importable under spawn)."""

from __future__ import annotations

from typing import Any

from plane_connector.dedupe import PostgresDeliveryStore, SQLiteDeliveryStore
from plane_connector.ratebudget import PostgresRateBudget
from plane_connector.webhooks import WebhookReceiver


def deliver(
    store_spec: tuple[str, str, str],
    headers: dict[str, str],
    body: bytes,
    secret: str,
    barrier: Any,
) -> str:
    """One delivery from a fresh process: returns the answer's status word."""
    kind, location, table = store_spec
    if kind == "pg":
        store: Any = PostgresDeliveryStore.from_dsn(location, table=table, create=False)
    else:
        store = SQLiteDeliveryStore(location)
    receiver = WebhookReceiver(store, secret)
    barrier.wait(timeout=60)
    status, answer = receiver.handle(headers, body)
    return f"{status}:{answer['status']}"


def reserve_many(dsn: str, table: str, key: str, n: int, barrier: Any) -> list[float]:
    """Reserve n slots from a fresh process; returns the granted slot times."""
    budget = PostgresRateBudget.from_dsn(dsn, table=table)
    barrier.wait(timeout=60)
    return [budget.reserve_slot(key, 5, 60.0).slot_at for _ in range(n)]
