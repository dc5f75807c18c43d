"""The delivery state machine, written once for every backend.

A row is ``received`` when claimed; processing makes it ``done``, or ``failed`` with the error
and a retry time (the backoff), or ``dead`` after ``max_attempts``; ``retry`` puts a dead or
failed row back. A failure that ``defer`` calls an outage puts the row back untouched.

:class:`BaseDeliveryStore` holds all of that as SQL with ``%s`` placeholders; a backend gives
an :class:`SQLDialect` (placeholders, the clock, row locks, timestamps), its transactions
(``_session``), the claim and the purge's move of rows to the fingerprint table.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from plane_connector.backoff import default_backoff
from plane_connector.diagnostics import describe_error

from .model import (
    DEFAULT_FINGERPRINT_DAYS,
    STATES,
    Backoff,
    ClaimResult,
    Defer,
    Delivery,
    DeliveryRow,
    DeliveryStoreError,
    ProcessReport,
)
from .schema import DELIVERY_COLUMNS

# The name callers capture and mute (tests, Odoo's mute_logger): the package's, not this file's.
_log = logging.getLogger("plane_connector.dedupe")

#: An SQL fragment and the parameters of its placeholders, in order.
Fragment = tuple[str, tuple[Any, ...]]

#: A DeliveryRow's fields, in order; which of them are times (stored as the dialect stores them).
_COLUMNS = ("id", *(c.name for c in DELIVERY_COLUMNS))
_TIMES = frozenset(c.name for c in DELIVERY_COLUMNS if c.type == "timestamp")
_PENDING = "state IN ('received', 'failed')"
#: What processing reads of a row, in this order (``id`` first, ``attempts`` last).
_TAKEN = (
    "id",
    "delivery_id",
    "event",
    "action",
    "fingerprint",
    "event_id",
    "webhook_id",
    "payload",
    "attempts",
)


class SQLDialect:
    """What the backends' SQL does differently. Statements are written with ``%s``."""

    #: Appended to the SELECT that takes one pending row to process (rows others hold: skipped).
    skip_locked: ClassVar[str] = ""
    #: Appended to the SELECT that reads a row about to be updated.
    for_update: ClassVar[str] = ""

    def execute(
        self, handle: Any, sql: str, params: tuple[Any, ...] = (), *, quiet: bool = False
    ) -> Any:
        """Run ``sql`` on the backend's handle; returns something with ``fetchone``,
        ``fetchall`` and ``rowcount``. ``quiet``: a failure is expected, do not log it."""
        raise NotImplementedError

    def now(self) -> Fragment:
        """The current time, UTC, as stored."""
        raise NotImplementedError

    def later(self, seconds: float) -> Fragment:
        """``seconds`` from now."""
        raise NotImplementedError

    def ago(self, days: float, now: dt.datetime | None) -> Fragment:
        """``days`` before ``now`` (naive UTC; None: the current time)."""
        raise NotImplementedError

    def timestamp(self, value: Any) -> dt.datetime | None:
        """A stored time as read back."""
        return value


