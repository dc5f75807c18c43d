"""Webhook delivery stores: the durable dedupe rows and the pending-work queue.

A delivery is *claimed* by inserting its row, insert-or-nothing, under three unique keys:
``delivery_id`` (X-Plane-Delivery), ``fingerprint`` (SHA-256 of the raw body, because Plane sends
a retry with a new delivery id and byte-identical body) and ``event_id`` (Plane Cloud v2, stable
across retries). The row exists, committed, before any side effect; processing later takes rows
from the same table.

Purging old ``done`` rows keeps their fingerprint and event id in a second table,
``<table>_fingerprint``, for a longer retention (default a year): ``X-Plane-Delivery`` is not
signed, so a captured delivery replayed under a fresh id after the purge must still be refused.

Two stores share one interface:

- :class:`PostgresDeliveryStore` runs plain ``%s`` SQL through any DB-API cursor, so the very same
  statements run through psycopg2 or Odoo's ``env.cr``. Table ``plane_webhook_delivery`` is the
  one the Odoo model ``plane.webhook.delivery`` owns.
- :class:`SQLiteDeliveryStore` is the embedded default outside Odoo.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import json
import logging
import math
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from plane_connector.secrets import redact

_log = logging.getLogger(__name__)

DEFAULT_TABLE = "plane_webhook_delivery"
#: Days a purged delivery's fingerprint and event id keep refusing replays (``None``: forever).
DEFAULT_FINGERPRINT_DAYS = 365.0
STATES = ("received", "done", "failed", "dead")
PENDING_STATES = ("received", "failed")
MAX_ERROR_CHARS = 2000

#: ``connect()`` returns a context manager yielding a DB-API cursor inside a fresh transaction
#: that commits on clean exit and rolls back on exception (Odoo: ``env.registry.cursor``).
Connect = Callable[[], AbstractContextManager[Any]]
#: Seconds to wait before the next attempt, given the number of attempts made so far (>= 1).
Backoff = Callable[[int], float]


class DeliveryStoreError(Exception):
    """The delivery store could not do its job (database down, schema missing, bad config)."""


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One webhook delivery, as verified and parsed by the receiver or read back from a store.

    ``payload`` is the parsed body; it is only ever built after the signature check passed.
    ``row_id`` and ``attempts`` are set on deliveries read back from a store.
    """

    delivery_id: str
    event: str
    action: str
    fingerprint: str
    event_id: str | None = None
    webhook_id: str | None = None
    body: bytes = field(repr=False)
    payload: Mapping[str, Any] = field(repr=False, compare=False, hash=False)
    row_id: int | None = None
    attempts: int = 0

    @property
    def data(self) -> Any:
        """The entity carried by the event (``payload["data"]``)."""
        return self.payload.get("data")


@dataclass(frozen=True)
class ClaimResult:
    """Outcome of :meth:`DeliveryStore.claim`.

    ``duplicate_of`` names the key that matched an existing row (``"delivery_id"``,
    ``"event_id"`` or ``"fingerprint"``) and ``existing_delivery_id`` that row's delivery id.
    """

    claimed: bool
    duplicate_of: str | None = None
    existing_delivery_id: str | None = None
    row_id: int | None = None


@dataclass
class ProcessReport:
    """What one :meth:`process_pending` run did (counts of rows)."""

    done: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0  # taken by another worker in the meantime
    #: Rows put back untouched because ``defer`` said the failure was not theirs (an outage);
    #: the run stops at the first one.
    deferred: int = 0

    @property
    def processed(self) -> int:
        return self.done + self.failed + self.dead


@dataclass(frozen=True)
class DeliveryRow:
    """A stored delivery row, for views and health checks (``payload`` is the raw body text)."""

    id: int
    delivery_id: str
    fingerprint: str
    event_id: str | None
    event: str
    action: str
    webhook_id: str | None
    payload: str = field(repr=False)
    state: str
    attempts: int
    last_error: str | None
    received_at: dt.datetime
    processed_at: dt.datetime | None
    next_attempt_at: dt.datetime | None


@runtime_checkable
class DeliveryStore(Protocol):
    """What the webhook receiver needs from a store."""

    def claim(self, delivery: Delivery, *, defer: float = 0.0) -> ClaimResult:
        """Insert the row (state ``received``) unless any of its keys exists; commit."""
        ...

    def mark_done(self, delivery_id: str) -> None:
        """Record that the delivery was processed (inline mode)."""
        ...

    def mark_failed(
        self,
        delivery_id: str,
        error: BaseException,
        *,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
    ) -> str:
        """Record a failed processing attempt; returns the new state (failed or dead)."""
        ...


def default_backoff(attempts: int) -> float:
    """1, 2, 4 … minutes, capped at one hour."""
    return float(min(60 * 2 ** max(attempts - 1, 0), 3600))


# --- shared helpers -------------------------------------------------------------------------

_TABLE_RE = re.compile(r"^(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$")


