"""Helpers for the emulator tests: a plain http.client caller, a webhook receiver, sample parsing.

These tests use only the standard library on purpose: they check the emulator against Plane's
recordings, independently of the connector's own client.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from plane_connector.testing import PlaneEmulator

UNSET: Any = object()


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def names(self) -> list[str]:
        """Header names in order, without the ones a server stamps per response."""
        return [k for k, _ in self.headers if k.lower() not in ("date", "server")]

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Minimal HTTP caller: one request per connection, raw status/headers/body back."""

    def __init__(self, emu: PlaneEmulator) -> None:
        self.emu = emu

    @property
    def ws(self) -> str:
        return f"/api/v1/workspaces/{self.emu.workspace_slug}"

    @property
    def proj(self) -> str:
        return f"{self.ws}/projects/{self.emu.project_id}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = UNSET,
        *,
        key: str | None = UNSET,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = {} if key is None else {"X-API-Key": self.emu.api_key if key is UNSET else key}
        sent.update(headers or {})
        payload = raw
        if body is not UNSET:
            payload = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(self.emu.host, self.emu.port, timeout=10)
        try:
            conn.request(method, path, body=payload, headers=sent)
            resp = conn.getresponse()
            return Reply(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = UNSET, **kw: Any) -> Reply:
        return self.call("POST", path, body, **kw)

    def patch(self, path: str, body: Any = UNSET, **kw: Any) -> Reply:
        return self.call("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.call("DELETE", path, **kw)


@dataclass
class Received:
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class Receiver:
    """A webhook endpoint on loopback that records raw requests.

    ``status``: the answer; ``reset_first``: that many connections are reset without an answer
    (a connection-level failure, which Plane retries).
    """

    status: int = 200
    reset_first: int = 0
    received: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.cond:
                    if receiver.reset_first > 0:
                        receiver.reset_first -= 1
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        self.close_connection = True
                        return
                    receiver.received.append(Received(self.path, list(self.headers.items()), body))
                    receiver.cond.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/plane-webhook"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def wait(self, n: int, timeout: float = 10.0) -> list[Received]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.received) >= n, timeout):
                raise TimeoutError(f"expected {n} webhooks, got {len(self.received)}")
            return list(self.received)


@pytest.fixture
def emu() -> Iterator[PlaneEmulator]:
    with PlaneEmulator(seed=7) as e:
        yield e


@pytest.fixture
def api(emu: PlaneEmulator) -> Api:
    return Api(emu)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def parse_http_sample(path: Path) -> Reply:
    """Parse a recorded ``curl -i`` style sample (status line, headers, blank line, body)."""
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    lines = head.decode().splitlines()
    status = int(lines[0].split()[1])
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    return Reply(status, headers, body.rstrip(b"\n"))  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shape(value: Any) -> Any:
    """Key order and value types of a JSON value (lists reduced to their first element)."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return ["list", shape(value[0]) if value else None]
    return type(value).__name__


def same_shape(recorded: Any, ours: Any, where: str = "$") -> list[str]:
    """Differences in key order and types; a recorded null accepts any type (value-dependent)."""
    problems: list[str] = []
    if isinstance(recorded, dict):
        if not isinstance(ours, dict):
            return [f"{where}: expected object, got {type(ours).__name__}"]
        if list(recorded) != list(ours):
            problems.append(f"{where}: keys {list(ours)} != recorded {list(recorded)}")
        for k in recorded:
            if k in ours:
                problems += same_shape(recorded[k], ours[k], f"{where}.{k}")
    elif isinstance(recorded, list):
        if not isinstance(ours, list):
            return [f"{where}: expected array, got {type(ours).__name__}"]
        if recorded and ours:
            problems += same_shape(recorded[0], ours[0], f"{where}[0]")
    elif recorded is not None and ours is not None and type(recorded) is not type(ours):
        problems.append(f"{where}: {type(ours).__name__} != recorded {type(recorded).__name__}")
    return problems


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", int(parts.port or 80)
