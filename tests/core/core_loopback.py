"""A scriptable loopback HTTP server for the client tests.

Each test sets ``server.handler`` (``Seen -> Reply``); the server records every request it saw,
with its arrival time, so tests assert on what reached the wire rather than on wall-clock sleeps.
``plane_pages`` answers like Plane's offset paginator, with real ``per_page:page:0`` cursors.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = "plane_api_" + "5e" * 16


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    peer: tuple[str, int] = ("", 0)  # the client's address: one per TCP connection

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What the server answers."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    wait_for: threading.Event | None = None


Handler = Callable[[Seen], Reply]


class LoopbackServer:
    """ThreadingHTTPServer on 127.0.0.1 with HTTP/1.1 keep-alive, scripted per test."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.handler: Handler = lambda seen: Reply(json={})
        self.arrived = threading.Event()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, keep-alive requests stall
            # 40 ms each on the peer's delayed ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet: the tests assert on ``requests`` instead."""

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                seen = Seen(
                    method=self.command,
                    path=split.path,
                    query=dict(parse_qsl(split.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                    peer=self.client_address[:2],
                )
                outer.requests.append(seen)
                outer.arrived.set()
                reply = outer.handler(seen)
                if reply.wait_for is not None:
                    reply.wait_for.wait(10)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body
                if payload is None:
                    payload = b"" if reply.json is None else json.dumps(reply.json).encode()
                try:
                    self.send_response(reply.status)
                    if reply.json is not None or reply.body is None:
                        self.send_header("Content-Type", "application/json")
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        # A short poll interval: shutdown() waits for it, once per test.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def plane_pages(items: list[dict[str, Any]], *, default_per_page: int = 1000) -> Handler:
    """A handler that pages ``items`` the way Plane's offset paginator does.

    The page index comes from the cursor's middle part and the row offset from ``per_page``
    (not from the cursor), exactly as in Plane, so a client that drops ``per_page`` skips rows.
    """

    def handle(seen: Seen) -> Reply:
        try:
            per_page = int(seen.query.get("per_page", default_per_page))
        except ValueError:
            return Reply(400, {"detail": "Invalid per_page parameter."})
        cursor = seen.query.get("cursor", f"{per_page}:0:0")
        parts = cursor.split(":")
        if len(parts) != 3:
            return Reply(400, {"detail": "Invalid cursor parameter."})
        try:
            page = int(parts[1])
        except ValueError:
            return Reply(400, {"detail": "Invalid cursor parameter."})
        if page < 0:
            return Reply(400, {"detail": "Error in parsing"})
        rows = items[page * per_page : (page + 1) * per_page]
        total = len(items)
        return Reply(
            json={
                "grouped_by": None,
                "sub_grouped_by": None,
                "total_count": total,
                "next_cursor": f"{per_page}:{page + 1}:0",
                "prev_cursor": f"{per_page}:{page - 1}:1",
                "next_page_results": (page + 1) * per_page < total,
                "prev_page_results": page > 0,
                "count": len(rows),
                "total_pages": -(-total // per_page),
                "total_results": total,
                "extra_stats": None,
                "results": rows,
            }
        )

    return handle


def close_listener(listener: socket.socket) -> None:
    """Close a listening socket whose accept() may be blocked in another thread. close() alone
    leaves that accept() waiting, and the port listening, for as long as the process lives;
    shutdown() wakes it."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()
