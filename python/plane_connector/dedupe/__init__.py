"""Webhook delivery stores: the durable dedupe rows and the pending-work queue.

A delivery is *claimed* by inserting its row, insert-or-nothing, under three unique keys:
``delivery_id`` (X-Plane-Delivery), ``fingerprint`` (SHA-256 of the raw body, because Plane sends
a retry with a new delivery id and byte-identical body) and ``event_id`` (Plane Cloud v2, stable
across retries). The row exists, committed, before any side effect; processing later takes rows
from the same table.

Purging old ``done`` rows keeps their fingerprint and event id in a second table,
``<table>_fingerprint``, for a longer retention (default a year): ``X-Plane-Delivery`` is not
signed, so a captured delivery replayed under a fresh id after the purge must still be refused.

Two stores share one interface and one state machine (:mod:`.store`); each brings its SQL
dialect, its transactions and its claim:

- :class:`PostgresDeliveryStore` (:mod:`.postgres`) runs plain ``%s`` SQL through any DB-API
  cursor, so the very same statements run through psycopg2 or Odoo's ``env.cr``. Table
  ``plane_webhook_delivery`` is the one the Odoo model ``plane.webhook.delivery`` owns.
- :class:`SQLiteDeliveryStore` (:mod:`.sqlite`) is the embedded default outside Odoo.

The model (:mod:`.model`: deliveries, states, results) and the columns (:mod:`.schema`) are the
backends' common ground. ``describe_error`` lives in :mod:`plane_connector.diagnostics` and
``default_backoff`` in :mod:`plane_connector.backoff`; both stay importable from here.
"""

from __future__ import annotations

from plane_connector.backoff import default_backoff
from plane_connector.diagnostics import MAX_ERROR_CHARS, describe_error, redact_error
from plane_connector.secrets import redact  # importable from here before the split; kept

from .model import (
    DEFAULT_FINGERPRINT_DAYS,
    DEFAULT_TABLE,
    PENDING_STATES,
    STATES,
    Backoff,
    ClaimResult,
    Connect,
    Defer,
    Delivery,
    DeliveryRow,
    DeliveryStore,
    DeliveryStoreError,
    ProcessReport,
    check_table_name,
    fingerprint_table,
)
from .postgres import (
    PostgresDeliveryStore,
    PostgresDialect,
    ensure_fingerprint_schema,
    ensure_schema,
    psycopg2_connect,
)
from .schema import DELIVERY_COLUMNS, FINGERPRINT_COLUMNS, Column
from .sqlite import SQLiteDeliveryStore, SQLiteDialect
from .store import BaseDeliveryStore, SQLDialect

__all__ = [
    "DEFAULT_FINGERPRINT_DAYS",
    "DEFAULT_TABLE",
    "DELIVERY_COLUMNS",
    "FINGERPRINT_COLUMNS",
    "MAX_ERROR_CHARS",
    "PENDING_STATES",
    "STATES",
    "Backoff",
    "BaseDeliveryStore",
    "ClaimResult",
    "Column",
    "Connect",
    "Defer",
    "Delivery",
    "DeliveryRow",
    "DeliveryStore",
    "DeliveryStoreError",
    "PostgresDeliveryStore",
    "PostgresDialect",
    "ProcessReport",
    "SQLDialect",
    "SQLiteDeliveryStore",
    "SQLiteDialect",
    "check_table_name",
    "default_backoff",
    "describe_error",
    "ensure_fingerprint_schema",
    "ensure_schema",
    "fingerprint_table",
    "open_store",
    "psycopg2_connect",
    "redact",
    "redact_error",
]


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
