"""The generated api-key config reaches the real plane-mcp-server's HTTP transport.

The server's header-auth app is served on a free loopback port under ``/http/api-key``, where
the server itself mounts it, so the URL path and headers of the config are what is tested.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_helpers import HttpSession, assert_listed_with_key, initialize_params, list_call
from plane_connector import mcp
from plane_connector.testing import PlaneEmulator

SERVER = Path(__file__).with_name("_http_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"MCP HTTP server exited ({proc.returncode}):\n{err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)  # polling for readiness; nothing asserts on how long it took
    raise AssertionError("MCP HTTP server did not start listening")


@pytest.fixture
def mcp_http_url(
    mcp_server_bin: Path, emulator: PlaneEmulator, client_env: dict[str, str]
) -> Iterator[str]:
    """Root URL of a plane-mcp-server (header transport) that talks to the emulator."""
    port = free_port()
    env = {**client_env, "PLANE_BASE_URL": emulator.base_url, "LOG_PAYLOADS": "false"}
    proc = subprocess.Popen(
        [str(mcp_server_bin / "python"), str(SERVER), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def api_key_session(emu: PlaneEmulator, url: str, key_ref: str) -> HttpSession:
    config = mcp.build_config(
        "api-key",
        base_url=emu.base_url,
        workspace_slug=emu.workspace_slug,
        api_key_ref=key_ref,
        mcp_url=url,
    )
    entry = config["mcpServers"]["plane"]
    assert entry["type"] == "http" and entry["url"] == f"{url}/http/api-key/mcp"
    return HttpSession(entry["url"], entry["headers"])


def test_api_key_config_reaches_plane_through_remote_server(
    emulator: PlaneEmulator, mcp_http_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_HTTP_PLANE_KEY", emulator.api_key)
    session = api_key_session(emulator, mcp_http_url, "env:MCP_HTTP_PLANE_KEY")
    init = session.call("initialize", initialize_params())
    assert init["result"]["serverInfo"]["name"].startswith("Plane MCP Server")
    listed = session.call("tools/call", list_call(emulator.project_id))
    assert_listed_with_key(emulator, listed["result"], emulator.api_key)
    # The server checked the Bearer key against Plane before using it.
    assert any(r.path == "/api/v1/users/me/" and r.status == 200 for r in emulator.requests)


def test_wrong_key_is_refused_by_remote_server(
    emulator: PlaneEmulator, mcp_http_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_HTTP_WRONG_KEY", "plane_api_" + "0" * 32)
    session = api_key_session(emulator, mcp_http_url, "env:MCP_HTTP_WRONG_KEY")
    with pytest.raises(urllib.error.HTTPError) as err:
        session.call("initialize", initialize_params())
    assert err.value.code == 401
    assert any(r.path == "/api/v1/users/me/" and r.status == 403 for r in emulator.requests)
