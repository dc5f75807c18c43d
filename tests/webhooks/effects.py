"""An "effect" table written by test handlers in the SAME transaction as the store's processing.

Counting its rows tells how many times a delivery's side effect really happened (doubles show
up as two rows: there is deliberately no unique constraint on it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg2
from plane_connector.dedupe import (
    Delivery,
    PostgresDeliveryStore,
    ProcessReport,
    SQLiteDeliveryStore,
)

Fail = Callable[[Delivery], bool]


class PgEffects:
    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.table = f"{schema}.effect"
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(id serial PRIMARY KEY, delivery_id text NOT NULL, event text NOT NULL)"
            )

    def process(
        self,
        store: PostgresDeliveryStore,
        fail: Fail | None = None,
        *,
        before_commit: Callable[[], Any] | None = None,
        **kw: Any,
    ) -> ProcessReport:
        conn = psycopg2.connect(self.dsn)
        try:
            with conn, conn.cursor() as cur:

                def handler(d: Delivery) -> None:
                    cur.execute(
                        f"INSERT INTO {self.table} (delivery_id, event) VALUES (%s, %s)",
                        (d.delivery_id, d.event),
                    )
                    if fail is not None and fail(d):
                        raise RuntimeError(f"handler failed on {d.event}")

                report = store.process_pending(cur, handler, **kw)
                if before_commit is not None:
                    before_commit()
                return report
        finally:
            conn.close()

    def rows(self) -> list[str]:
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT delivery_id FROM {self.table} ORDER BY id")
            return [r[0] for r in cur.fetchall()]


class SqliteEffects:
    def __init__(self, store: SQLiteDeliveryStore) -> None:
        self.path = store.path
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS effect "
            "(id INTEGER PRIMARY KEY, delivery_id TEXT NOT NULL, event TEXT NOT NULL)"
        )
        conn.close()

    def process(
        self,
        store: SQLiteDeliveryStore,
        fail: Fail | None = None,
        *,
        before_commit: Callable[[], Any] | None = None,
        **kw: Any,
    ) -> ProcessReport:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")

            def handler(d: Delivery) -> None:
                conn.execute(
                    "INSERT INTO effect (delivery_id, event) VALUES (?, ?)",
                    (d.delivery_id, d.event),
                )
                if fail is not None and fail(d):
                    raise RuntimeError(f"handler failed on {d.event}")

            report = store.process_pending(conn, handler, **kw)
            if before_commit is not None:
                before_commit()
            conn.execute("COMMIT")
            return report
        finally:
            conn.close()

    def rows(self) -> list[str]:
        conn = sqlite3.connect(self.path)
        try:
            return [r[0] for r in conn.execute("SELECT delivery_id FROM effect ORDER BY id")]
        finally:
            conn.close()


def effects_for(store: Any, dsn: str | None = None) -> PgEffects | SqliteEffects:
    if isinstance(store, PostgresDeliveryStore):
        assert dsn is not None
        return PgEffects(dsn, store.table.rsplit(".", 1)[0])
    return SqliteEffects(store)
