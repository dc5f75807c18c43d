"""The PostgreSQL store: plain ``%s`` SQL through any DB-API cursor (psycopg2, Odoo's ``env.cr``),
the database's clock, row locks, and a psycopg2 connection pool for long-running servers."""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

from .model import (
    DEFAULT_TABLE,
    ClaimResult,
    Connect,
    Delivery,
    DeliveryStoreError,
    check_table_name,
    fingerprint_table,
)
from .schema import DELIVERY_COLUMNS, FINGERPRINT_COLUMNS, Column, columns_sql
from .store import BaseDeliveryStore, Fragment, SQLDialect, _duplicate

_NOW = "(clock_timestamp() AT TIME ZONE 'UTC')"


class PostgresDialect(SQLDialect):
    """``%s`` as it is, the server's clock (one clock for every worker), ``FOR UPDATE``."""

    skip_locked: ClassVar[str] = " FOR UPDATE SKIP LOCKED"
    for_update: ClassVar[str] = " FOR UPDATE"

    def execute(
        self, handle: Any, sql: str, params: tuple[Any, ...] = (), *, quiet: bool = False
    ) -> Any:
        # No parameters: None, so that psycopg2 leaves a ``%`` in the text alone.
        (_execute_quiet if quiet else _execute)(handle, sql, params or None)
        return handle

    def now(self) -> Fragment:
        return _NOW, ()

    def later(self, seconds: float) -> Fragment:
        return f"{_NOW} + %s * interval '1 second'", (float(seconds),)

    def ago(self, days: float, now: dt.datetime | None) -> Fragment:
        if now is None:
            return f"{_NOW} - %s * interval '1 day'", (float(days),)
        return "%s::timestamp - %s * interval '1 day'", (now, float(days))


def _execute(cur: Any, sql: str, params: Any) -> None:
    cur.execute(sql, params)


_QUIET_KW: dict[type, bool] = {}


def _execute_quiet(cur: Any, sql: str, params: Any = None) -> None:
    """Execute without the cursor logging an expected failure at ERROR (Odoo's ``bad query``)."""
    cls = type(cur)
    if cls not in _QUIET_KW:
        try:
            _QUIET_KW[cls] = "log_exceptions" in inspect.signature(cur.execute).parameters
        except (TypeError, ValueError):
            _QUIET_KW[cls] = False
    if _QUIET_KW[cls]:
        cur.execute(sql, params, log_exceptions=False)
    else:
        cur.execute(sql, params)


class _Pool:
    """``psycopg2.pool.ThreadedConnectionPool`` with what a long-running server also needs:
    connections opened on demand (none up front), no cap on those in use (a busy moment opens
    more; ``keep`` stay idle), an idle one checked before reuse, and a fresh pool after fork.
    """

    def __init__(self, psycopg2: Any, keep: int, dsn: str, timeout: int) -> None:
        self._psycopg2 = psycopg2
        self._keep, self._dsn, self._timeout = keep, dsn, timeout
        self._inherited: list[Any] = []
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        # minconn is both what the pool keeps idle and what it opens up front: open none.
        self._pool = self._psycopg2.pool.ThreadedConnectionPool(
            0, sys.maxsize, self._dsn, connect_timeout=self._timeout
        )
        self._pool.minconn = self._keep
        self._pid = os.getpid()
        self._reused: set[int] = set()  # id() of the connections that went back idle

    def take(self) -> Any:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # A forked child: the parent's sockets are not ours to use, nor to close
                    # (closing says goodbye to the server on the parent's behalf): keep them.
                    self._inherited.append(self._pool)
                    self._start()
        while True:
            conn = self._pool.getconn()
            if id(conn) not in self._reused:  # new: nothing to check
                return conn
            self._reused.discard(id(conn))
            if not conn.closed and self._alive(conn):
                return conn
            self._pool.putconn(conn, close=True)

    def give_back(self, conn: Any, *, clean: bool) -> None:
        pool = self._pool
        if clean:
            self._reused.add(id(conn))
        with contextlib.suppress(self._psycopg2.pool.PoolError):  # a pool replaced after fork
            pool.putconn(conn, close=not clean)
        if conn.closed:
            self._reused.discard(id(conn))

    def _alive(self, conn: Any) -> bool:
        try:
            conn.autocommit = True  # the probe must not open the caller's transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.autocommit = False
            return True
        except self._psycopg2.Error:
            return False


