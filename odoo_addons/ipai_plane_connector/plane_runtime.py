"""Process-level plumbing shared by the models and the controller (no Odoo models here).

Everything cross-process (dedupe rows, the rate budget, sync marks) lives in PostgreSQL; what is
kept here is only a cache: the Plane client per (database, base URL, key reference, process).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

_log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.plane.so"
PARAM_BASE_URL = "plane.base_url"
PARAM_WORKSPACE = "plane.workspace_slug"
PARAM_API_KEY_REF = "plane.api_key_ref"
PARAM_WEBHOOK_SECRET_REF = "plane.webhook_secret_ref"  # noqa: S105 - a parameter name
# OAuth "Plane Apps" (Plane Cloud and commercial editions only; CE knows only API keys).
# Plane's per-key budget: 60/min by default, 300/min for a service token; the window is a
# parameter so that tests can run a time-scaled emulator through the real configuration path.
PARAM_REQUESTS_PER_MINUTE = "plane.requests_per_minute"
PARAM_RATE_WINDOW = "plane.rate_window"
PARAM_AUTH_MODE = "plane.auth_mode"  # "api_key" (default) or "oauth"
# Extra CAs (a PEM file on the server) for a self-hosted Plane behind an internal CA.
PARAM_CA_BUNDLE = "plane.ca_bundle"
PARAM_OAUTH_CLIENT_ID = "plane.oauth_client_id"
PARAM_OAUTH_SECRET_REF = "plane.oauth_client_secret_ref"  # noqa: S105 - a parameter name
PARAM_OAUTH_KEY_REF = "plane.oauth_token_key_ref"
PARAM_OAUTH_INSTALLATION = "plane.oauth_app_installation_id"
OAUTH_TOKEN_NAME = "odoo"  # noqa: S105 - the token row's name
OAUTH_CALLBACK = "/plane/oauth/callback"

_clients: dict[tuple[str, str, str, int], Any] = {}
_clients_lock = threading.Lock()


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


def get_client(dbname: str, base_url: str, key_ref: str, factory: Any) -> Any:
    """The cached client for this process and configuration; ``factory()`` builds a new one.

    The process id is in the key because Odoo forks its workers after import: a client (and
    its runtime) made in the parent must not be reused in a child.
    """
    key = (dbname, base_url, key_ref, os.getpid())
    client = _clients.get(key)
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = factory()
            # Stale entries (old config, parent pid) would only waste memory: drop them.
            for stale in [k for k in _clients if k[0] == dbname or k[3] != key[3]]:
                del _clients[stale]
            _clients[key] = client
            _log.debug("built Plane client for database %s, %s", dbname, base_url)
        return client


def forget_clients(dbname: str | None = None) -> None:
    """Drop cached clients (all, or one database's), e.g. after the settings changed."""
    with _clients_lock:
        for k in [k for k in _clients if dbname is None or k[0] == dbname]:
            del _clients[k]


def checked_ca_bundle(path: str) -> str | None:
    """``plane.ca_bundle`` as the client takes it, or None when unset.

    Which certificate authorities Odoo trusts is the server operator's decision: the value must
    be an absolute path to a regular, readable PEM file of CA certificates (the wheel refuses
    devices, FIFOs, directories, oversized files and files without a certificate, and never
    echoes a file's content). Raises ``UserError``.
    """
    from odoo.exceptions import UserError

    path = (path or "").strip()
    if not path:
        return None
    if not os.path.isabs(path):
        raise UserError(f"plane.ca_bundle must be an absolute path, got {path!r}.")
    import plane_connector

    try:  # builds nothing but the bundle check: no connection is made
        plane_connector.PlaneClient("https://localhost", ca_bundle=path)
    except plane_connector.ConfigError as exc:
        raise UserError(f"plane.ca_bundle: {exc}") from None
    return path
