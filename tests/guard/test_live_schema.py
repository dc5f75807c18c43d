"""The live schema gate against real PostgreSQL: the delivery table must carry a unique
constraint or index on exactly (delivery_id)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import psycopg2
import pytest

if TYPE_CHECKING:
    from conftest import GitRepo

Run = Callable[..., tuple[int, str]]

# The shared table layout (see ARCHITECTURE / the delivery store): what Odoo creates.
TABLE = """
CREATE TABLE plane_webhook_delivery (
    id serial PRIMARY KEY,
    delivery_id varchar NOT NULL,
    fingerprint varchar NOT NULL,
    event_id varchar,
    event varchar NOT NULL,
    action varchar NOT NULL,
    webhook_id varchar,
    payload text NOT NULL,
    state varchar NOT NULL,
    attempts integer NOT NULL,
    last_error text,
    received_at timestamp NOT NULL,
    processed_at timestamp,
    next_attempt_at timestamp
)
"""


@pytest.fixture()
def schema(pg_dsn: str) -> Iterator[tuple[str, object]]:
    """A unique schema in the test database; yields (DSN whose search_path is it, cursor)."""
    try:
        conn = psycopg2.connect(pg_dsn)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    conn.autocommit = True
    name = f"guard_{secrets.token_hex(6)}"
    cur = conn.cursor()
    cur.execute(f"CREATE SCHEMA {name}")
    cur.execute(f"SET search_path TO {name}")
    sep = "&" if "?" in pg_dsn else "?"
    try:
        yield f"{pg_dsn}{sep}options=-csearch_path%3D{name}", cur
    finally:
        cur.execute(f"DROP SCHEMA {name} CASCADE")
        conn.close()


def test_unique_constraint_passes(repo: GitRepo, run_guard: Run, schema: tuple) -> None:
    dsn, cur = schema
    cur.execute(TABLE)
    cur.execute(
        "ALTER TABLE plane_webhook_delivery ADD CONSTRAINT "
        "plane_webhook_delivery_delivery_id_uniq UNIQUE (delivery_id)"
    )
    code, out = run_guard(repo, "--dsn", dsn)
    assert code == 0, out
    assert "unique on (delivery_id) via plane_webhook_delivery_delivery_id_uniq" in out


def test_dsn_from_environment(
    repo: GitRepo, run_guard: Run, schema: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn, cur = schema
    cur.execute(TABLE)
    monkeypatch.setenv("PLANE_GUARD_DSN", dsn)
    code, out = run_guard(repo)
    assert code == 1
    assert "has no unique constraint or index on exactly (delivery_id)" in out


def test_dsn_as_a_reference(
    repo: GitRepo, run_guard: Run, schema: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn, cur = schema
    cur.execute(TABLE)
    cur.execute("CREATE UNIQUE INDEX d_uniq ON plane_webhook_delivery (delivery_id)")
    monkeypatch.setenv("PLANE_TEST_GUARD_DSN", dsn)
    code, out = run_guard(repo, "--dsn", "env:PLANE_TEST_GUARD_DSN")
    assert code == 0, out


@pytest.mark.parametrize(
    "ddl",
    [
        None,  # no unique at all: the dropped constraint
        "ALTER TABLE plane_webhook_delivery ADD CONSTRAINT u UNIQUE (delivery_id, webhook_id)",
        "CREATE UNIQUE INDEX u ON plane_webhook_delivery (delivery_id) WHERE state = 'done'",
        "CREATE UNIQUE INDEX u ON plane_webhook_delivery (lower(delivery_id))",
        "CREATE INDEX u ON plane_webhook_delivery (delivery_id)",
        # ON CONFLICT DO NOTHING cannot arbitrate on a deferrable constraint.
        "ALTER TABLE plane_webhook_delivery ADD CONSTRAINT u UNIQUE (delivery_id) "
        "DEFERRABLE INITIALLY DEFERRED",
    ],
)
def test_missing_or_inexact_unique_fails(
    repo: GitRepo, run_guard: Run, schema: tuple, ddl: str | None
) -> None:
    dsn, cur = schema
    cur.execute(TABLE)
    if ddl:
        cur.execute(ddl)
    code, out = run_guard(repo, "--dsn", dsn)
    assert code == 1, out
    assert "schema: live table plane_webhook_delivery has no unique constraint" in out
    assert "postgresql://postgres@127.0.0.1:5432/" in out  # names the database, not a password


def test_dropping_the_constraint_later_is_caught(
    repo: GitRepo, run_guard: Run, schema: tuple
) -> None:
    dsn, cur = schema
    cur.execute(TABLE)
    cur.execute("ALTER TABLE plane_webhook_delivery ADD CONSTRAINT c UNIQUE (delivery_id)")
    assert run_guard(repo, "--dsn", dsn)[0] == 0
    cur.execute("ALTER TABLE plane_webhook_delivery DROP CONSTRAINT c")
    assert run_guard(repo, "--dsn", dsn)[0] == 1


def test_missing_table(repo: GitRepo, run_guard: Run, schema: tuple) -> None:
    dsn, _cur = schema
    code, out = run_guard(repo, "--dsn", dsn)
    assert code == 1
    assert "live database has no table plane_webhook_delivery" in out


def test_unreachable_database_is_a_usage_error_without_password(
    repo: GitRepo, run_guard: Run
) -> None:
    password = secrets.token_hex(10)
    code, out = run_guard(repo, "--dsn", f"postgresql://u:{password}@127.0.0.1:1/db")
    assert code == 2
    assert "cannot connect to the database" in out
    assert password not in out