def psycopg2_connect(dsn: str, *, connect_timeout: float = 5.0, pool_size: int = 0) -> Connect:
    """A ``connect()`` for the stores built on psycopg2.

    ``pool_size=0``: one short-lived connection per transaction. That costs a few milliseconds
    on a local server and is immune to forks (Odoo's prefork workers) and to stale connections.

    ``pool_size=N``: up to N connections are kept open between transactions, for a long-running
    server (``plane-connector webhook``). Each is checked with one round trip before reuse, so a
    connection the server dropped (a restart, an idle timeout) is replaced, not failed on; one
    that saw any error is closed. The pool belongs to the process that made it: a forked child
    starts its own and leaves the parent's connections alone.
    """
    try:
        import psycopg2  # type: ignore[import-untyped]  # noqa: PLC0415 - optional
        import psycopg2.pool  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DeliveryStoreError(
            "PostgreSQL stores need psycopg2: pip install 'plane_connector[postgres]'"
        ) from exc

    pool = _Pool(psycopg2, max(0, int(pool_size)), dsn, max(1, int(connect_timeout)))

    @contextlib.contextmanager
    def connect() -> Iterator[Any]:
        conn = pool.take()
        clean = False
        try:
            with conn, conn.cursor() as cur:
                yield cur
            clean = not conn.closed
        finally:
            pool.give_back(conn, clean=clean)

    return connect


