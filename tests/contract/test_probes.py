"""Each contract probe, sent to the emulator and compared with real Plane.

Default (CI): the emulator's transcript must equal the recording of what a real Plane CE
answered (tests/contract/recordings/<probe>.json). Live mode (PLANE_LIVE_BASE_URL …): the probe
is also sent to the live server, whose transcript the emulator's must equal; with
PLANE_LIVE_RECORD=1 the live transcript replaces the recording, otherwise a recording that no
longer matches the live server fails as stale.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from pathlib import Path

import pytest

from .probes import PROBES
from .runner import Probe, run_probe
from .targets import EmulatorTarget, LiveTarget

RECORDINGS = Path(__file__).parent / "recordings"
SOURCE = "Plane CE, makeplane/plane @ 4ca6d6c7 (apps/api + Celery worker), local lab server"


def dump(value: object) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def assert_same(expected: object, got: object, expected_name: str, got_name: str) -> None:
    if expected == got:
        return
    diff = difflib.unified_diff(dump(expected).splitlines(), dump(got).splitlines(),
                                expected_name, got_name, lineterm="", n=4)
    pytest.fail("\n".join(diff), pytrace=False)


def recording_path(probe: Probe) -> Path:
    return RECORDINGS / f"{probe.name}.json"


def load_recording(probe: Probe) -> object | None:
    path = recording_path(probe)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))["transcript"]


def write_recording(probe: Probe, transcript: object) -> None:
    RECORDINGS.mkdir(exist_ok=True)
    record = {"probe": probe.name, "about": probe.about, "source": SOURCE,
              "recorded_on": dt.date.today().isoformat(), "transcript": transcript}
    recording_path(probe).write_text(dump(record), encoding="utf-8")


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.name)
def test_probe(probe: Probe, live_target: LiveTarget | None) -> None:
    with EmulatorTarget() as emulator:
        ours = run_probe(probe, emulator)
    recorded = load_recording(probe)
    if live_target is None:
        if recorded is None:
            pytest.fail(f"no recording for {probe.name}: run the live mode with "
                        "PLANE_LIVE_RECORD=1 (docs/live-plane.md)")
        assert_same(recorded, ours, "real Plane (recording)", "emulator")
        return
    if probe.webhooks and not live_target.has_webhooks:
        pytest.skip("webhook probe: PLANE_LIVE_SET_WEBHOOK and PLANE_LIVE_WEBHOOK_SECRET unset")
    theirs = run_probe(probe, live_target)
    if live_target.config.record:
        write_recording(probe, theirs)
    elif recorded is not None and recorded != theirs:
        assert_same(recorded, theirs, "recording", "live Plane now (re-record?)")
    assert_same(theirs, ours, "live Plane", "emulator")