def redact_error(text: str) -> str:
    """Blank out anything shaped like a credential (API keys, tokens, DSN passwords)."""
    return redact(text)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, redacted and truncated, for ``last_error``."""
    text = f"{type(exc).__name__}: {exc}"
    text = redact_error(text)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


def check_table_name(table: str) -> str:
    """Table names are interpolated into SQL, so only plain (optionally schema-qualified) names."""
    if not isinstance(table, str) or not _TABLE_RE.match(table):
        raise DeliveryStoreError(
            f"invalid table name {table!r}: use [a-z_][a-z0-9_]* [schema.]name"
        )
    return table


def fingerprint_table(table: str = DEFAULT_TABLE) -> str:
    """The table that keeps purged deliveries' fingerprints: ``<table>_fingerprint``."""
    return check_table_name(f"{check_table_name(table)}_fingerprint")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _delivery_from_row(row: tuple[Any, ...]) -> Delivery:
    row_id, delivery_id, event, action, fingerprint, event_id, webhook_id, payload, attempts = row
    text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
    return Delivery(
        delivery_id=delivery_id,
        event=event,
        action=action,
        fingerprint=fingerprint,
        event_id=event_id,
        webhook_id=webhook_id,
        body=text.encode("utf-8"),
        payload=json.loads(text),
        row_id=row_id,
        attempts=attempts,
    )


def _matched_key(delivery: Delivery, rows: list[tuple[Any, ...]]) -> tuple[str, str] | None:
    """Which key of ``delivery`` matched, among rows of (delivery_id, fingerprint, event_id)."""
    for key, idx, value in (
        ("delivery_id", 0, delivery.delivery_id),
        ("event_id", 2, delivery.event_id),
        ("fingerprint", 1, delivery.fingerprint),
    ):
        for row in rows:
            if value is not None and row[idx] == value:
                return key, row[0]
    return None


def _is_serialization_failure(exc: BaseException) -> bool:
    # psycopg2 exposes .pgcode, psycopg 3 .sqlstate; 40001 serialization, 40P01 deadlock.
    code = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)
    return code in ("40001", "40P01")


def _handle_row(
    execute: Callable[[str], Any],
    row: tuple[Any, ...],
    handler: Callable[[Delivery], object],
    report: ProcessReport,
    *,
    failed: Callable[[Exception], str],
    done: Callable[[], Any],
    deferred: Callable[[Exception], bool] | None = None,
) -> bool:
    """Run the handler on one locked row inside a SAVEPOINT; record done or the failure.
    False when the row was deferred (the caller stops its run)."""
    execute("SAVEPOINT plane_wh_handler")
    try:
        handler(_delivery_from_row(row))
    except Exception as exc:  # noqa: BLE001 - any handler failure is recorded on the row
        execute("ROLLBACK TO SAVEPOINT plane_wh_handler")
        execute("RELEASE SAVEPOINT plane_wh_handler")
        if deferred is not None and deferred(exc):
            report.deferred += 1
            return False
        if failed(exc) == "dead":
            report.dead += 1
        else:
            report.failed += 1
        return True
    execute("RELEASE SAVEPOINT plane_wh_handler")
    done()
    report.done += 1
    return True


Defer = Callable[[BaseException], "float | None"]


def _deferral(
    defer: Defer | None, put_back: Callable[[float, BaseException], None]
) -> Callable[[Exception], bool] | None:
    """``_handle_row``'s ``deferred``: ask ``defer``; on a number, put the row back."""
    if defer is None:
        return None

    def deferred(exc: Exception) -> bool:
        seconds = defer(exc)
        if seconds is None:
            return False
        seconds = float(seconds)
        # A caller's odd number must not break the error path: 0 to one hour.
        seconds = min(max(seconds, 0.0), 3600.0) if math.isfinite(seconds) else 3600.0
        put_back(seconds, exc)
        return True

    return deferred


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


# --- PostgreSQL -----------------------------------------------------------------------------

_PG_COLUMNS = (
    "id, delivery_id, fingerprint, event_id, event, action, webhook_id, payload, state, "
    "attempts, last_error, received_at, processed_at, next_attempt_at"
)
_PG_NOW = "(clock_timestamp() AT TIME ZONE 'UTC')"


