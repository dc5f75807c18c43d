"""MCP client helpers for the tests: stdio and Streamable HTTP JSON-RPC, and the checks."""

from __future__ import annotations

import hashlib
import json
import queue
import subprocess
import threading
import urllib.request
from typing import Any

from plane_connector.testing import PlaneEmulator

TIMEOUT = 60.0


def list_call(project_id: str) -> dict[str, Any]:
    """``tools/call`` params of the tool that lists a project's work items."""
    return {"name": "workitem", "arguments": {"action": "list", "project_id": project_id}}


def initialize_params() -> dict[str, Any]:
    return {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "plane-connector-tests", "version": "1"},
    }


def assert_listed_with_key(emu: PlaneEmulator, result: dict[str, Any], key: str) -> None:
    """The work-item list came back, and Plane saw the request with ``key``."""
    assert not result.get("isError"), result
    text = json.dumps(result)
    for i in (1, 2, 3):
        assert f"Seed work item {i:03d}" in text
    path = f"/api/v1/workspaces/{emu.workspace_slug}/projects/{emu.project_id}/work-items/"
    hits = [r for r in emu.requests if r.method == "GET" and r.path == path]
    assert hits, [r.path for r in emu.requests]
    key_id = hashlib.sha256(key.encode()).hexdigest()
    assert all(r.auth == "api_key" and r.key_id == key_id and r.status == 200 for r in hits)


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

    def handshake(self) -> dict[str, Any]:
        """``initialize`` then ``notifications/initialized``; returns the initialize result."""
        init = self.call("initialize", initialize_params())
        assert "result" in init, (init, self.stderr)
        self.notify("notifications/initialized")
        return init["result"]

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


class HttpSession:
    """An MCP client over Streamable HTTP (stateless server): one POST per JSON-RPC message."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        assert url.startswith("http://127.0.0.1:"), url  # the tests talk to loopback only
        self.url = url
        self.headers = headers
        # Loopback only: never route through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._next_id = 0

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON-RPC answer; an HTTP error status raises ``urllib.error.HTTPError``."""
        self._next_id += 1
        body = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params or {}}
        request = urllib.request.Request(  # noqa: S310 - a loopback http URL, checked above
            self.url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                **self.headers,
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
        )
        with self._opener.open(request, timeout=TIMEOUT) as resp:
            ctype = resp.headers.get("Content-Type", "")
            text = resp.read().decode()
        if "text/event-stream" in ctype:
            messages = [
                json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")
            ]
        else:
            messages = [json.loads(text)]
        for msg in messages:
            if msg.get("id") == self._next_id:
                return dict(msg)
        raise AssertionError(f"no answer to {method} in {text[:500]!r}")
