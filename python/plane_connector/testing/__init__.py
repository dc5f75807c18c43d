"""Test helpers shipped in the wheel: a Plane API emulator and a pytest plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["PlaneEmulator"]

if TYPE_CHECKING:
    from plane_connector.testing.emulator import PlaneEmulator


def __getattr__(name: str) -> Any:
    # Lazy so that loading the pytest plugin (which imports this package) stays cheap.
    if name == "PlaneEmulator":
        from plane_connector.testing.emulator import PlaneEmulator

        return PlaneEmulator
    raise AttributeError(name)
