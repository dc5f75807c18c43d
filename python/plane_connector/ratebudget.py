"""Shared rate budgets: one Plane API key's requests-per-window, agreed by every process.

Plane counts requests per API key in a sliding window (60 per minute by default), whoever sends
them. With several Odoo workers or hosts on one key, each process's own limiter is not enough;
a budget object passed as ``PlaneClient(rate_budget=...)`` makes them share one schedule.

The protocol is a single method, ``reserve(key_id, limit, window) -> float``: reserve one request
slot for key ``key_id`` (the SHA-256 hex of the key, never the key) and return the seconds to
wait before sending. A slot is granted at ``t = max(now, s_limit + window)``, where ``s_limit``
is the ``limit``-th most recent slot, so no window of length ``window`` ever holds more than
``limit`` slots.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from plane_connector.dedupe import Connect, check_table_name, describe_error, psycopg2_connect

_log = logging.getLogger(__name__)

DEFAULT_TABLE = "plane_rate_budget"
DEFAULT_MARGIN_FRACTION = 0.01
DEFAULT_MARGIN_SECONDS = 0.05


def slot_margin(window: float, fraction: float, seconds: float) -> float:
    """Extra spacing between a slot and the one it replaces a window later (see module doc)."""
    return float(window) * fraction + seconds


@runtime_checkable
class RateBudget(Protocol):
    """What ``PlaneClient(rate_budget=...)`` calls before each request."""

    def reserve(self, key_id: str, limit: int, window: float) -> float:
        """Reserve one slot; return the seconds to wait before sending (>= 0)."""
        ...


@dataclass(frozen=True)
class Reservation:
    """A granted slot: ``slot_at`` and ``now`` in epoch seconds of the budget's clock."""

    slot_at: float
    now: float

    @property
    def wait(self) -> float:
        return max(0.0, self.slot_at - self.now)


def _check(key_id: str, limit: int, window: float) -> None:
    if not isinstance(key_id, str) or not key_id:
        raise ValueError("key_id must be a non-empty string (sha256 hex of the API key)")
    if int(limit) < 1:
        raise ValueError("limit must be >= 1")
    if not float(window) > 0:
        raise ValueError("window must be > 0 seconds")


class LocalRateBudget:
    """In-process budget (threads of one process): the same schedule as the PostgreSQL one."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        margin_fraction: float = DEFAULT_MARGIN_FRACTION,
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
    ) -> None:
        self._clock = clock
        self._margin = (margin_fraction, margin_seconds)
        self._lock = threading.Lock()
        self._slots: dict[str, collections.deque[float]] = {}

    def reserve_slot(self, key_id: str, limit: int, window: float) -> Reservation:
        """Reserve one slot and return it with the clock reading it was computed against."""
        _check(key_id, limit, window)
        with self._lock:
            now = self._clock()
            slots = self._slots.setdefault(key_id, collections.deque())
            margin = slot_margin(window, *self._margin)
            slot = now if len(slots) < limit else max(now, slots[-limit] + window + margin)
            slots.append(slot)
            # Only the last `limit` slots can ever matter for the next grant.
            while len(slots) > limit:
                slots.popleft()
            return Reservation(slot, now)

    def reserve(self, key_id: str, limit: int, window: float) -> float:
        return self.reserve_slot(key_id, limit, window).wait


class PostgresRateBudget:
    """Budget shared through PostgreSQL by every process and host using the same database.

    One row per granted slot ``(key_id, slot_at)``; a reservation runs in its own short READ
    COMMITTED transaction serialized per key by ``pg_advisory_xact_lock(hashtext(key_id))`` and
    timed by the database clock (``clock_timestamp()``), so hosts with drifting clocks still
    agree. ``connect()`` has the same contract as for the delivery store (Odoo:
    ``env.registry.cursor``). ``fail_open=True`` turns a database error into "no wait" (logged),
    leaving the client's own limiter and 429 handling in charge.
    """

    def __init__(
        self,
        connect: Connect,
        *,
        table: str = DEFAULT_TABLE,
        fail_open: bool = False,
        margin_fraction: float = DEFAULT_MARGIN_FRACTION,
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
    ) -> None:
        self._connect = connect
        self.table = check_table_name(table)
        self.fail_open = fail_open
        self._margin = (margin_fraction, margin_seconds)
        self._ready = False

    @classmethod
    def from_dsn(
        cls,
        dsn: str,
        *,
        table: str = DEFAULT_TABLE,
        fail_open: bool = False,
        connect_timeout: float = 5.0,
        **margins: float,
    ) -> PostgresRateBudget:
        return cls(
            psycopg2_connect(dsn, connect_timeout=connect_timeout),
            table=table,
            fail_open=fail_open,
            **margins,
        )

    def __repr__(self) -> str:
        return f"PostgresRateBudget(table={self.table!r})"

    def ensure_schema(self) -> None:
        """Create the slot table and its index if absent."""
        base = self.table.rsplit(".", 1)[-1]
        with self._connect() as cur:
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"plane_connector:{self.table}",)
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "id bigserial PRIMARY KEY, key_id varchar NOT NULL, "
                "slot_at double precision NOT NULL)"
            )
            cur.execute(
                f"CREATE INDEX IF NOT EXISTS {base}_key_slot_idx ON {self.table} (key_id, slot_at)"
            )
        self._ready = True

    def reserve_slot(self, key_id: str, limit: int, window: float) -> Reservation:
        """Reserve one slot; returns it with the database clock reading it was computed against."""
        _check(key_id, limit, window)
        if not self._ready:
            self.ensure_schema()
        t = self.table
        with self._connect() as cur:
            # READ COMMITTED first: each statement after the lock must see the slots the previous
            # holder committed (a REPEATABLE READ snapshot would predate them).
            cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{t}:{key_id}",))
            cur.execute("SELECT extract(epoch FROM clock_timestamp())::double precision")
            now = float(_first(cur))
            cur.execute(
                f"SELECT slot_at FROM {t} WHERE key_id = %s ORDER BY slot_at DESC "
                "OFFSET %s LIMIT 1",
                (key_id, int(limit) - 1),
            )
            row = cur.fetchone()
            margin = slot_margin(window, *self._margin)
            slot = now if row is None else max(now, float(row[0]) + float(window) + margin)
            cur.execute(f"INSERT INTO {t} (key_id, slot_at) VALUES (%s, %s)", (key_id, slot))
            # Slots older than one window can no longer be the limit-th most recent one that
            # matters: the grant would be `now` anyway.
            cur.execute(
                f"DELETE FROM {t} WHERE key_id = %s AND slot_at < %s", (key_id, now - float(window))
            )
        return Reservation(slot, now)

    def reserve(self, key_id: str, limit: int, window: float) -> float:
        try:
            return self.reserve_slot(key_id, limit, window).wait
        except ValueError:
            raise
        except Exception as exc:
            if not self.fail_open:
                raise
            _log.warning("shared rate budget unavailable, not waiting: %s", describe_error(exc))
            return 0.0


def _first(cur: Any) -> Any:
    row = cur.fetchone()
    if row is None:  # pragma: no cover - SELECT of an expression always returns a row
        raise RuntimeError("no row")
    return row[0]
