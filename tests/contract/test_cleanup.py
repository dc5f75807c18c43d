"""Each probe leaves the workspace as it found it (on a live server it runs in a shared project).

Run against the emulator, whose answers equal the recorded real Plane's: what a probe creates
there and does not delete, it leaves behind on every live run too.
"""

from __future__ import annotations

from typing import Any

import pytest

from .probes import PROBES
from .runner import Probe, run_probe
from .targets import EmulatorTarget


def _ids(target: EmulatorTarget, path: str) -> set[str]:
    answer = target.http.call("GET", path)
    assert answer.status == 200, (path, answer.status)
    body: Any = answer.json()
    rows = body["results"] if isinstance(body, dict) else body
    # The emulator's seed stays below one page; a full page would hide leftovers past it.
    assert isinstance(body, list) or not body.get("next_page_results"), path
    return {row["id"] for row in rows}


def contents(target: EmulatorTarget) -> dict[str, set[str]]:
    ws = f"/api/v1/workspaces/{target.slug}"
    project = f"{ws}/projects/{target.project_id}"
    return {
        "projects": _ids(target, f"{ws}/projects/"),
        "work items": _ids(target, f"{project}/work-items/?per_page=100&fields=id"),
        "labels": _ids(target, f"{project}/labels/"),
        "states": _ids(target, f"{project}/states/"),
    }


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.name)
def test_probe_leaves_the_workspace_as_found(probe: Probe) -> None:
    with EmulatorTarget() as emulator:
        before = contents(emulator)
        run_probe(probe, emulator)
        after = contents(emulator)
    left = {kind: sorted(after[kind] - before[kind]) for kind in after
            if after[kind] - before[kind]}
    assert not left, f"{probe.name} left behind: {left}"
