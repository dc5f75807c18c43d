"""Fixtures for the OAuth tests: an encryption key behind a secret reference and a private token
table in the real PostgreSQL server."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import cryptography  # noqa: F401 - a dev requirement the token encryption needs
import psycopg2
import pytest

KEY_ENV = "PLANE_TEST_TOKEN_KEY"


@pytest.fixture
def key_ref(monkeypatch: pytest.MonkeyPatch) -> str:
    """``env:`` reference to a fresh 32-byte token encryption key."""
    monkeypatch.setenv(KEY_ENV, base64.b64encode(uuid.uuid4().bytes * 2).decode())
    return f"env:{KEY_ENV}"


@pytest.fixture
def connect(pg_dsn: str) -> Callable[[], Any]:
    """A factory of new connections, as PostgresTokenStore wants."""
    try:
        psycopg2.connect(pg_dsn).close()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {pg_dsn}: {exc}")
    return lambda: psycopg2.connect(pg_dsn)


@pytest.fixture
def token_table(connect: Callable[[], Any]) -> Iterator[str]:
    """A token table name private to this test, dropped afterwards."""
    name = f"plane_oauth_token_t{uuid.uuid4().hex[:10]}"
    yield name
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        conn.commit()
    finally:
        conn.close()