class BaseDeliveryStore:
    """The delivery rows' life, on a backend given by ``dialect`` and the methods below.

    Methods that take ``cur`` first run in the caller's transaction on that handle (a DB-API
    cursor; for SQLite a connection); with ``None`` the store opens and commits its own.
    """

    dialect: ClassVar[SQLDialect]
    table: str
    fingerprints: str

    # -- what a backend supplies

    def _session(self, cur: Any) -> AbstractContextManager[Any]:
        """``cur`` as it is, or (``None``) a handle in a transaction of the store's own."""
        raise NotImplementedError

    def claim(self, delivery: Delivery, *, defer: float = 0.0) -> ClaimResult:
        raise NotImplementedError

    def _move_done(self, cur: Any, before: Fragment, batch: int | None) -> int:
        """Move ``done`` rows received before ``before`` (at most ``batch``, oldest first) to the
        fingerprint table; returns how many rows left the delivery table."""
        raise NotImplementedError

    # -- shared SQL

    def _run(self, cur: Any, sql: str, params: tuple[Any, ...] = (), *, quiet: bool = False) -> Any:
        return self.dialect.execute(cur, sql, params, quiet=quiet)

    def _insert(
        self, cur: Any, delivery: Delivery, defer: float, returning: Fragment = ("", ())
    ) -> Any:
        """INSERT the delivery as ``received`` unless one of its keys exists (no error)."""
        now, now_args = self.dialect.now()
        nxt, nxt_args = self.dialect.later(defer) if defer > 0 else ("NULL", ())
        return self._run(
            cur,
            f"INSERT INTO {self.table} (delivery_id, fingerprint, event_id, event, action, "
            "webhook_id, payload, state, attempts, received_at, next_attempt_at) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, 'received', 0, {now}, {nxt}) "
            f"ON CONFLICT DO NOTHING{returning[0]}",
            (
                delivery.delivery_id,
                delivery.fingerprint,
                delivery.event_id,
                delivery.event,
                delivery.action,
                delivery.webhook_id,
                delivery.body.decode("utf-8"),
                *now_args,
                *nxt_args,
                *returning[1],
            ),
        )

    def _match(
        self, cur: Any, delivery: Delivery, *, purged: bool = False
    ) -> tuple[str, str] | None:
        """The key of ``delivery`` that a row already holds, and that row's delivery id; among
        the purged fingerprints with ``purged`` (looked up by fingerprint and event id only:
        those are the columns indexed there)."""
        if purged:
            where, args = (
                "fingerprint = %s OR event_id = %s LIMIT 2",
                (
                    delivery.fingerprint,
                    delivery.event_id,
                ),
            )
        else:
            where, args = (
                "delivery_id = %s OR fingerprint = %s OR event_id = %s LIMIT 3",
                (
                    delivery.delivery_id,
                    delivery.fingerprint,
                    delivery.event_id,
                ),
            )
        table = self.fingerprints if purged else self.table
        rows = self._run(
            cur, f"SELECT delivery_id, fingerprint, event_id FROM {table} WHERE {where}", args
        ).fetchall()
        return _matched_key(delivery, list(rows))

    def _set_done(self, cur: Any, key: str, value: Any) -> None:
        now, args = self.dialect.now()
        self._run(
            cur,
            f"UPDATE {self.table} SET state = 'done', attempts = attempts + 1, "
            f"processed_at = {now}, next_attempt_at = NULL, last_error = NULL "
            f"WHERE {key} = %s AND {_PENDING}",
            (*args, value),
        )

    # -- receiver side

    def mark_done(self, delivery_id: str) -> None:
        """Mark an inline-processed delivery done (its own transaction)."""
        with self._session(None) as cur:
            self._set_done(cur, "delivery_id", delivery_id)

    def mark_failed(
        self,
        delivery_id: str,
        error: BaseException,
        *,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
    ) -> str:
        """Record a failed inline attempt: the queue will retry it after the backoff."""
        with self._session(None) as cur:
            row = self._run(
                cur,
                f"SELECT id, attempts FROM {self.table} "
                f"WHERE delivery_id = %s{self.dialect.for_update}",
                (delivery_id,),
            ).fetchone()
            if row is None:
                raise DeliveryStoreError(f"no delivery row {delivery_id!r}")
            return self._record_failure(cur, row[0], row[1], error, max_attempts, backoff)

    # -- worker side

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

        Each row is locked (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, rows another worker holds
        are skipped; SQLite: the write transaction holds the file) and handled inside a
        SAVEPOINT, so the handler's own writes through ``cur`` and the row's new state commit
        together when the caller commits — or not at all. A handler exception rolls back to
        the savepoint, counts an attempt, keeps the error on the row and schedules a retry with
        ``backoff``; after ``max_attempts`` the row is ``dead``. With ``cur=None`` the store
        opens (and commits) its own transaction. SQLite: pass a ``sqlite3.Connection`` on the
        same file, opened with ``isolation_level=None``.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        report = ProcessReport()
        with self._session(cur) as cur:
            now, args = self.dialect.now()
            due = self._run(
                cur,
                f"SELECT id FROM {self.table} WHERE {_PENDING} "
                f"AND (next_attempt_at IS NULL OR next_attempt_at <= {now}) ORDER BY id LIMIT %s",
                (*args, int(limit)),
            ).fetchall()
            for (row_id,) in due:
                row = self._lock(cur, row_id)
                if row is None:
                    report.skipped += 1
                    continue
                if not self._handle(cur, row, handler, report, max_attempts, backoff, defer):
                    break
        return report

    def _lock(self, cur: Any, row_id: int) -> tuple[Any, ...] | None:
        # One row at a time, inside a savepoint: in a REPEATABLE READ caller (Odoo cron) a row
        # another worker finished after our snapshot raises a serialization failure; that row is
        # simply not ours, so roll back to the savepoint and move on, quietly.
        self._run(cur, "SAVEPOINT plane_wh_lock")
        try:
            row = self._run(
                cur,
                f"SELECT {', '.join(_TAKEN)} FROM {self.table} "
                f"WHERE id = %s AND {_PENDING}{self.dialect.skip_locked}",
                (row_id,),
                quiet=True,
            ).fetchone()
        except Exception as exc:
            if not _is_serialization_failure(exc):
                raise
            self._run(cur, "ROLLBACK TO SAVEPOINT plane_wh_lock")
            row = None
        self._run(cur, "RELEASE SAVEPOINT plane_wh_lock")
        return tuple(row) if row is not None else None

    def _handle(
        self,
        cur: Any,
        row: tuple[Any, ...],
        handler: Callable[[Delivery], object],
        report: ProcessReport,
        max_attempts: int,
        backoff: Backoff | None,
        defer: Defer | None,
    ) -> bool:
        """Run the handler on one locked row inside a SAVEPOINT; record done or the failure.
        False when the row was deferred (the run stops)."""
        self._run(cur, "SAVEPOINT plane_wh_handler")
        try:
            handler(_delivery_from_row(row))
        except Exception as exc:  # noqa: BLE001 - any handler failure is recorded on the row
            self._run(cur, "ROLLBACK TO SAVEPOINT plane_wh_handler")
            self._run(cur, "RELEASE SAVEPOINT plane_wh_handler")
            seconds = _deferral(defer, exc)
            if seconds is not None:
                self._defer_row(cur, row[0], seconds, exc)
                report.deferred += 1
                return False
            state = self._record_failure(cur, row[0], row[-1], exc, max_attempts, backoff)
            if state == "dead":
                report.dead += 1
            else:
                report.failed += 1
            return True
        self._run(cur, "RELEASE SAVEPOINT plane_wh_handler")
        self._set_done(cur, "id", row[0])
        report.done += 1
        return True

    def _defer_row(self, cur: Any, row_id: int, seconds: float, exc: BaseException) -> None:
        nxt, args = self.dialect.later(seconds)
        self._run(
            cur,
            f"UPDATE {self.table} SET last_error = %s, next_attempt_at = {nxt} WHERE id = %s",
            (f"deferred: {describe_error(exc)}", *args, row_id),
        )

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
        delay = float((backoff or default_backoff)(attempts))
        nxt, args = ("NULL", ()) if state == "dead" else self.dialect.later(delay)
        error = describe_error(exc)
        self._run(
            cur,
            f"UPDATE {self.table} SET state = %s, attempts = %s, last_error = %s, "
            f"next_attempt_at = {nxt} WHERE id = %s",
            (state, attempts, error, *args, row_id),
        )
        _log_failure(row_id, state, attempts, max_attempts, error)
        return state

    # -- views and upkeep

    def retry(self, cur: Any, row_id: int) -> bool:
        """Put a dead or failed row back in the queue (attempts reset); False if none matched."""
        with self._session(cur) as cur:
            done = self._run(
                cur,
                f"UPDATE {self.table} SET state = 'received', attempts = 0, "
                "next_attempt_at = NULL WHERE id = %s AND state IN ('dead', 'failed')",
                (row_id,),
            )
            return bool(done.rowcount)

    def fetch(
        self,
        cur: Any = None,
        *,
        state: str | None = None,
        delivery_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        """Rows, newest first, optionally filtered by state or delivery id."""
        where, params = _filters(state, delivery_id)
        with self._session(cur) as cur:
            rows = self._run(
                cur,
                f"SELECT {', '.join(_COLUMNS)} FROM {self.table}{where} ORDER BY id DESC LIMIT %s",
                (*params, int(limit)),
            ).fetchall()
        stamp = self.dialect.timestamp
        return [
            DeliveryRow(*(stamp(v) if c in _TIMES else v for c, v in zip(_COLUMNS, r, strict=True)))
            for r in rows
        ]

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
        the same transaction, and keep refusing a replay of the same body for
        ``fingerprint_days`` (``None``: forever); older fingerprints are deleted. ``batch`` caps
        the rows purged in one call (oldest first). ``now`` (naive UTC) stands in for the
        database clock. Failed and dead rows are kept for inspection. The one-day minimum:
        Plane's retries of one event span about an hour, and the delivery row is what catches
        those.
        """
        days = _retention_days(older_than_days)
        keep = _fingerprint_days(fingerprint_days, days)
        with self._session(cur) as cur:
            purged = self._move_done(cur, self.dialect.ago(days, now), batch)
            if keep is not None:
                before, args = self.dialect.ago(keep, now)
                self._run(
                    cur, f"DELETE FROM {self.fingerprints} WHERE received_at < {before}", args
                )
        return purged

    def counts(self, cur: Any = None) -> dict[str, int]:
        """Number of rows per state (every state present, zero when none)."""
        with self._session(cur) as cur:
            found = dict(
                self._run(
                    cur, f"SELECT state, count(*) FROM {self.table} GROUP BY state"
                ).fetchall()
            )
        return {s: int(found.get(s, 0)) for s in STATES}


# --- helpers --------------------------------------------------------------------------------


def _duplicate(hit: tuple[str, str]) -> ClaimResult:
    return ClaimResult(False, duplicate_of=hit[0], existing_delivery_id=hit[1])


def _delivery_from_row(row: tuple[Any, ...]) -> Delivery:
    values = dict(zip(_TAKEN, row, strict=True))
    row_id, payload = values.pop("id"), values.pop("payload")
    text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
    return Delivery(row_id=row_id, body=text.encode("utf-8"), payload=json.loads(text), **values)


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


def _deferral(defer: Defer | None, exc: BaseException) -> float | None:
    """Seconds to put the row back for, if ``defer`` says the failure was an outage."""
    if defer is None:
        return None
    seconds = defer(exc)
    if seconds is None:
        return None
    seconds = float(seconds)
    # A caller's odd number must not break the error path: 0 to one hour.
    return min(max(seconds, 0.0), 3600.0) if math.isfinite(seconds) else 3600.0


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
