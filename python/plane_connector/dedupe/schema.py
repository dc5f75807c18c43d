"""The delivery tables' columns, declared once: both stores' DDL is made from these, and a test
holds the Odoo models ``plane.webhook.delivery`` and ``plane.webhook.delivery.fingerprint`` to them.

Every table also has ``id`` (serial primary key). There are no database defaults: Odoo sets
none, and the stores write every column they rely on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column: ``type`` is the PostgreSQL type (the SQLite store maps it)."""

    name: str
    type: str
    required: bool = False  # NOT NULL
    unique: bool = False  # constraint ``<table>_<name>_uniq``


DELIVERY_COLUMNS: tuple[Column, ...] = (
    Column("delivery_id", "varchar", required=True, unique=True),
    Column("fingerprint", "varchar", required=True, unique=True),
    Column("event_id", "varchar", unique=True),
    Column("event", "varchar", required=True),
    Column("action", "varchar", required=True),
    Column("webhook_id", "varchar"),
    Column("payload", "text", required=True),
    Column("state", "varchar", required=True),
    Column("attempts", "integer", required=True),
    Column("last_error", "text"),
    Column("received_at", "timestamp", required=True),
    Column("processed_at", "timestamp"),
    Column("next_attempt_at", "timestamp"),
)

#: ``<table>_fingerprint``: what is kept of a purged delivery.
FINGERPRINT_COLUMNS: tuple[Column, ...] = (
    Column("fingerprint", "varchar", required=True, unique=True),
    Column("event_id", "varchar", unique=True),
    Column("delivery_id", "varchar", required=True),
    Column("received_at", "timestamp", required=True),
)


def columns_sql(
    columns: Sequence[Column], base: str, types: Mapping[str, str] | None = None
) -> str:
    """The column and unique-constraint list of a ``CREATE TABLE`` (without ``id``); ``base`` is
    the bare table name the constraints are named after, ``types`` maps PostgreSQL types."""
    parts = [
        f"{c.name} {(types or {}).get(c.type, c.type)}{' NOT NULL' if c.required else ''}"
        for c in columns
    ]
    parts += [f"CONSTRAINT {base}_{c.name}_uniq UNIQUE ({c.name})" for c in columns if c.unique]
    return ", ".join(parts)
