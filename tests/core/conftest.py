"""Fixtures of the core client tests (the server itself is in core_loopback.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from core_loopback import LoopbackServer


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    try:
        yield srv
    finally:
        srv.stop()
