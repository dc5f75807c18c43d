"""The README's main job, `plane-connector demo`, run as a user runs it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from plane_connector.testing import PlaneEmulator


def _demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plane_connector", "demo", "--json", *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_demo_on_the_emulator_exports_everything_and_dedupes_webhooks() -> None:
    proc = _demo("--work-items", "400", "--per-page", "20", "--time-scale", "0.02")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["healthy"] is True
    assert report["unique_ids"] == report["items_exported"] == 400
    assert report["pages"] == 20
    assert report["client"]["rate_limited"] == 0
    # create + 2 field updates + a comment = 4 events; 2 Plane re-sends (new id, same bytes) and one
    # byte-for-byte replay are duplicates; the forged one is rejected.
    assert report["deliveries"] == {"accepted": 4, "duplicate": 3, "rejected": 1}
    assert report["store_rows"]["done"] == 4
    assert sum(report["store_rows"].values()) == 4


def test_demo_throttles_when_the_export_exceeds_the_budget() -> None:
    proc = _demo("--work-items", "1300", "--per-page", "20", "--time-scale", "0.02")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["unique_ids"] == 1300
    assert report["client"]["throttle_waits"] >= 1  # 66 pages + health > 60 per window
    assert report["client"]["rate_limited"] == 0


def test_demo_against_a_given_plane_uses_the_key_reference() -> None:
    with PlaneEmulator() as emu:
        emu.seed_work_items(120)
        env = dict(os.environ, DEMO_PLANE_KEY=emu.api_key)
        proc = _demo(
            "--base-url", emu.base_url, "--api-key-ref", "env:DEMO_PLANE_KEY",
            "--workspace", emu.workspace_slug, "--project", emu.project_id, "--per-page", "50",
            env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["items_exported"] == 120
        assert report["deliveries"] == {}
        assert emu.api_key not in proc.stdout + proc.stderr
        want = hashlib.sha256(emu.api_key.encode()).hexdigest()
        # Besides the key's own calls, only the server's version, asked without any key.
        keyless = {r.path for r in emu.requests if r.key_id is None}
        assert keyless == {"/api/instances/"}
        assert {r.key_id for r in emu.requests if r.key_id} == {want}
        assert all(r.status == 200 for r in emu.requests)


def test_demo_with_a_bad_key_reference_fails_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NOPE_KEY"}
    proc = _demo("--base-url", "http://127.0.0.1:9", "--api-key-ref", "env:NOPE_KEY",
                 "--workspace", "w", "--project", "p", env=env)  # fmt: skip
    assert proc.returncode != 0
    assert "NOPE_KEY" in proc.stderr
    assert "Traceback" not in proc.stderr
