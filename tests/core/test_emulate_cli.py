"""``plane-connector emulate`` as a process: graceful stop on SIGTERM and SIGINT (also when SIGINT
was inherited ignored, as in a background job), its TLS mode, and ``health --ca-bundle``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from plane_connector.testing._http import wait_port_closed

EXE = [sys.executable, "-m", "plane_connector"]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell does for `cmd &`


@contextlib.contextmanager
def emulate(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    proc = subprocess.Popen(
        [*EXE, "emulate", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ignore_sigint,  # noqa: PLW1509 - only a signal disposition, before exec
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield proc, json.loads(line)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stops_gracefully_finishing_the_request_in_flight(stop: signal.Signals) -> None:
    with emulate() as (proc, info):
        port = int(info["base_url"].rsplit(":", 1)[1])
        slug, project = info["workspace_slug"], info["project_id"]
        path = f"/api/v1/workspaces/{slug}/projects/{project}/work-items/"
        body = json.dumps({"name": "created while stopping"}).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {info['api_key']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head)
            assert sock.recv(64).startswith(b"HTTP/1.1 100")  # the request is being handled
            proc.send_signal(stop)
            assert wait_port_closed(port), "still accepting after the stop signal"
            assert proc.poll() is None
            sock.sendall(body)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 201 Created", answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["name"] == "created while stopping"
        assert proc.wait(timeout=30) == 0


def test_tls_mode_and_health_with_ca_bundle() -> None:
    with emulate("--tls") as (proc, info):
        assert info["base_url"].startswith("https://")
        env = {**os.environ, "PLANE_TEST_EMU_KEY": info["api_key"]}
        base = [*EXE, "health", "--base-url", info["base_url"], "--api-key-ref",
                "env:PLANE_TEST_EMU_KEY", "--json"]  # fmt: skip
        ok = subprocess.run([*base, "--ca-bundle", info["ca_bundle"]], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert json.loads(ok.stdout)["ok"] is True
        # Without the CA: one clear failure, exit 1 (unhealthy), the key never printed.
        env["SSL_CERT_FILE"] = "/etc/ssl/certs/ca-certificates.crt"
        env.pop("SSL_CERT_DIR", None)
        bad = subprocess.run(base, env=env, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "certificate" in json.loads(bad.stdout)["error"]
        assert info["api_key"] not in bad.stdout + bad.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