def psycopg2_connect(dsn: str, *, connect_timeout: float = 5.0, pool_size: int = 0) -> Connect:
    """A ``connect()`` for the stores built on psycopg2.

    ``pool_size=0``: one short-lived connection per transaction. That costs a few milliseconds
    on a local server and is immune to forks (Odoo's prefork workers) and to stale connections.

    ``pool_size=N``: up to N connections are kept open between transactions, for a long-running
    server (``plane-connector webhook``). Each is checked with one round trip before reuse, so a
    connection the server dropped (a restart, an idle timeout) is replaced, not failed on; one
    that saw any error is closed. The pool belongs to the process that made it: open the store
    after forking, not before.
    """
    try:
        import psycopg2  # type: ignore[import-untyped]  # noqa: PLC0415 - optional
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DeliveryStoreError(
            "PostgreSQL stores need psycopg2: pip install 'plane_connector[postgres]'"
        ) from exc

    timeout = max(1, int(connect_timeout))
    # With pool_size 0 nothing is ever kept: each use connects, and closes at its end.
    idle: list[Any] = []
    lock = threading.Lock()

    def alive(conn: Any) -> bool:
        try:
            conn.autocommit = True  # the probe must not open the caller's transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.autocommit = False
            return True
        except psycopg2.Error:
            conn.close()
            return False

    def take() -> Any:
        while True:
            with lock:
                conn = idle.pop() if idle else None
            if conn is None:
                return psycopg2.connect(dsn, connect_timeout=timeout)
            if not conn.closed and alive(conn):
                return conn

    @contextlib.contextmanager
    def connect() -> Iterator[Any]:
        conn = take()
        clean = False
        try:
            with conn, conn.cursor() as cur:
                yield cur
            clean = not conn.closed
        finally:
            with lock:
                keep = clean and len(idle) < pool_size
                if keep:
                    idle.append(conn)
            if not keep:
                conn.close()

    return connect


