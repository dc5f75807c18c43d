"""Each contract probe, sent to the emulator and compared with real Plane.

Default (CI): for each Plane version recorded, the emulator playing that version must answer
what the real Plane CE answered (tests/contract/recordings/<version>/<probe>.json). Live mode
(PLANE_LIVE_BASE_URL …): the probe is also sent to the live server, whose transcript the
emulator's (playing the version the server reports) must equal; with PLANE_LIVE_RECORD=1 the live
transcript replaces the recording of that version, with the version, edition and (from
PLANE_LIVE_SOURCE_COMMIT) the source commit it came from; otherwise a recording that no longer
matches the live server fails as stale. Recording from the emulator itself is refused.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
from pathlib import Path

import pytest
from plane_connector.testing._api import NEWEST_VERSION, PLANE_VERSIONS, version_tuple
from plane_live import LiveConfig

from .probes import PROBES
from .runner import Probe, run_probe
from .targets import EmulatorTarget, LiveTarget

RECORDINGS = Path(__file__).parent / "recordings"
#: The versions recorded (one folder each), oldest first.
VERSIONS = sorted((d.name for d in RECORDINGS.iterdir() if d.is_dir()), key=version_tuple)


def dump(value: object) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def assert_same(expected: object, got: object, expected_name: str, got_name: str) -> None:
    if expected == got:
        return
    diff = difflib.unified_diff(dump(expected).splitlines(), dump(got).splitlines(),
                                expected_name, got_name, lineterm="", n=4)
    pytest.fail("\n".join(diff), pytrace=False)


def recording_path(probe: Probe, version: str) -> Path:
    return RECORDINGS / version / f"{probe.name}.json"


def load_recording(probe: Probe, version: str) -> object | None:
    path = recording_path(probe, version)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))["transcript"]


def write_recording(probe: Probe, transcript: object, target: LiveTarget) -> None:
    if not target.version:
        raise RuntimeError("PLANE_LIVE_RECORD=1: the server did not report its version "
                           "(/api/instances/), so the recording could not say where it came from")
    commit = (os.environ.get("PLANE_LIVE_SOURCE_COMMIT") or "").strip() or None
    edition = target.edition or "unknown edition"
    source = f"Plane {target.version} ({edition})" + (f", makeplane/plane @ {commit}"
                                                      if commit else "")
    record = {"probe": probe.name, "about": probe.about, "source": source,
              "plane_version": target.version, "plane_edition": target.edition,
              "source_commit": commit, "recorded_on": dt.date.today().isoformat(),
              "transcript": transcript}  # fmt: skip
    path = recording_path(probe, target.version)
    path.parent.mkdir(exist_ok=True)
    path.write_text(dump(record), encoding="utf-8")


def replayed() -> list[tuple[str, Probe]]:
    """Replay what is recorded. In live mode every probe of every version the emulator plays
    and of the one the server reports (the test skips those the server is not): a version with
    no recordings yet is how its first ones are made (PLANE_LIVE_RECORD=1)."""
    config = LiveConfig.from_env()
    if config is not None:
        live = LiveTarget(config)
        live.identify()  # one unauthenticated GET /api/instances/, no rate budget
        extra = {live.version} if live.version else set()
        versions = sorted(set(VERSIONS) | set(PLANE_VERSIONS) | extra, key=version_tuple)
        return [(v, p) for v in versions for p in PROBES]
    return [(v, p) for v in VERSIONS for p in PROBES
            if v == NEWEST_VERSION or recording_path(p, v).exists()]


def test_recordings_say_where_they_came_from() -> None:
    assert NEWEST_VERSION in VERSIONS
    for version in VERSIONS:
        for path in (RECORDINGS / version).glob("*.json"):
            record = json.loads(path.read_text(encoding="utf-8"))
            assert record["plane_version"] == version, path
            assert record["plane_edition"], path


@pytest.mark.parametrize(("version", "probe"), replayed(),
                         ids=lambda v: v if isinstance(v, str) else v.name)
def test_probe(version: str, probe: Probe, live_target: LiveTarget | None) -> None:
    if live_target is not None and (live_target.version or NEWEST_VERSION) != version:
        pytest.skip(f"the live server is Plane {live_target.version}")
    with EmulatorTarget(version) as emulator:
        ours = run_probe(probe, emulator)
    recorded = load_recording(probe, version)
    if live_target is None:
        if recorded is None:
            pytest.fail(f"no recording for {probe.name} on Plane {version}: run the live mode "
                        "with PLANE_LIVE_RECORD=1 (docs/live-plane.md)")
        assert_same(recorded, ours, f"real Plane {version} (recording)", "emulator")
        return
    if probe.webhooks and not live_target.has_webhooks:
        pytest.skip("webhook probe: PLANE_LIVE_SET_WEBHOOK and PLANE_LIVE_WEBHOOK_SECRET unset")
    theirs = run_probe(probe, live_target)
    if live_target.config.record:
        write_recording(probe, theirs, live_target)
    elif recorded is not None and recorded != theirs:
        assert_same(recorded, theirs, "recording", "live Plane now (re-record?)")
    assert_same(theirs, ours, "live Plane", "emulator")
