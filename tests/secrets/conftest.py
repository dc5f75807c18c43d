"""Fixtures for the secret-reference tests: real backends (PostgreSQL shaped like Supabase Vault,
the OS keychain: gnome-keyring's Secret Service on a private D-Bus session bus)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from keychain import SecretService, current_backend, running_secret_service

# Supabase Vault's shape (vault.secrets + the vault.decrypted_secrets view). Supabase decrypts
# with pgsodium; pgcrypto stands in here so the view really decrypts, and a secret whose key is
# gone decrypts to NULL, as it does there.
VAULT_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA vault;
CREATE TABLE vault.keys (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), key text NOT NULL);
CREATE TABLE vault.secrets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text UNIQUE,
    description text NOT NULL DEFAULT '',
    secret text NOT NULL,
    key_id uuid,
    nonce bytea DEFAULT gen_random_bytes(16),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE VIEW vault.decrypted_secrets AS
SELECT s.id, s.name, s.description, s.secret,
       CASE WHEN k.key IS NULL THEN NULL
            ELSE pgp_sym_decrypt(decode(s.secret, 'base64'), k.key) END AS decrypted_secret,
       s.key_id, s.nonce, s.created_at, s.updated_at
FROM vault.secrets s LEFT JOIN vault.keys k ON k.id = s.key_id;
"""


class Vault:
    """A throwaway database holding a Supabase-Vault-shaped schema."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def put(self, name: str, value: str, *, key_lost: bool = False) -> None:
        """Store ``value`` encrypted under a fresh key (then drop the key when ``key_lost``)."""
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO vault.keys (key) VALUES (encode(gen_random_bytes(24), 'hex')) "
                "RETURNING id, key"
            )
            key_id, key = cur.fetchone()
            cur.execute(
                "INSERT INTO vault.secrets (name, secret, key_id) "
                "VALUES (%s, encode(pgp_sym_encrypt(%s, %s), 'base64'), %s)",
                (name, value, key, key_id),
            )
            if key_lost:
                cur.execute("DELETE FROM vault.keys WHERE id = %s", (key_id,))
        conn.close()


VAULT_DB_PREFIX = "plane_secrets_vault_"


def _drop_orphans(cur: Any) -> None:
    """Drop vault databases left by a run that was killed (its pid is gone)."""
    cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (VAULT_DB_PREFIX + "%",))
    for (name,) in cur.fetchall():
        pid = name[len(VAULT_DB_PREFIX) :].partition("_")[0]
        if pid.isdigit() and not _alive(int(pid)):
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _with_dbname(dsn: str, dbname: str) -> str:
    base, _, _old = dsn.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def admin_dsn(pg_dsn: str) -> str:
    """The shared test database (used only to create and drop our own databases)."""
    try:
        psycopg2.connect(pg_dsn).close()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at PLANE_TEST_PG_DSN: {exc}")
    return pg_dsn


@pytest.fixture(scope="session")
def vault(admin_dsn: str) -> Iterator[Vault]:
    """A uniquely named database with the vault schema; dropped afterwards."""
    dbname = f"{VAULT_DB_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        _drop_orphans(cur)
        cur.execute(f'CREATE DATABASE "{dbname}"')
    dsn = _with_dbname(admin_dsn, dbname)
    try:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(VAULT_SCHEMA)
        conn.close()
        yield Vault(dsn)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()


# --- the OS keychain (keychain.py) -----------------------------------------------------------


@pytest.fixture(scope="session")
def secret_service() -> Iterator[SecretService]:
    """One unlocked Secret Service for the session's store/resolve tests (never locked)."""
    with running_secret_service() as service:
        yield service


@pytest.fixture()
def os_keyring(secret_service: SecretService) -> Iterator[SecretService]:
    """keyring's SecretService backend, made current, on the session's Secret Service."""
    with current_backend():
        yield secret_service


@pytest.fixture()
def lockable_keyring() -> Iterator[SecretService]:
    """A Secret Service of the test's own (it may lock it), keyring's backend made current."""
    with running_secret_service() as service, current_backend():
        yield service