class PostgresDeliveryStore:
    """Delivery rows in PostgreSQL, through any DB-API cursor (psycopg2, Odoo's ``env.cr``).

    ``connect()`` must return a context manager yielding a cursor in a *fresh* transaction that
    commits on clean exit and rolls back on exception; Odoo passes ``env.registry.cursor``.
    Claims run in their own short transaction whose first statement switches it to READ
    COMMITTED: in Odoo's REPEATABLE READ a concurrent duplicate would otherwise turn
    ``ON CONFLICT DO NOTHING`` into a serialization failure (logged by Odoo as ERROR).
    """

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

    # -- schema

    def ensure_schema(self) -> None:
        """Create the table, its constraints and index if absent (outside Odoo)."""
        with self._connect() as cur:
            ensure_schema(cur, table=self.table)

    # -- receiver side

    def claim(self, delivery: Delivery, *, defer: float = 0.0) -> ClaimResult:
        """Insert the row unless a row has the same delivery_id, fingerprint or event_id.

        ``defer`` (seconds) keeps the row away from :meth:`process_pending` for that long, for
        inline processing that marks it done itself. Raises on database errors (nothing stored).
        """
        t = self.table
        insert = (
            f"INSERT INTO {t} (delivery_id, fingerprint, event_id, event, action, webhook_id, "
            "payload, state, attempts, received_at, next_attempt_at) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, 'received', 0, {_PG_NOW}, "
            f"CASE WHEN %s > 0 THEN {_PG_NOW} + %s * interval '1 second' END) "
            "ON CONFLICT DO NOTHING RETURNING id, to_regclass(%s) IS NOT NULL"
        )
        params = (
            delivery.delivery_id,
            delivery.fingerprint,
            delivery.event_id,
            delivery.event,
            delivery.action,
            delivery.webhook_id,
            delivery.body.decode("utf-8"),
            float(defer),
            float(defer),
            self.fingerprints,
        )
        lookup = (
            f"SELECT delivery_id, fingerprint, event_id FROM {t} "
            "WHERE delivery_id = %s OR fingerprint = %s OR event_id = %s LIMIT 3"
        )
        with self._connect() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            # Two rounds: a conflicting row can be purged between the INSERT and the SELECT.
            for _ in range(2):
                cur.execute(insert, params)
                row = cur.fetchone()
                if row is not None:
                    # Checked after the insert, in a statement of its own: a purge moving the
                    # original's fingerprint that commits while the insert waited is seen here.
                    # (No table yet: an Odoo database whose migration has not run.)
                    hit = self._purged_match(cur, delivery) if row[1] else None
                    if hit is None:
                        return ClaimResult(True, row_id=row[0])
                    cur.execute(f"DELETE FROM {t} WHERE id = %s", (row[0],))
                    return ClaimResult(False, duplicate_of=hit[0], existing_delivery_id=hit[1])
                cur.execute(lookup, (delivery.delivery_id, delivery.fingerprint, delivery.event_id))
                hit = _matched_key(delivery, list(cur.fetchall()))
                if hit is not None:
                    return ClaimResult(False, duplicate_of=hit[0], existing_delivery_id=hit[1])
        raise DeliveryStoreError(
            "claim found a conflict but no conflicting row (concurrent purge?)"
        )

    def _purged_match(self, cur: Any, delivery: Delivery) -> tuple[str, str] | None:
        cur.execute(
            f"SELECT delivery_id, fingerprint, event_id FROM {self.fingerprints} "
            "WHERE fingerprint = %s OR event_id = %s LIMIT 2",
            (delivery.fingerprint, delivery.event_id),
        )
        return _matched_key(delivery, list(cur.fetchall()))

    def mark_done(self, delivery_id: str) -> None:
        """Mark an inline-processed delivery done (its own transaction)."""
        with self._connect() as cur:
            cur.execute(
                f"UPDATE {self.table} SET state = 'done', attempts = attempts + 1, "
                f"processed_at = {_PG_NOW}, next_attempt_at = NULL, last_error = NULL "
                "WHERE delivery_id = %s AND state IN ('received', 'failed')",
                (delivery_id,),
            )

    def mark_failed(
        self,
        delivery_id: str,
        error: BaseException,
        *,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
    ) -> str:
        """Record a failed inline attempt: the queue will retry it after the backoff."""
        with self._connect() as cur:
            cur.execute(
                f"SELECT id, attempts FROM {self.table} WHERE delivery_id = %s FOR UPDATE",
                (delivery_id,),
            )
            row = cur.fetchone()
            if row is None:
                raise DeliveryStoreError(f"no delivery row {delivery_id!r}")
            return self._record_failure(cur, row[0], row[1], error, max_attempts, backoff)

    # -- worker side (caller's cursor)

    def process_pending(
        self,
        cur: Any,
        handler: Callable[[Delivery], object],
        *,
        limit: int = 50,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        defer: Defer | None = None,
    ) -> ProcessReport:
        """Run ``handler`` on due pending rows, in the CALLER's transaction ``cur``.

        ``defer(exc)``, when given, may return seconds for a handler failure that is not the
        delivery's fault (the API it calls is down): that row is put back as it was, attempts
        untouched, due again after those seconds, and the run stops there (the next rows would
        meet the same outage). None means an ordinary failure.

        Each row is locked (``FOR UPDATE SKIP LOCKED``: rows another worker holds are skipped)
        and handled inside a SAVEPOINT, so the handler's own writes through ``cur`` and the
        row's new state commit together when the caller commits — or not at all. A handler
        exception rolls back to the savepoint, counts an attempt, keeps the error on the row
        and schedules a retry with ``backoff``; after ``max_attempts`` the row is ``dead``.
        With ``cur=None`` the store opens (and commits) its own transaction.
        """
        if cur is None:
            with self._connect() as own:
                return self.process_pending(
                    own, handler, limit=limit, max_attempts=max_attempts, backoff=backoff,
                    defer=defer,
                )
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        t = self.table
        cur.execute(
            f"SELECT id FROM {t} WHERE state IN ('received', 'failed') "
            f"AND (next_attempt_at IS NULL OR next_attempt_at <= {_PG_NOW}) "
            "ORDER BY id LIMIT %s",
            (int(limit),),
        )
        ids = [r[0] for r in cur.fetchall()]
        report = ProcessReport()
        for row_id in ids:
            row = self._lock(cur, row_id)
            if row is None:
                report.skipped += 1
                continue
            if not _handle_row(
                cur.execute,
                row,
                handler,
                report,
                failed=functools.partial(
                    self._record_failure, cur, row[0], row[8],
                    max_attempts=max_attempts, backoff=backoff,
                ),
                done=functools.partial(self._mark_row_done, cur, row[0]),
                deferred=_deferral(defer, functools.partial(self._defer_row, cur, row[0])),
            ):  # fmt: skip
                break
        return report

    def _defer_row(self, cur: Any, row_id: int, seconds: float, exc: BaseException) -> None:
        cur.execute(
            f"UPDATE {self.table} SET last_error = %s, "
            f"next_attempt_at = {_PG_NOW} + %s * interval '1 second' WHERE id = %s",
            (f"deferred: {describe_error(exc)}", seconds, row_id),
        )

    def _mark_row_done(self, cur: Any, row_id: int) -> None:
        cur.execute(
            f"UPDATE {self.table} SET state = 'done', attempts = attempts + 1, "
            f"processed_at = {_PG_NOW}, next_attempt_at = NULL, last_error = NULL WHERE id = %s",
            (row_id,),
        )

    def _lock(self, cur: Any, row_id: int) -> tuple[Any, ...] | None:
        # One row at a time, inside a savepoint: in a REPEATABLE READ caller (Odoo cron) a row
        # another worker finished after our snapshot raises a serialization failure; that row is
        # simply not ours, so roll back to the savepoint and move on, quietly.
        cur.execute("SAVEPOINT plane_wh_lock")
        try:
            _execute_quiet(
                cur,
                "SELECT id, delivery_id, event, action, fingerprint, event_id, webhook_id, "
                f"payload, attempts FROM {self.table} "
                "WHERE id = %s AND state IN ('received', 'failed') FOR UPDATE SKIP LOCKED",
                (row_id,),
            )
            row = cur.fetchone()
        except Exception as exc:
            if not _is_serialization_failure(exc):
                raise
            cur.execute("ROLLBACK TO SAVEPOINT plane_wh_lock")
            row = None
        cur.execute("RELEASE SAVEPOINT plane_wh_lock")
        return tuple(row) if row is not None else None

    def _record_failure(
        self,
        cur: Any,
        row_id: int,
        attempts: int,
        exc: BaseException,
        max_attempts: int,
        backoff: Backoff | None,
    ) -> str:
        attempts += 1
        state = "dead" if attempts >= max_attempts else "failed"
        delay = (backoff or default_backoff)(attempts)
        error = describe_error(exc)
        cur.execute(
            f"UPDATE {self.table} SET state = %s, attempts = %s, last_error = %s, "
            f"next_attempt_at = CASE WHEN %s = 'dead' THEN NULL "
            f"ELSE {_PG_NOW} + %s * interval '1 second' END WHERE id = %s",
            (state, attempts, error, state, float(delay), row_id),
        )
        _log_failure(row_id, state, attempts, max_attempts, error)
        return state

    # -- views

    def retry(self, cur: Any, row_id: int) -> bool:
        """Put a dead or failed row back in the queue (attempts reset); False if none matched."""
        if cur is None:
            with self._connect() as own:
                return self.retry(own, row_id)
        cur.execute(
            f"UPDATE {self.table} SET state = 'received', attempts = 0, next_attempt_at = NULL "
            "WHERE id = %s AND state IN ('dead', 'failed')",
            (row_id,),
        )
        return bool(cur.rowcount)

    def fetch(
        self,
        cur: Any = None,
        *,
        state: str | None = None,
        delivery_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        """Rows, newest first, optionally filtered by state or delivery id."""
        if cur is None:
            with self._connect() as own:
                return self.fetch(own, state=state, delivery_id=delivery_id, limit=limit)
        where, params = _filters(state, delivery_id)
        cur.execute(
            f"SELECT {_PG_COLUMNS} FROM {self.table}{where} ORDER BY id DESC LIMIT %s",
            (*params, int(limit)),
        )
        return [DeliveryRow(*r) for r in cur.fetchall()]

    def purge(
        self,
        cur: Any = None,
        *,
        older_than_days: float = 30.0,
        fingerprint_days: float | None = DEFAULT_FINGERPRINT_DAYS,
        batch: int | None = None,
        now: dt.datetime | None = None,
    ) -> int:
        """Delete ``done`` rows received more than ``older_than_days`` ago; returns the count.

        Each purged row's fingerprint, event id and delivery id move to the fingerprint table in
        the same statement, and keep refusing a replay of the same body for ``fingerprint_days``
        (``None``: forever); older fingerprints are deleted. ``batch`` caps the rows purged in
        one call (oldest first). ``now`` (naive UTC) stands in for the database clock. Failed
        and dead rows are kept for inspection. The one-day minimum: Plane's retries of one event
        span about an hour, and the delivery row is what catches those.
        """
        days = _retention_days(older_than_days)
        keep = _fingerprint_days(fingerprint_days, days)
        if cur is None:
            with self._connect() as own:
                return self.purge(
                    own, older_than_days=days, fingerprint_days=keep, batch=batch, now=now
                )
        t, fp = self.table, self.fingerprints
        ensure_fingerprint_schema(cur, table=t)
        clock = "%s::timestamp" if now is not None else _PG_NOW
        clock_args = (now,) if now is not None else ()
        limit = " ORDER BY id LIMIT %s" if batch is not None else ""
        limit_args = (int(batch),) if batch is not None else ()
        cur.execute(
            f"WITH doomed AS (SELECT id FROM {t} WHERE state = 'done' "
            f"AND received_at < {clock} - %s * interval '1 day'{limit} FOR UPDATE), "
            f"kept AS (INSERT INTO {fp} (fingerprint, event_id, delivery_id, received_at) "
            f"SELECT fingerprint, event_id, delivery_id, received_at FROM {t} "
            "WHERE id IN (SELECT id FROM doomed) ON CONFLICT DO NOTHING) "
            f"DELETE FROM {t} WHERE id IN (SELECT id FROM doomed)",
            (*clock_args, days, *limit_args),
        )
        purged = int(cur.rowcount)
        if keep is not None:
            cur.execute(
                f"DELETE FROM {fp} WHERE received_at < {clock} - %s * interval '1 day'",
                (*clock_args, keep),
            )
        return purged

    def counts(self, cur: Any = None) -> dict[str, int]:
        """Number of rows per state (every state present, zero when none)."""
        if cur is None:
            with self._connect() as own:
                return self.counts(own)
        cur.execute(f"SELECT state, count(*) FROM {self.table} GROUP BY state")
        found = dict(cur.fetchall())
        return {s: int(found.get(s, 0)) for s in STATES}


def ensure_schema(cur: Any, *, table: str = DEFAULT_TABLE) -> None:
    """Create the delivery table (the schema Odoo's ``plane.webhook.delivery`` has) and its
    fingerprint table if absent."""
    t = check_table_name(table)
    base = _create_locked(
        cur,
        t,
        "delivery_id varchar NOT NULL, "
        "fingerprint varchar NOT NULL, "
        "event_id varchar, "
        "event varchar NOT NULL, "
        "action varchar NOT NULL, "
        "webhook_id varchar, "
        "payload text NOT NULL, "
        "state varchar NOT NULL, "
        "attempts integer NOT NULL, "
        "last_error text, "
        "received_at timestamp NOT NULL, "
        "processed_at timestamp, "
        "next_attempt_at timestamp, "
        "CONSTRAINT {base}_delivery_id_uniq UNIQUE (delivery_id), "
        "CONSTRAINT {base}_fingerprint_uniq UNIQUE (fingerprint), "
        "CONSTRAINT {base}_event_id_uniq UNIQUE (event_id)",
    )
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
    base = _create_locked(
        cur,
        fp,
        "fingerprint varchar NOT NULL, "
        "event_id varchar, "
        "delivery_id varchar NOT NULL, "
        "received_at timestamp NOT NULL, "
        "CONSTRAINT {base}_fingerprint_uniq UNIQUE (fingerprint), "
        "CONSTRAINT {base}_event_id_uniq UNIQUE (event_id)",
    )
    cur.execute(f"CREATE INDEX IF NOT EXISTS {base}_received_idx ON {fp} (received_at)")


def _create_locked(cur: Any, table: str, columns: str) -> str:
    """``CREATE TABLE IF NOT EXISTS table (id serial PRIMARY KEY, <columns>)``; returns the bare
    table name that ``{base}`` in ``columns`` (constraint names) was replaced with.

    Serialized with an advisory lock: concurrent ``CREATE TABLE IF NOT EXISTS`` can still race.
    """
    base = table.rsplit(".", 1)[-1]
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"plane_connector:{table}",))
    body = columns.replace("{base}", base)
    cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (id serial PRIMARY KEY, {body})")
    return base