class PostgresDeliveryStore(BaseDeliveryStore):
    """Delivery rows in PostgreSQL, through any DB-API cursor (psycopg2, Odoo's ``env.cr``).

    ``connect()`` must return a context manager yielding a cursor in a *fresh* transaction that
    commits on clean exit and rolls back on exception; Odoo passes ``env.registry.cursor``.
    Claims run in their own short transaction whose first statement switches it to READ
    COMMITTED: in Odoo's REPEATABLE READ a concurrent duplicate would otherwise turn
    ``ON CONFLICT DO NOTHING`` into a serialization failure (logged by Odoo as ERROR).
    """

    dialect: ClassVar[SQLDialect] = PostgresDialect()

    def __init__(self, connect: Connect, *, table: str = DEFAULT_TABLE) -> None:
        self._connect = connect
        self.table = check_table_name(table)
        self.fingerprints = fingerprint_table(table)

    @classmethod
    def from_dsn(
        cls,
        dsn: str,
        *,
        table: str = DEFAULT_TABLE,
        create: bool = True,
        connect_timeout: float = 5.0,
        pool_size: int = 0,
    ) -> PostgresDeliveryStore:
        """A store on its own psycopg2 connections; ``create`` makes the table if absent.

        ``pool_size``: connections kept open between transactions (see ``psycopg2_connect``);
        0 opens one per transaction."""
        connect = psycopg2_connect(dsn, connect_timeout=connect_timeout, pool_size=pool_size)
        store = cls(connect, table=table)
        if create:
            store.ensure_schema()
        return store

    @contextlib.contextmanager
    def _session(self, cur: Any) -> Iterator[Any]:
        if cur is not None:
            yield cur
            return
        with self._connect() as own:
            yield own

    def ensure_schema(self) -> None:
        """Create the table, its constraints and index if absent (outside Odoo)."""
        with self._connect() as cur:
            ensure_schema(cur, table=self.table)

    def claim(self, delivery: Delivery, *, defer: float = 0.0) -> ClaimResult:
        """Insert the row unless a row has the same delivery_id, fingerprint or event_id.

        ``defer`` (seconds) keeps the row away from :meth:`process_pending` for that long, for
        inline processing that marks it done itself. Raises on database errors (nothing stored).
        """
        returning = " RETURNING id, to_regclass(%s) IS NOT NULL", (self.fingerprints,)
        with self._connect() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            # Two rounds: a conflicting row can be purged between the INSERT and the SELECT.
            for _ in range(2):
                row = self._insert(cur, delivery, defer, returning).fetchone()
                if row is not None:
                    # Checked after the insert, in a statement of its own: a purge moving the
                    # original's fingerprint that commits while the insert waited is seen here.
                    # (No table yet: an Odoo database whose migration has not run.)
                    hit = self._match(cur, delivery, purged=True) if row[1] else None
                    if hit is None:
                        return ClaimResult(True, row_id=row[0])
                    cur.execute(f"DELETE FROM {self.table} WHERE id = %s", (row[0],))
                    return _duplicate(hit)
                hit = self._match(cur, delivery)
                if hit is not None:
                    return _duplicate(hit)
        raise DeliveryStoreError(
            "claim found a conflict but no conflicting row (concurrent purge?)"
        )

    def _move_done(self, cur: Any, before: Fragment, batch: int | None) -> int:
        # One statement, rows locked: a concurrent purge cannot delete a row whose fingerprint
        # another one has not kept yet. (And the fingerprint table may predate an Odoo upgrade.)
        t, fp = self.table, self.fingerprints
        ensure_fingerprint_schema(cur, table=t)
        limit, limit_args = (
            (" ORDER BY id LIMIT %s", (int(batch),)) if batch is not None else ("", ())
        )
        cur.execute(
            f"WITH doomed AS (SELECT id FROM {t} WHERE state = 'done' "
            f"AND received_at < {before[0]}{limit} FOR UPDATE), "
            f"kept AS (INSERT INTO {fp} (fingerprint, event_id, delivery_id, received_at) "
            f"SELECT fingerprint, event_id, delivery_id, received_at FROM {t} "
            "WHERE id IN (SELECT id FROM doomed) ON CONFLICT DO NOTHING) "
            f"DELETE FROM {t} WHERE id IN (SELECT id FROM doomed)",
            (*before[1], *limit_args),
        )
        return int(cur.rowcount)


def ensure_schema(cur: Any, *, table: str = DEFAULT_TABLE) -> None:
    """Create the delivery table (the schema Odoo's ``plane.webhook.delivery`` has) and its
    fingerprint table if absent."""
    t = check_table_name(table)
    base = _create_locked(cur, t, DELIVERY_COLUMNS)
    cur.execute(
        f"CREATE INDEX IF NOT EXISTS {base}_pending_idx ON {t} (id) "
        "WHERE state IN ('received', 'failed')"
    )
    ensure_fingerprint_schema(cur, table=t)


def ensure_fingerprint_schema(cur: Any, *, table: str = DEFAULT_TABLE) -> None:
    """Create ``<table>_fingerprint`` (purged deliveries' fingerprints) if absent.

    Odoo's delivery model calls this from ``init()``: the table is not an Odoo model's, but its
    layout (``id`` serial, no database defaults) lets one be declared on it later."""
    fp = fingerprint_table(table)
    base = _create_locked(cur, fp, FINGERPRINT_COLUMNS)
    cur.execute(f"CREATE INDEX IF NOT EXISTS {base}_received_idx ON {fp} (received_at)")


def _create_locked(cur: Any, table: str, columns: tuple[Column, ...]) -> str:
    """``CREATE TABLE IF NOT EXISTS table (id serial PRIMARY KEY, <columns>)``; returns the bare
    table name its constraints are named after.

    Serialized with an advisory lock: concurrent ``CREATE TABLE IF NOT EXISTS`` can still race.
    """
    base = table.rsplit(".", 1)[-1]
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"plane_connector:{table}",))
    body = columns_sql(columns, base)
    cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (id serial PRIMARY KEY, {body})")
    return base
