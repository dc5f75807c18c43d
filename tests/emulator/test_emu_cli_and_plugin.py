"""``plane-connector emulate`` as a subprocess, and the pytest plugin's fixtures."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable

import plane_connector
from plane_connector.testing import PlaneEmulator

from .conftest import Api, Receiver


def start_cli(*args: str) -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "plane_connector", "emulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        raise AssertionError(f"no JSON line; stderr: {proc.stderr.read() if proc.stderr else ''}")
    return proc, json.loads(line)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """A run expected to end by itself (bad arguments)."""
    return subprocess.run(
        [sys.executable, "-m", "plane_connector", "emulate", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def stop_cli(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(10)
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


class _Remote:
    """Adapts the CLI's JSON line to what conftest.Api needs."""

    def __init__(self, info: dict) -> None:
        self.base_url = info["base_url"]
        host_port = info["base_url"].removeprefix("http://")
        self.host, port = host_port.split(":")
        self.port = int(port)
        self.api_key = info["api_key"]
        self.workspace_slug = info["workspace_slug"]
        self.project_id = info["project_id"]


def test_cli_prints_one_json_line_then_serves(receiver: Receiver) -> None:
    proc, info = start_cli(
        "--port",
        "0",
        "--work-items",
        "7",
        "--webhook-url",
        receiver.url,
        "--webhook-secret",
        "plane_wh_" + "ab" * 16,
    )
    try:
        assert set(info) == {"base_url", "api_key", "workspace_slug", "project_id", "plane_version"}
        assert info["api_key"].startswith("plane_api_") and len(info["api_key"]) == 42
        api = Api(_Remote(info))  # type: ignore[arg-type]
        page = api.get(f"{api.proj}/work-items/").json()
        assert page["total_count"] == 7
        states = api.get(f"{api.proj}/states/").json()["results"]
        assert {s["group"] for s in states} == {
            "backlog",
            "unstarted",
            "started",
            "completed",
            "cancelled",
        }
        assert api.get(f"{api.proj}/labels/").json()["total_count"] >= 1
        created = api.post(f"{api.proj}/work-items/", {"name": "via CLI"})
        assert created.status == 201
        (got,) = receiver.wait(1)
        assert plane_connector.verify_signature(
            "plane_wh_" + "ab" * 16, got.body, got.header("X-Plane-Signature")
        )
    finally:
        assert stop_cli(proc) == 0


def test_cli_webhook_secret_by_reference(receiver: Receiver) -> None:
    import os

    secret = "plane_wh_" + "cd" * 16
    proc = subprocess.Popen(
        [sys.executable, "-m", "plane_connector", "emulate", "--webhook-url", receiver.url,
         "--webhook-secret", "env:EMU_TEST_WEBHOOK_SECRET"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "EMU_TEST_WEBHOOK_SECRET": secret},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        api = Api(_Remote(info))  # type: ignore[arg-type]
        assert api.post(f"{api.proj}/work-items/", {"name": "signed"}).status == 201
        (got,) = receiver.wait(1)
        assert plane_connector.verify_signature(secret, got.body, got.header("X-Plane-Signature"))
    finally:
        assert stop_cli(proc) == 0
    missing = subprocess.run(
        [sys.executable, "-m", "plane_connector", "emulate", "--webhook-url", receiver.url,
         "--webhook-secret", "env:EMU_TEST_UNSET_VARIABLE"],
        capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if k != "EMU_TEST_UNSET_VARIABLE"},
    )  # fmt: skip
    assert missing.returncode == 2 and "EMU_TEST_UNSET_VARIABLE" in missing.stderr


def test_cli_sigint_and_bad_arguments() -> None:
    proc, info = start_cli("--edition", "cloud", "--time-scale", "0.5", "--rate-limit", "10")
    assert stop_cli(proc, signal.SIGINT) == 0
    bad = run_cli("--work-items", "-1")
    assert bad.returncode == 2 and "work-items" in bad.stderr and bad.stdout == ""
    bad_scale = run_cli("--time-scale", "0")
    assert bad_scale.returncode == 2 and "time_scale" in bad_scale.stderr


def test_plugin_fixtures(
    plane_emulator: PlaneEmulator, plane_emulator_factory: Callable[..., PlaneEmulator]
) -> None:
    assert Api(plane_emulator).get("/api/v1/users/me/").status == 200
    cloud = plane_emulator_factory(edition="cloud", rate_limit=5)
    assert cloud.edition == "cloud" and cloud.base_url != plane_emulator.base_url
    assert Api(cloud).get("/api/v1/users/me/").header("X-RateLimit-Remaining") == "4"


def test_cli_outage_schedule() -> None:
    proc, info = start_cli("--outage", "0:503:60")
    try:
        api = Api(_Remote(info))  # type: ignore[arg-type]
        reply = api.get("/api/v1/users/me/")
        assert reply.status == 503 and reply.header("Server") == "nginx"
    finally:
        assert stop_cli(proc) == 0
    bad = run_cli("--outage", "5:418:1")
    assert bad.returncode == 2 and "--outage" in bad.stderr and bad.stdout == ""