def _filters(state: str | None, delivery_id: str | None) -> tuple[str, tuple[Any, ...]]:
    clauses, params = [], []
    if state is not None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; one of {', '.join(STATES)}")
        clauses.append("state = %s")
        params.append(state)
    if delivery_id is not None:
        clauses.append("delivery_id = %s")
        params.append(delivery_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _retention_days(days: float) -> float:
    if not float(days) >= 1.0:
        raise ValueError("older_than_days must be >= 1: purged rows no longer catch duplicates")
    return float(days)


def _fingerprint_days(days: float | None, rows_days: float) -> float | None:
    if days is not None and not float(days) >= rows_days:
        raise ValueError(
            "fingerprint_days must be >= older_than_days (or None to keep fingerprints forever): "
            "a replay of a purged delivery would otherwise be accepted"
        )
    return None if days is None else float(days)


def _log_failure(row_id: int, state: str, attempts: int, max_attempts: int, error: str) -> None:
    if state == "dead":
        _log.error("webhook delivery row %s is dead after %d attempts: %s", row_id, attempts, error)
    else:
        _log.warning(
            "webhook delivery row %s failed (attempt %d of %d), will retry: %s",
            row_id,
            attempts,
            max_attempts,
            error,
        )


# --- SQLite ---------------------------------------------------------------------------------

_TS_FMT = "%Y-%m-%d %H:%M:%S.%f"


def _ts(value: dt.datetime | None) -> str | None:
    return value.strftime(_TS_FMT) if value is not None else None


def _parse_ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.strptime(value, _TS_FMT) if value else None


class SQLiteDeliveryStore:
    """Delivery rows in a SQLite file: the embedded default outside Odoo.

    WAL mode, ``synchronous=FULL`` (a committed claim survives a power cut), a busy timeout so
    concurrent writers queue instead of failing, and one short connection per operation (safe
    across threads and forks). Writers are serialized by SQLite itself (``BEGIN IMMEDIATE``),
    so no row locking is needed; keep handlers short, they hold the write lock.
    """

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

    @staticmethod
    def _create(conn: sqlite3.Connection) -> None:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {DEFAULT_TABLE} ("
            "id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "delivery_id TEXT NOT NULL CONSTRAINT plane_webhook_delivery_delivery_id_uniq UNIQUE, "
            "fingerprint TEXT NOT NULL CONSTRAINT plane_webhook_delivery_fingerprint_uniq UNIQUE, "
            "event_id TEXT CONSTRAINT plane_webhook_delivery_event_id_uniq UNIQUE, "
            "event TEXT NOT NULL, action TEXT NOT NULL, webhook_id TEXT, payload TEXT NOT NULL, "
            "state TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, "
            "received_at TEXT NOT NULL, processed_at TEXT, next_attempt_at TEXT)"
        )
        fp = fingerprint_table()
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {fp} ("
            "id INTEGER PRIMARY KEY AUTOINCREMENT, "
            f"fingerprint TEXT NOT NULL CONSTRAINT {fp}_fingerprint_uniq UNIQUE, "
            f"event_id TEXT CONSTRAINT {fp}_event_id_uniq UNIQUE, "
            "delivery_id TEXT NOT NULL, received_at TEXT NOT NULL)"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {fp}_received_idx ON {fp} (received_at)")

    def ensure_schema(self) -> None:
        """The table is created when the store is opened; kept for interface parity."""
        with self._transaction() as conn:
            self._create(conn)

    def claim(self, delivery: Delivery, *, defer: float = 0.0) -> ClaimResult:
        """Insert the row unless a row has the same delivery_id, fingerprint or event_id."""
        now = _utcnow()
        nxt = _ts(now + dt.timedelta(seconds=defer)) if defer > 0 else None
        with self._transaction() as conn:
            # BEGIN IMMEDIATE serializes writers, so checking the purged fingerprints first
            # cannot race a purge.
            purged = conn.execute(
                f"SELECT delivery_id, fingerprint, event_id FROM {fingerprint_table()} "
                "WHERE fingerprint = ? OR event_id = ? LIMIT 2",
                (delivery.fingerprint, delivery.event_id),
            ).fetchall()
            hit = _matched_key(delivery, purged)
            if hit is not None:
                return ClaimResult(False, duplicate_of=hit[0], existing_delivery_id=hit[1])
            cur = conn.execute(
                f"INSERT INTO {DEFAULT_TABLE} (delivery_id, fingerprint, event_id, event, action, "
                "webhook_id, payload, state, attempts, received_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'received', 0, ?, ?) ON CONFLICT DO NOTHING",
                (
                    delivery.delivery_id,
                    delivery.fingerprint,
                    delivery.event_id,
                    delivery.event,
                    delivery.action,
                    delivery.webhook_id,
                    delivery.body.decode("utf-8"),
                    _ts(now),
                    nxt,
                ),
            )
            if cur.rowcount == 1:
                return ClaimResult(True, row_id=cur.lastrowid)
            rows = conn.execute(
                f"SELECT delivery_id, fingerprint, event_id FROM {DEFAULT_TABLE} "
                "WHERE delivery_id = ? OR fingerprint = ? OR event_id = ? LIMIT 3",
                (delivery.delivery_id, delivery.fingerprint, delivery.event_id),
            ).fetchall()
        hit = _matched_key(delivery, rows)
        if hit is None:  # pragma: no cover - the write lock makes this impossible
            raise DeliveryStoreError("claim found a conflict but no conflicting row")
        return ClaimResult(False, duplicate_of=hit[0], existing_delivery_id=hit[1])

    def mark_done(self, delivery_id: str) -> None:
        """Mark an inline-processed delivery done."""
        with self._transaction() as conn:
            conn.execute(
                f"UPDATE {DEFAULT_TABLE} SET state = 'done', attempts = attempts + 1, "
                "processed_at = ?, next_attempt_at = NULL, last_error = NULL "
                "WHERE delivery_id = ? AND state IN ('received', 'failed')",
                (_ts(_utcnow()), delivery_id),
            )

    def mark_failed(
        self,
        delivery_id: str,
        error: BaseException,
        *,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
    ) -> str:
        """Record a failed inline attempt: the queue will retry it after the backoff."""
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT id, attempts FROM {DEFAULT_TABLE} WHERE delivery_id = ?", (delivery_id,)
            ).fetchone()
            if row is None:
                raise DeliveryStoreError(f"no delivery row {delivery_id!r}")
            return self._record_failure(conn, row[0], row[1], error, max_attempts, backoff)

    def process_pending(
        self,
        conn: sqlite3.Connection | None,
        handler: Callable[[Delivery], object],
        *,
        limit: int = 50,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        defer: Defer | None = None,
    ) -> ProcessReport:
        """Run ``handler`` on due pending rows, each in a SAVEPOINT of one write transaction.
        ``defer``: as for the PostgreSQL store.

        Pass your own ``conn`` (a ``sqlite3.Connection`` on the same file, opened with
        ``isolation_level=None``) to make the handler's writes on it commit together with the
        row states; with ``None`` the store uses its own connection.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        report = ProcessReport()
        with self._transaction(conn) as c:
            rows = c.execute(
                "SELECT id, delivery_id, event, action, fingerprint, event_id, webhook_id, "
                f"payload, attempts FROM {DEFAULT_TABLE} WHERE state IN ('received', 'failed') "
                "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?",
                (_ts(_utcnow()), int(limit)),
            ).fetchall()
            for row in rows:
                if not _handle_row(
                    c.execute,
                    tuple(row),
                    handler,
                    report,
                    failed=functools.partial(
                        self._record_failure, c, row[0], row[8],
                        max_attempts=max_attempts, backoff=backoff,
                    ),
                    done=functools.partial(self._mark_row_done, c, row[0]),
                    deferred=_deferral(defer, functools.partial(self._defer_row, c, row[0])),
                ):  # fmt: skip
                    break
        return report

    @staticmethod
    def _defer_row(
        conn: sqlite3.Connection, row_id: int, seconds: float, exc: BaseException
    ) -> None:
        conn.execute(
            f"UPDATE {DEFAULT_TABLE} SET last_error = ?, next_attempt_at = ? WHERE id = ?",
            (
                f"deferred: {describe_error(exc)}",
                _ts(_utcnow() + dt.timedelta(seconds=seconds)),
                row_id,
            ),
        )

    @staticmethod
    def _mark_row_done(conn: sqlite3.Connection, row_id: int) -> None:
        conn.execute(
            f"UPDATE {DEFAULT_TABLE} SET state = 'done', attempts = attempts + 1, "
            "processed_at = ?, next_attempt_at = NULL, last_error = NULL WHERE id = ?",
            (_ts(_utcnow()), row_id),
        )

    def _record_failure(
        self,
        conn: sqlite3.Connection,
        row_id: int,
        attempts: int,
        exc: BaseException,
        max_attempts: int,
        backoff: Backoff | None,
    ) -> str:
        attempts += 1
        state = "dead" if attempts >= max_attempts else "failed"
        delay = (backoff or default_backoff)(attempts)
        nxt = None if state == "dead" else _ts(_utcnow() + dt.timedelta(seconds=delay))
        error = describe_error(exc)
        conn.execute(
            f"UPDATE {DEFAULT_TABLE} SET state = ?, attempts = ?, last_error = ?, "
            "next_attempt_at = ? WHERE id = ?",
            (state, attempts, error, nxt, row_id),
        )
        _log_failure(row_id, state, attempts, max_attempts, error)
        return state

    def retry(self, conn: sqlite3.Connection | None, row_id: int) -> bool:
        """Put a dead or failed row back in the queue (attempts reset); False if none matched."""
        with self._transaction(conn) as c:
            cur = c.execute(
                f"UPDATE {DEFAULT_TABLE} SET state = 'received', attempts = 0, "
                "next_attempt_at = NULL WHERE id = ? AND state IN ('dead', 'failed')",
                (row_id,),
            )
            return bool(cur.rowcount)

    def fetch(
        self,
        conn: sqlite3.Connection | None = None,
        *,
        state: str | None = None,
        delivery_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        """Rows, newest first, optionally filtered by state or delivery id."""
        where, params = _filters(state, delivery_id)
        with self._transaction(conn) as c:
            rows = c.execute(
                f"SELECT {_PG_COLUMNS} FROM {DEFAULT_TABLE}{where.replace('%s', '?')} "
                "ORDER BY id DESC LIMIT ?",
                (*params, int(limit)),
            ).fetchall()
        return [
            DeliveryRow(*r[:11], *(_parse_ts(v) for v in r[11:14]))  # type: ignore[arg-type]
            for r in rows
        ]

    def purge(
        self,
        conn: sqlite3.Connection | None = None,
        *,
        older_than_days: float = 30.0,
        fingerprint_days: float | None = DEFAULT_FINGERPRINT_DAYS,
        batch: int | None = None,
        now: dt.datetime | None = None,
    ) -> int:
        """Delete ``done`` rows received more than ``older_than_days`` ago (at least one day),
        keeping their fingerprints for ``fingerprint_days``; see
        :meth:`PostgresDeliveryStore.purge`."""
        days = _retention_days(older_than_days)
        keep = _fingerprint_days(fingerprint_days, days)
        current = now or _utcnow()
        cutoff = _ts(current - dt.timedelta(days=days))
        fp = fingerprint_table()
        limit = " ORDER BY id LIMIT ?" if batch is not None else ""
        args: tuple[Any, ...] = (cutoff, int(batch)) if batch is not None else (cutoff,)
        doomed = f"SELECT id FROM {DEFAULT_TABLE} WHERE state = 'done' AND received_at < ?{limit}"
        with self._transaction(conn) as c:
            c.execute(
                f"INSERT INTO {fp} (fingerprint, event_id, delivery_id, received_at) "
                f"SELECT fingerprint, event_id, delivery_id, received_at FROM {DEFAULT_TABLE} "
                f"WHERE id IN ({doomed}) ON CONFLICT DO NOTHING",
                args,
            )
            cur = c.execute(f"DELETE FROM {DEFAULT_TABLE} WHERE id IN ({doomed})", args)
            purged = int(cur.rowcount)
            if keep is not None:
                c.execute(
                    f"DELETE FROM {fp} WHERE received_at < ?",
                    (_ts(current - dt.timedelta(days=keep)),),
                )
            return purged

    def counts(self, conn: sqlite3.Connection | None = None) -> dict[str, int]:
        """Number of rows per state (every state present, zero when none)."""
        with self._transaction(conn) as c:
            found = dict(
                c.execute(f"SELECT state, count(*) FROM {DEFAULT_TABLE} GROUP BY state").fetchall()
            )
        return {s: int(found.get(s, 0)) for s in STATES}


def open_store(
    spec: str, *, create: bool = True, pool_size: int = 0
) -> PostgresDeliveryStore | SQLiteDeliveryStore:
    """A store from a CLI-style spec: ``sqlite:PATH``, a bare path, or ``postgresql://…``.

    ``pool_size`` applies to PostgreSQL (connections kept open between transactions)."""
    if spec.startswith(("postgresql://", "postgres://")) or spec.startswith("dbname="):
        return PostgresDeliveryStore.from_dsn(spec, create=create, pool_size=pool_size)
    path = spec[len("sqlite:") :] if spec.startswith("sqlite:") else spec
    if not path:
        raise DeliveryStoreError("empty SQLite path in store spec")
    return SQLiteDeliveryStore(path)
