"""The Plane emulator as the benchmarks use it: seeded, time-scaled, counted per API key."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from bench.common import Skip

PLANE_WINDOW = 60.0  # Plane's rate window, in Plane seconds


def start_emulator(*, rate_limit: int = 60, window: float = PLANE_WINDOW) -> Any:
    """A started PlaneEmulator whose rate window lasts ``window`` real seconds."""
    try:
        from plane_connector.testing import PlaneEmulator
    except ImportError as exc:
        raise Skip(f"plane_connector.testing.PlaneEmulator unavailable: {exc}") from exc
    return PlaneEmulator(rate_limit=rate_limit, time_scale=window / PLANE_WINDOW).start()


def add_project(emu: Any, items: int, name: str) -> str:
    """A new project in the emulator holding ``items`` seeded work items; returns its id."""
    identifier = "B" + hashlib.sha256(name.encode()).hexdigest()[:5].upper()
    with emu._lock:  # the emulator's own set-up helpers hold it the same way
        project = emu.store.create_project(name, identifier, "bench")
    emu.seed_work_items(items, project.id)
    return str(project.id)


def statuses_for_key(emu: Any, api_key: str) -> Counter[int]:
    """HTTP statuses the emulator answered to requests made with ``api_key``."""
    key_id = hashlib.sha256(api_key.encode()).hexdigest()
    return Counter(r.status for r in emu.requests if r.key_id == key_id)


def require_plane_client() -> None:
    """Skip unless the Rust client has landed in the installed wheel."""
    if not has_plane_client():
        raise Skip("plane_connector.PlaneClient not available")


def has_plane_client() -> bool:
    """Whether the Rust client has landed in the installed wheel."""
    try:
        from plane_connector import PlaneClient  # noqa: F401
    except ImportError:
        return False
    return True


def adopt_api_key(emu: Any, key: str) -> None:
    """Make ``key`` (made by the benchmark, e.g. already in a server's environment) a valid API
    key of ``emu``, as ``add_api_key`` does for the keys it generates."""
    with emu._lock:
        emu._api_keys[key] = {"is_service": False, "is_active": True, "expires_at": None}
