"""Fixtures for the webhook receiver, delivery store and rate budget tests.

PostgreSQL tests each get their own schema (created and dropped here) on the real server;
SQLite tests a file in tmp_path. Samples are the deliveries recorded from a real Plane CE.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from plane_connector.dedupe import PostgresDeliveryStore, SQLiteDeliveryStore


@dataclass(frozen=True)
class Sample:
    """One recorded delivery: the headers Plane sent, the raw body and the webhook's secret."""

    name: str
    headers: dict[str, str]
    body: bytes
    secret: str

    def with_headers(self, **changes: str | None) -> dict[str, str]:
        """The recorded headers with some replaced (``X_Plane_Delivery=...``) or removed (None)."""
        out = dict(self.headers)
        for key, value in changes.items():
            name = key.replace("_", "-")
            out.pop(name, None)
            if value is not None:
                out[name] = value
        return out


@pytest.fixture(scope="session")
def samples(samples_dir: Path) -> dict[str, Sample]:
    out = {}
    for body_path in sorted((samples_dir / "webhooks").glob("*.body.json")):
        name = body_path.name.removesuffix(".body.json")
        meta = json.loads((body_path.parent / f"{name}.headers.json").read_text())
        out[name] = Sample(name, meta["headers"], body_path.read_bytes(), meta["webhook_secret"])
    assert out, f"no recorded deliveries in {samples_dir / 'webhooks'}"
    return out


@pytest.fixture(scope="session")
def retry_evidence(samples_dir: Path) -> dict:
    return json.loads((samples_dir / "webhooks" / "retry-evidence.json").read_text())


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema on the real server, dropped afterwards."""
    name = f"t_webhooks_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    try:
        conn.cursor().execute(f"CREATE SCHEMA {name}")
        yield name
    finally:
        conn.cursor().execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.close()


@pytest.fixture
def pg_table(pg_schema: str) -> str:
    return f"{pg_schema}.plane_webhook_delivery"


@pytest.fixture
def pg_store(pg_dsn: str, pg_table: str) -> PostgresDeliveryStore:
    return PostgresDeliveryStore.from_dsn(pg_dsn, table=pg_table)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> SQLiteDeliveryStore:
    return SQLiteDeliveryStore(str(tmp_path / "deliveries.sqlite3"))


@pytest.fixture(params=["pg", "sqlite"])
def store(request: pytest.FixtureRequest) -> PostgresDeliveryStore | SQLiteDeliveryStore:
    """Each test using it runs against both stores."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def pg_conn(pg_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(pg_dsn)
    try:
        yield conn
    finally:
        conn.close()
