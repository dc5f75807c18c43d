"""Fixtures of the contract probes: the live target (only with PLANE_LIVE_BASE_URL set)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from plane_live import LiveConfig

from .targets import LiveTarget


@pytest.fixture(scope="session")
def live_target() -> Iterator[LiveTarget | None]:
    config = LiveConfig.from_env()
    if config is None:
        yield None
        return
    target = LiveTarget(config).start()
    try:
        yield target
    finally:
        target.stop()
