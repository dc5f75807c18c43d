"""The generated stdio config starts the real plane-mcp-server, which reaches the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp_helpers import StdioSession, assert_listed_with_key, list_call
from plane_connector import mcp
from plane_connector.testing import PlaneEmulator


def launch(config: dict[str, Any], client_env: dict[str, str]) -> StdioSession:
    """Start the server the way an MCP client does: command + args, its env over the client's."""
    entry = config["mcpServers"]["plane"]
    assert entry["type"] == "stdio"
    return StdioSession([entry["command"], *entry["args"]], {**client_env, **entry["env"]})


def stdio_config(emu: PlaneEmulator, key_ref: str) -> dict[str, Any]:
    return mcp.build_config(
        "stdio", base_url=emu.base_url, workspace_slug=emu.workspace_slug, api_key_ref=key_ref
    )


def test_stdio_config_drives_real_server_against_emulator(
    emulator: PlaneEmulator, client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_E2E_PLANE_KEY", emulator.api_key)
    session = launch(stdio_config(emulator, "env:MCP_E2E_PLANE_KEY"), client_env)
    try:
        info = session.handshake()
        assert info["serverInfo"]["name"].startswith("Plane MCP Server")
        tools = session.call("tools/list")["result"]["tools"]
        assert "workitem" in {t["name"] for t in tools}
        listed = session.call("tools/call", list_call(emulator.project_id))
    finally:
        session.close()
    assert_listed_with_key(emulator, listed["result"], emulator.api_key)


def test_wrong_key_in_config_is_refused_by_plane(
    emulator: PlaneEmulator, client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_E2E_WRONG_KEY", "plane_api_" + "0" * 32)
    session = launch(stdio_config(emulator, "env:MCP_E2E_WRONG_KEY"), client_env)
    try:
        session.handshake()
        listed = session.call("tools/call", list_call(emulator.project_id))
    finally:
        session.close()
    assert listed["result"].get("isError") is True
    assert "403" in json.dumps(listed["result"])
    assert any(r.status == 403 for r in emulator.requests)


def test_plane_mcp_server_needs_the_work_items_routes(
    client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plane's own MCP server calls /work-items/ whatever the server: on a Plane up to 1.0.x
    (only /issues/) its work-item tools fail. Recorded here so the compatibility table says so
    from a run, and a release that adapts shows up as a failure of this test."""
    with PlaneEmulator(seed=7, version="1.0.0") as emu:
        emu.seed_work_items(3)
        monkeypatch.setenv("MCP_E2E_PLANE_KEY", emu.api_key)
        session = launch(stdio_config(emu, "env:MCP_E2E_PLANE_KEY"), client_env)
        try:
            session.handshake()
            listed = session.call("tools/call", list_call(emu.project_id))
        finally:
            session.close()
        paths = [(r.path, r.status) for r in emu.requests if r.method == "GET"]
    assert listed["result"].get("isError") or "error" in json.dumps(listed).lower(), listed
    assert (f"/api/v1/workspaces/{emu.workspace_slug}/projects/{emu.project_id}/work-items/",
            404) in paths
    assert "Seed work item 001" not in json.dumps(listed)
