"""The emulator's HTTP layer: response assembly in Plane's header order, and the server."""

from __future__ import annotations

import gzip
import logging
import os
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from plane_connector._graceful import CountedHandler, ThreadingServer

log = logging.getLogger("plane_connector.testing.emulator")


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    action: str | None = None  # None | "reset" | "truncate"


# -- response assembly --------------------------------------------------------------------------
_TAIL = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]


def finish(
    status: int,
    body: bytes,
    kind: str,
    allow: str | None,
    rate: tuple[int, int] | None,
    *,
    retry_after: int | None = None,
) -> Response:
    """Headers in the order Django/DRF/uvicorn emit them (see the recorded *.txt samples)."""
    headers: list[tuple[str, str]] = []
    if body:
        headers.append(("Content-Type", "application/json"))
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    if allow:
        headers.append(("Allow", allow))
    if rate is not None:
        headers.append(("X-RateLimit-Remaining", str(rate[0])))
        headers.append(("X-RateLimit-Reset", str(rate[1])))
    big = len(body) >= 200  # Django's GZipMiddleware adds Vary only from 200 bytes on
    if big and kind != "auth":
        headers.append(("Vary", "Accept-Encoding, Cookie, origin"))
    headers.append(("X-Frame-Options", "DENY"))
    headers.append(("Content-Length", str(len(body))))
    if not big and kind != "auth":
        headers.append(("Vary", "Cookie, origin"))
    headers.extend(_TAIL)
    if kind == "auth":
        headers.append(("Vary", "origin"))
    return Response(status, headers, body)


def proxy_error(status: int) -> Response:
    """What the reverse proxy in front of Plane answers when Plane's API behind it is down: its
    own HTML error page (nginx's, byte for byte), not Plane's JSON."""
    phrase = HTTPStatus(status).phrase
    body = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode("ascii")
    headers = [
        ("Server", "nginx"),
        ("Content-Type", "text/html"),
        ("Content-Length", str(len(body))),
        ("Connection", "keep-alive"),
    ]
    return Response(status, headers, body)


def oauth_response(status: int, body: bytes) -> Response:
    headers = [("Content-Type", "application/json")] if body else []
    headers += [
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
        ("Content-Length", str(len(body))),
    ]
    return Response(status, headers, body)


def gzip_response(resp: Response) -> Response:
    body = gzip.compress(resp.body, compresslevel=6)
    headers = [(k, str(len(body)) if k == "Content-Length" else v) for k, v in resp.headers]
    headers.append(("Content-Encoding", "gzip"))
    return Response(resp.status, headers, body, resp.action)


def mangle(resp: Response, kind: str) -> Response:
    if kind == "truncate":
        return Response(resp.status, resp.headers, resp.body, action="truncate")
    if kind == "malformed":
        body = resp.body[: max(1, len(resp.body) // 2)] + b"<!-- upstream error -->"
        headers = [(k, str(len(body)) if k == "Content-Length" else v) for k, v in resp.headers]
        return Response(resp.status, headers, body)
    return resp


# -- HTTP server --------------------------------------------------------------------------------
class TestCA:
    """A throwaway certificate authority and a server certificate for a loopback TLS server.

    ``ca_bundle`` is the path of the CA's PEM file, what a client passes as ``ca_bundle=``
    (or sets in ``SSL_CERT_FILE``) to trust the server. Made with ``trustme`` (a test
    dependency, not a runtime one of the wheel); the files live in a temporary directory that
    ``cleanup()`` removes.
    """

    def __init__(self, *hosts: str) -> None:
        try:
            import trustme
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "the emulator's TLS mode needs the 'trustme' package (pip install trustme)"
            ) from exc
        ca = trustme.CA(organization_name="plane-connector test CA")
        names = list(dict.fromkeys([*hosts, "127.0.0.1", "localhost", "::1"]))
        self._dir = tempfile.TemporaryDirectory(prefix="plane-emulator-ca-")
        self.ca_bundle = os.path.join(self._dir.name, "ca.pem")
        ca.cert_pem.write_to_path(self.ca_bundle)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(self.context)

    def cleanup(self) -> None:
        self._dir.cleanup()


class EmulatorServer(ThreadingServer):
    allow_reuse_address = True
    request_queue_size = 128
    emulator: Any
    #: Set for the TLS mode: each connection's handshake runs on its own handler thread.
    ssl_context: ssl.SSLContext | None = None
    #: TLS handshakes begun and failed (a client that refuses our certificate fails one).
    tls_handshakes = 0
    tls_failures = 0
    _tls_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        with self._tls_lock:
            self.tls_handshakes += 1
        request.settimeout(10)  # a client that stalls mid-handshake must not hold the thread
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            with self._tls_lock:
                self.tls_failures += 1
            log.debug("emulator: TLS handshake with %s failed: %s", client_address, exc)
            return
        conn.settimeout(None)
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up mid-answer (the tests' timeouts and resets do it on
        # purpose) is ordinary traffic for a server, not a traceback on stderr.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            log.debug("emulator: client %s went away: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


class EmulatorHandler(CountedHandler):
    protocol_version = "HTTP/1.1"
    # Says what answered (Plane's own Server header names its web server): the contract
    # recorder refuses to record the emulator as if it were Plane.
    server_version = "PlaneEmulator"
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        with self.server.emulator._lock:
            self.server.emulator._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.emulator._lock:
                self.server.emulator._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("emulator %s - " + format, self.address_string(), *args)

    def _serve(self) -> None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(length)) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp = self.server.emulator.handle(self.command, self.path, headers, body)
        if resp.action == "reset":
            # SO_LINGER 0 makes close() send a TCP RST: the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        reason = (
            HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else ""
        )
        out = [f"HTTP/1.1 {resp.status} {reason}\r\n".encode("latin-1")]
        out.append(f"date: {self.date_time_string()}\r\n".encode("latin-1"))
        if not any(name.lower() == "server" for name, _ in resp.headers):
            out.append(b"server: uvicorn\r\n")
        for name, value in resp.headers:
            out.append(f"{name}: {value}\r\n".encode("latin-1"))
        out.append(b"\r\n")
        body_out = resp.body
        if resp.action == "truncate":
            body_out = resp.body[: len(resp.body) // 2]
            self.close_connection = True
        if self.command != "HEAD":
            out.append(body_out)
        self.wfile.write(b"".join(out))
        self.wfile.flush()
        if self.headers.get("Connection", "").lower() == "close":
            self.close_connection = True

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _serve


def wait_port_closed(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> bool:
    """Whether connecting to ``host:port`` is refused within ``timeout`` seconds (polled).

    For tests of a graceful stop: the listening socket must close before the process exits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            pass  # queued while the listener closed: the next attempt is refused
        time.sleep(0.05)
    return False
