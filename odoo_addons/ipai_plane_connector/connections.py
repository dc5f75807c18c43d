"""Connections for the wheel's PostgreSQL stores (deliveries, rate budget, OAuth tokens)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class _NoIsolationSwitch:
    """Cursor proxy for Odoo's test cursors, which are savepoints inside the test transaction.

    The delivery store opens each claim with ``SET TRANSACTION ISOLATION LEVEL READ COMMITTED``
    (right for a fresh transaction); inside a test transaction that already ran queries
    PostgreSQL refuses it. Tests have no concurrent writer, so skipping it changes nothing.
    """

    def __init__(self, cr: Any) -> None:
        self._cr = cr

    def execute(self, query: Any, params: Any = None, log_exceptions: bool = True) -> Any:
        if isinstance(query, str) and query.lstrip().upper().startswith("SET TRANSACTION"):
            return None
        return self._cr.execute(query, params, log_exceptions=log_exceptions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cr, name)


def store_connect(registry: Any):
    """``connect()`` for the wheel's PostgreSQL stores: a fresh Odoo cursor per use.

    ``registry.cursor`` is looked up at each call (never bound once) because Odoo's test mode
    patches it per test class, and the client cache outlives a test class.
    """

    @contextlib.contextmanager
    def connect() -> Iterator[Any]:
        with registry.cursor() as cr:
            yield _NoIsolationSwitch(cr) if type(cr).__name__ == "TestCursor" else cr

    return connect


def pg_connect(dbname: str):
    """``connect()`` returning a new psycopg2 connection to ``dbname`` (Odoo's settings).

    The OAuth token store commits its refreshes on connections of its own, never on an Odoo
    cursor, so that a refresh made by one worker is visible to all at once.
    """
    import psycopg2
    from odoo.sql_db import connection_info_for

    def connect():
        return psycopg2.connect(**connection_info_for(dbname)[1])

    return connect
