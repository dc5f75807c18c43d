"""The SQLite store: the embedded default outside Odoo. Writers are serialized by the file's write
lock (``BEGIN IMMEDIATE``), so no row locks; times are UTC text, written by Python."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from typing import Any, ClassVar

from .model import DEFAULT_TABLE, ClaimResult, Delivery, DeliveryStoreError, fingerprint_table
from .schema import DELIVERY_COLUMNS, FINGERPRINT_COLUMNS, columns_sql
from .store import BaseDeliveryStore, Fragment, SQLDialect, _duplicate

_TS_FMT = "%Y-%m-%d %H:%M:%S.%f"
_TYPES = {"varchar": "TEXT", "text": "TEXT", "integer": "INTEGER", "timestamp": "TEXT"}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _ts(value: dt.datetime) -> str:
    return value.strftime(_TS_FMT)


class SQLiteDialect(SQLDialect):
    """``?`` placeholders, the process's clock as fixed-width text (it sorts as time does)."""

    def execute(
        self, handle: Any, sql: str, params: tuple[Any, ...] = (), *, quiet: bool = False
    ) -> Any:
        return handle.execute(sql.replace("%s", "?"), params)

    def now(self) -> Fragment:
        return "%s", (_ts(_utcnow()),)

    def later(self, seconds: float) -> Fragment:
        return "%s", (_ts(_utcnow() + dt.timedelta(seconds=seconds)),)

    def ago(self, days: float, now: dt.datetime | None) -> Fragment:
        return "%s", (_ts((now or _utcnow()) - dt.timedelta(days=days)),)

    def timestamp(self, value: Any) -> dt.datetime | None:
        return dt.datetime.strptime(value, _TS_FMT) if value else None


class SQLiteDeliveryStore(BaseDeliveryStore):
    """Delivery rows in a SQLite file: the embedded default outside Odoo.

    WAL mode, ``synchronous=FULL`` (a committed claim survives a power cut), a busy timeout so
    concurrent writers queue instead of failing, and one short connection per operation (safe
    across threads and forks). Writers are serialized by SQLite itself (``BEGIN IMMEDIATE``),
    so no row locking is needed; keep handlers short, they hold the write lock. Methods taking
    ``cur`` take a ``sqlite3.Connection`` on the same file opened with ``isolation_level=None``.
    """

    dialect: ClassVar[SQLDialect] = SQLiteDialect()
    table = DEFAULT_TABLE
    fingerprints = fingerprint_table()

    def __init__(self, path: str, *, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.timeout = float(timeout)
        try:
            conn = self._open()
            try:
                # journal_mode cannot change inside a transaction; it persists in the file.
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                conn.close()
            with self._transaction() as conn:
                self._create(conn)
        except sqlite3.Error as exc:
            raise DeliveryStoreError(
                f"cannot open SQLite delivery store {self.path!r}: {exc}"
            ) from exc

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        own = conn is None
        c = self._open() if conn is None else conn
        began = not c.in_transaction
        try:
            if began:
                c.execute("BEGIN IMMEDIATE")
            yield c
            if began:
                c.execute("COMMIT")
        except BaseException:
            if began and c.in_transaction:
                c.execute("ROLLBACK")
            raise
        finally:
            if own:
                c.close()

    def _session(self, cur: Any) -> contextlib.AbstractContextManager[Any]:
        return self._transaction(cur)

    @staticmethod
    def _create(conn: sqlite3.Connection) -> None:
        for table, columns in (
            (DEFAULT_TABLE, DELIVERY_COLUMNS),
            (fingerprint_table(), FINGERPRINT_COLUMNS),
        ):
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                f"{columns_sql(columns, table, _TYPES)})"
            )
        fp = fingerprint_table()
        conn.execute(f"CREATE INDEX IF NOT EXISTS {fp}_received_idx ON {fp} (received_at)")

    def ensure_schema(self) -> None:
        """The table is created when the store is opened; kept for interface parity."""
        with self._transaction() as conn:
            self._create(conn)

    def claim(self, delivery: Delivery, *, defer: float = 0.0) -> ClaimResult:
        """Insert the row unless a row has the same delivery_id, fingerprint or event_id."""
        with self._transaction() as conn:
            # BEGIN IMMEDIATE serializes writers, so checking the purged fingerprints first
            # cannot race a purge.
            hit = self._match(conn, delivery, purged=True)
            if hit is None:
                inserted = self._insert(conn, delivery, defer)
                if inserted.rowcount == 1:
                    return ClaimResult(True, row_id=inserted.lastrowid)
                hit = self._match(conn, delivery)
        if hit is None:  # pragma: no cover - the write lock makes this impossible
            raise DeliveryStoreError("claim found a conflict but no conflicting row")
        return _duplicate(hit)

    def _move_done(self, cur: Any, before: Fragment, batch: int | None) -> int:
        limit, limit_args = (
            (" ORDER BY id LIMIT %s", (int(batch),)) if batch is not None else ("", ())
        )
        t, args = self.table, (*before[1], *limit_args)
        doomed = f"SELECT id FROM {t} WHERE state = 'done' AND received_at < {before[0]}{limit}"
        self._run(
            cur,
            f"INSERT INTO {self.fingerprints} (fingerprint, event_id, delivery_id, received_at) "
            f"SELECT fingerprint, event_id, delivery_id, received_at FROM {t} "
            f"WHERE id IN ({doomed}) ON CONFLICT DO NOTHING",
            args,
        )
        return int(self._run(cur, f"DELETE FROM {t} WHERE id IN ({doomed})", args).rowcount)
