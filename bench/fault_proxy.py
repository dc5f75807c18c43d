"""A reverse proxy in front of a real Plane with the emulator's Plane-down switch.

A real Plane CE cannot be taken down on request, but what Odoo sees of an outage is its reverse
proxy answering 502 or connections being reset. This proxy forwards every request to the real
Plane and, while its ``faults`` (the emulator's own ``FaultInjector``) say Plane is down, answers
exactly as the emulator does instead. It records the status of every answer, so the chaos
benchmark counts 429s and requests the same way against the emulator and a live Plane.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from plane_connector._graceful import ThreadingServer
from plane_connector.testing._http import proxy_error
from plane_connector.testing.faults import FaultInjector

#: Headers that belong to one connection, not to the message (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                        "te", "trailer", "upgrade", "content-length"})


@dataclass
class Seen:
    """One request that went through the proxy: when it was answered and with what (0: reset)."""

    method: str
    path: str
    status: int
    at: float


class FaultProxy:
    """``FaultProxy(upstream).start()``; ``base_url`` is what Odoo is pointed at."""

    def __init__(self, upstream: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(upstream)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._timeout = timeout
        self.faults = FaultInjector()
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._server: ThreadingServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _serve(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve

        self._server = ThreadingServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _record(self, req: BaseHTTPRequestHandler, status: int) -> None:
        with self._lock:
            self._seen.append(Seen(req.command, req.path, status, time.time()))

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        fault = self.faults.take(req.command, req.path.split("?", 1)[0])
        if fault is not None and fault.kind == "reset":
            req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            req.close_connection = True
            self._record(req, 0)
            return
        if fault is not None and fault.kind == "status":
            resp = proxy_error(fault.status)
            status, headers, data = resp.status, resp.headers, resp.body
        else:
            status, headers, data = self._forward(req, body)
        # Recorded before the answer goes out: whoever reads the answer finds it in ``seen``.
        self._record(req, status)
        req.send_response_only(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                req.send_header(name, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)

    def _forward(self, req: BaseHTTPRequestHandler, body: bytes
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        # Host is replaced whatever its case: the wheel's client sends a lower-case "host", and a
        # second "Host" beside it makes a real Plane (uvicorn) answer 400 "Invalid HTTP request
        # received." to every request (the emulator did not mind).
        headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP_BY_HOP
                   and k.lower() != "host"}
        headers["Host"] = self._host if self._port in (80, 443) else f"{self._host}:{self._port}"
        try:
            conn.request(req.command, req.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        except (OSError, http.client.HTTPException):
            return proxy_error(502).status, proxy_error(502).headers, proxy_error(502).body
        finally:
            conn.close()
