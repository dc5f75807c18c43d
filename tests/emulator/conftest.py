"""Helpers for the emulator tests: a plain http.client caller, a webhook receiver, sample parsing.

These tests use only the standard library on purpose: they check the emulator against Plane's
recordings, independently of the connector's own client.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from plane_connector.testing import PlaneEmulator
from plane_live import Answer, PacedHttp
from webhook_capture import Received, Receiver  # noqa: F401 - re-exported to the tests

UNSET: Any = object()


class Reply(Answer):
    @property
    def names(self) -> list[str]:
        """Header names in order, without the ones a server stamps per response."""
        return [k for k, _ in self.headers if k.lower() not in ("date", "server")]


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
        http = PacedHttp(self.emu.base_url, self.emu.api_key)  # unpaced: budget None
        answer = http.call(method, path, None if body is UNSET else body, raw=raw,
                           key="default" if key is UNSET else key, headers=headers)
        return Reply(answer.status, answer.headers, answer.body)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = UNSET, **kw: Any) -> Reply:
        return self.call("POST", path, body, **kw)

    def patch(self, path: str, body: Any = UNSET, **kw: Any) -> Reply:
        return self.call("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.call("DELETE", path, **kw)


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
