"""The delivery model: what a delivery is, its states, what a store answers, and the table names."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

DEFAULT_TABLE = "plane_webhook_delivery"
#: Days a purged delivery's fingerprint and event id keep refusing replays (``None``: forever).
DEFAULT_FINGERPRINT_DAYS = 365.0
#: received → done; received/failed → failed (retried after the backoff) → dead (gave up).
STATES = ("received", "done", "failed", "dead")
PENDING_STATES = ("received", "failed")

#: ``connect()`` returns a context manager yielding a DB-API cursor inside a fresh transaction
#: that commits on clean exit and rolls back on exception (Odoo: ``env.registry.cursor``).
Connect = Callable[[], AbstractContextManager[Any]]
#: Seconds to wait before the next attempt, given the number of attempts made so far (>= 1).
Backoff = Callable[[int], float]
#: Given a handler's exception: seconds to put the row back untouched (an outage), or None.
Defer = Callable[[BaseException], "float | None"]


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
        max_attempts: int = ...,
        backoff: Backoff | None = ...,
    ) -> str:
        """Record a failed processing attempt; returns the new state (failed or dead).

        The stores' defaults: 5 attempts, :func:`plane_connector.backoff.default_backoff`."""
        ...


_TABLE_RE = re.compile(r"^(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$")


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
