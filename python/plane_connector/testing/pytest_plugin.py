"""pytest plugin (entry point ``pytest11``): fixtures that start a Plane emulator.

Kept import-light: the emulator module is imported only when a fixture is used, so the plugin
never slows down or breaks test suites that do not use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from plane_connector.testing.emulator import PlaneEmulator


@pytest.fixture
def plane_emulator_factory() -> Iterator[Callable[..., PlaneEmulator]]:
    """Return a factory ``(**kwargs) -> PlaneEmulator`` (started); all are stopped at teardown."""
    from plane_connector.testing.emulator import PlaneEmulator

    started: list[PlaneEmulator] = []

    def make(**kwargs: Any) -> PlaneEmulator:
        emu = PlaneEmulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in reversed(started):
        emu.stop()


@pytest.fixture
def plane_emulator(plane_emulator_factory: Callable[..., PlaneEmulator]) -> PlaneEmulator:
    """A started CE emulator with one workspace and project (no work items); stopped afterwards."""
    return plane_emulator_factory()
