"""Per-process caches: the Plane client per (database, base URL, key reference, process) and
the resolved secrets per database.

Everything cross-process (dedupe rows, the rate budget, sync marks) lives in PostgreSQL; what is
kept here is only a cache, started over whenever a ``plane.*`` parameter changes.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

_log = logging.getLogger(__name__)

#: Bumped by every save of Settings > Plane: each worker's secret cache for the database starts
#: over when it sees a new value (the parameter cache is invalidated across workers by Odoo).
PARAM_SECRETS_GENERATION = "plane.secrets_generation"  # noqa: S105 - a parameter name
#: Resolved secrets are kept this long per worker and database (a vault: reference would
#: otherwise cost a database connection per webhook); a failure is retried after the shorter
#: delay.
SECRET_TTL = 60.0
SECRET_FAILURE_TTL = 10.0

_clients: dict[tuple[str, str, str, int], Any] = {}
_clients_lock = threading.Lock()
_secret_caches: dict[str, tuple[str, Any]] = {}
# Its own lock: a client is built (under _clients_lock) from secrets taken from this cache.
_secret_caches_lock = threading.Lock()


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
    """Drop cached clients and resolved secrets (all, or one database's), e.g. after the
    settings changed."""
    with _clients_lock:
        for k in [k for k in _clients if dbname is None or k[0] == dbname]:
            del _clients[k]
    with _secret_caches_lock:
        for k in [k for k in _secret_caches if dbname is None or k == dbname]:
            del _secret_caches[k]


def secret_cache(dbname: str, generation: str):
    """This worker's cache of resolved secrets for ``dbname`` (a fresh one per generation)."""
    from plane_connector import secrets

    with _secret_caches_lock:
        current = _secret_caches.get(dbname)
        if current is None or current[0] != generation:
            current = (generation, secrets.SecretCache(
                SECRET_TTL, negative_ttl=SECRET_FAILURE_TTL))
            _secret_caches[dbname] = current
        return current[1]
