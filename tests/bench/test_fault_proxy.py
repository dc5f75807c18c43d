"""bench/fault_proxy.py: a real Plane's answers passed through, and its outage made up."""

from __future__ import annotations

import http.client
import json

import pytest
from plane_connector.testing import PlaneEmulator

from bench.fault_proxy import FaultProxy


def get(base_url: str, path: str, key: str) -> tuple[int, dict[str, str], bytes]:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path, headers={"X-API-Key": key})
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def test_proxy_forwards_then_goes_down_then_back() -> None:
    with PlaneEmulator(seed=3) as emu:
        proxy = FaultProxy(emu.base_url).start()
        try:
            status, headers, body = get(proxy.base_url, "/api/v1/users/me/", emu.api_key)
            assert status == 200 and json.loads(body)["id"] == emu.user["id"]
            assert headers["X-RateLimit-Remaining"] == "59"  # Plane's own headers kept
            assert get(proxy.base_url, "/api/v1/nope/", emu.api_key)[0] == 404
            proxy.faults.set_down("502")
            status, headers, body = get(proxy.base_url, "/api/v1/users/me/", emu.api_key)
            assert status == 502 and headers["Server"] == "nginx" and b"Bad Gateway" in body
            proxy.faults.set_down("reset")
            with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
                get(proxy.base_url, "/api/v1/users/me/", emu.api_key)
            proxy.faults.set_down(None)
            assert get(proxy.base_url, "/api/v1/users/me/", emu.api_key)[0] == 200
            assert [s.status for s in proxy.seen] == [200, 404, 502, 0, 200]
            # The requests made while down never reached Plane.
            assert [r.status for r in emu.requests] == [200, 404, 200]
        finally:
            proxy.stop()


def test_proxy_sends_one_host_header_whatever_the_client_spelled() -> None:
    # The wheel's client writes header names in lower case; a second "Host" beside its "host"
    # made uvicorn (a real Plane CE) answer 400 to everything that went through the proxy.
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[list[str]] = []

    class Upstream(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            seen.append(self.headers.get_all("Host") or [])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    up_port = upstream.server_address[1]
    proxy = FaultProxy(f"http://127.0.0.1:{up_port}").start()
    try:
        port = int(proxy.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"GET /api/v1/users/me/ HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                      "connection: close\r\n\r\n".encode())
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        assert seen == [[f"127.0.0.1:{up_port}"]]
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()
