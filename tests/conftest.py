"""Shared pytest fixtures. Area-specific fixtures live in each tests/<area>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = FIXTURES / "plane-samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Real responses and webhook deliveries recorded from a Plane CE server (see its README)."""
    return SAMPLES


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """DSN of the real PostgreSQL server the suite runs against (./dev.sh test starts it)."""
    return os.environ.get("PLANE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
