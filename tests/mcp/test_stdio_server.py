"""The generated stdio config starts the real plane-mcp-server, which reaches the emulator."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from plane_connector import mcp
from plane_connector.testing import PlaneEmulator

TIMEOUT = 60.0


class StdioSession:
    """An MCP client over stdio: newline-delimited JSON-RPC 2.0 on the server's pipes."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()
        self._next_id = 0

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})})

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        rid = self._next_id
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        while True:
            try:
                line = self._lines.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(
                    f"no answer to {method}; server stderr:\n{self.stderr}"
                ) from None
            if line is None:
                raise AssertionError(f"server exited during {method}; stderr:\n{self.stderr}")
            msg = json.loads(line)
            if msg.get("id") == rid:  # notifications and logs in between are skipped
                return msg

    def _send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def launch(config: dict[str, Any], bindir: Path, client_env: dict[str, str]) -> StdioSession:
    """Start the server the way an MCP client does: command + args, its env over the client's."""
    entry = config["mcpServers"]["plane"]
    assert entry["type"] == "stdio"
    env = {**client_env, **entry["env"]}
    return StdioSession([entry["command"], *entry["args"]], env)


def list_call(project_id: str) -> dict[str, Any]:
    """``tools/call`` params of the tool that lists a project's work items."""
    return {"name": "workitem", "arguments": {"action": "list", "project_id": project_id}}


@pytest.fixture
def emulator() -> Any:
    with PlaneEmulator(seed=7) as emu:
        emu.seed_work_items(3)
        yield emu


@pytest.fixture
def client_env(mcp_server_bin: Path) -> dict[str, str]:
    # What a desktop MCP client passes down: PATH and HOME, none of our PLANE_* settings.
    return {
        "PATH": f"{mcp_server_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/tmp"),
    }


def test_stdio_config_drives_real_server_against_emulator(
    emulator: Any, client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, mcp_server_bin: Path
) -> None:
    monkeypatch.setenv("MCP_E2E_PLANE_KEY", emulator.api_key)
    config = mcp.build_config(
        "stdio",
        base_url=emulator.base_url,
        workspace_slug=emulator.workspace_slug,
        api_key_ref="env:MCP_E2E_PLANE_KEY",
    )
    session = launch(config, mcp_server_bin, client_env)
    try:
        init = session.call(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "plane-connector-tests", "version": "1"},
            },
        )
        assert "result" in init, init
        assert init["result"]["serverInfo"]["name"].startswith("Plane MCP Server")
        session.notify("notifications/initialized")

        tools = session.call("tools/list")["result"]["tools"]
        assert "workitem" in {t["name"] for t in tools}

        listed = session.call(
            "tools/call",
            list_call(emulator.project_id),
        )
    finally:
        session.close()
    result = listed["result"]
    assert not result.get("isError"), result
    text = json.dumps(result)
    for i in (1, 2, 3):
        assert f"Seed work item {i:03d}" in text

    ws, pid = emulator.workspace_slug, emulator.project_id
    path = f"/api/v1/workspaces/{ws}/projects/{pid}/work-items/"
    hits = [r for r in emulator.requests if r.method == "GET" and r.path == path]
    assert hits, [r.path for r in emulator.requests]
    key_id = hashlib.sha256(emulator.api_key.encode()).hexdigest()
    assert all(r.auth == "api_key" and r.key_id == key_id and r.status == 200 for r in hits)


def test_wrong_key_in_config_is_refused_by_plane(
    emulator: Any, client_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, mcp_server_bin: Path
) -> None:
    monkeypatch.setenv("MCP_E2E_WRONG_KEY", "plane_api_" + "0" * 32)
    config = mcp.build_config(
        "stdio",
        base_url=emulator.base_url,
        workspace_slug=emulator.workspace_slug,
        api_key_ref="env:MCP_E2E_WRONG_KEY",
    )
    session = launch(config, mcp_server_bin, client_env)
    try:
        session.call(
            "initialize",
            {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}},
        )
        session.notify("notifications/initialized")
        listed = session.call(
            "tools/call",
            list_call(emulator.project_id),
        )
    finally:
        session.close()
    assert listed["result"].get("isError") is True
    assert "403" in json.dumps(listed["result"])
    assert any(r.status == 403 for r in emulator.requests)
