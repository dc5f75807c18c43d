"""Where a recording comes from: the live target says which Plane it is, recording mode refuses
the project's own emulator, and the probes follow the route family of the version played."""

from __future__ import annotations

import pytest
from plane_connector.testing import PlaneEmulator
from plane_live import LiveConfig

from .probes import PROBES
from .runner import run_probe
from .targets import EmulatorTarget, LiveTarget
from .test_probes import NEWEST_VERSION, load_recording


def live(emu: PlaneEmulator, *, record: bool) -> LiveTarget:
    config = LiveConfig(base_url=emu.base_url, api_key=emu.api_key,
                        workspace=emu.workspace_slug, project=emu.project_id, record=record)
    return LiveTarget(config)


def test_recording_mode_refuses_the_emulator() -> None:
    with PlaneEmulator() as emu:
        with pytest.raises(RuntimeError, match="PLANE_LIVE_RECORD=1 refused"):
            live(emu, record=True).identify()
        target = live(emu, record=False)  # comparing against it stays allowed
        target.identify()
    assert (target.version, target.edition, target.family) == (
        emu.version, "PLANE_COMMUNITY", "work-items")


def test_live_target_reads_the_version_and_family() -> None:
    with PlaneEmulator(version="1.0.0") as emu:
        target = live(emu, record=False)
        target.identify()
    assert (target.version, target.family) == ("1.0.0", "issues")


def test_probes_run_on_the_old_route_family() -> None:
    probe = next(p for p in PROBES if p.name == "item.update_and_delete")
    with EmulatorTarget("1.0.0") as target:
        transcript = run_probe(probe, target)
        paths = [r.path for r in target.emu.requests]
    assert not [p for p in paths if "/work-items/" in p]
    assert [p for p in paths if "/issues/" in p]
    # The emulator's 1.0.0 differs from its newest profile only in the routes (no live 1.0.0
    # recording yet shows more): the same answers as the newest recording.
    assert transcript == load_recording(probe, NEWEST_VERSION)
