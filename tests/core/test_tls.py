"""TLS for a self-hosted Plane: trusted roots, ca_bundle, certificate errors, http:// warnings
and proxies, against the emulator in TLS mode (a certificate from a throwaway CA).

The client reads SSL_CERT_FILE / SSL_CERT_DIR and the proxy variables once per process, and this
machine sets some of them, so every client here runs in a subprocess with an environment the
test spells out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from connect_proxy import ConnectProxy
from plane_connector import ConfigError, PlaneClient

# Variables that change what the client trusts or where it connects: removed, then set per test.
_ENV_CLEARED = [
    "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
    "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "REQUEST_METHOD",
]  # fmt: skip

_CLIENT = r"""
import asyncio, json, logging, sys
from plane_connector import AsyncPlaneClient, PlaneClient, PlaneError
logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                    format="LOG %(levelname)s %(name)s: %(message)s")
args = json.loads(sys.argv[1])
kw = dict(api_key=args["api_key"], max_retries=3, backoff_base=0.01, **args.get("kw", {}))
out = {}
for name, cls in (("sync", PlaneClient), ("async", AsyncPlaneClient)):
    if name not in args.get("clients", ["sync"]):
        continue
    client = cls(args["base_url"], **kw)
    try:
        if cls is PlaneClient:
            me = client.me()
        else:
            async def main():
                return await client.me()
            me = asyncio.run(main())
        out[name] = {"ok": me["id"] is not None}
    except PlaneError as exc:
        out[name] = {"error": type(exc).__name__, "message": str(exc)}
    out[name]["stats"] = client.stats
print(json.dumps(out))
"""


def run_client(emu: Any, *, env: dict[str, str] | None = None, **args: Any) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if k not in _ENV_CLEARED}
    clean.update(env or {})
    payload = {"base_url": emu.base_url, "api_key": emu.api_key, **args}
    proc = subprocess.run(
        [sys.executable, "-c", _CLIENT, json.dumps(payload)],
        capture_output=True, text=True, env=clean, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    result["stderr"] = proc.stderr
    return result


@pytest.fixture
def tls_emulator(plane_emulator_factory: Any) -> Any:
    return plane_emulator_factory(tls=True)


def test_trusted_through_ca_bundle(tls_emulator: Any) -> None:
    assert tls_emulator.base_url.startswith("https://127.0.0.1:")
    out = run_client(
        tls_emulator, kw={"ca_bundle": tls_emulator.ca_bundle}, clients=["sync", "async"]
    )
    assert out["sync"]["ok"] and out["async"]["ok"], out


def test_trusted_through_ssl_cert_file(tls_emulator: Any) -> None:
    out = run_client(tls_emulator, env={"SSL_CERT_FILE": tls_emulator.ca_bundle})
    assert out["sync"].get("ok"), out


def test_trusted_through_ssl_cert_dir(tls_emulator: Any, tmp_path: Path) -> None:
    shutil.copy(tls_emulator.ca_bundle, tmp_path / "internal-ca.pem")
    out = run_client(tls_emulator, env={"SSL_CERT_DIR": str(tmp_path)})
    assert out["sync"].get("ok"), out


@pytest.mark.parametrize("client", ["sync", "async"])
def test_untrusted_certificate_is_one_clear_error_without_retries(
    tls_emulator: Any, client: str
) -> None:
    # The system store (this machine's, as SSL_CERT_FILE names it) does not know the test CA.
    env = {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    out = run_client(tls_emulator, env=env, clients=[client])[client]
    assert out["error"] == "TransportError", out
    assert "certificate" in out["message"] and "unknown certificate authority" in out["message"]
    assert "ca_bundle" in out["message"]  # says what to do
    assert tls_emulator.api_key not in out["message"]
    # Exactly one connection attempt: a refused certificate is not retried.
    assert (out["stats"]["requests"], out["stats"]["retries"]) == (1, 0)
    server = tls_emulator._server
    assert (server.tls_handshakes, server.tls_failures) == (1, 1)


def test_ca_bundle_adds_to_the_system_store(tls_emulator: Any, plane_emulator_factory) -> None:
    # A second emulator with another CA: trusted through SSL_CERT_FILE while the first one is
    # trusted through ca_bundle, by the same client process.
    other = plane_emulator_factory(tls=True)
    env = {"SSL_CERT_FILE": other.ca_bundle}
    out = run_client(tls_emulator, env=env, kw={"ca_bundle": tls_emulator.ca_bundle})
    assert out["sync"].get("ok"), out
    out = run_client(other, env=env, kw={"ca_bundle": tls_emulator.ca_bundle})
    assert out["sync"].get("ok"), out


def _fifo(tmp_path: Path) -> str:
    path = tmp_path / "fifo.pem"
    os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p: str(p / "missing.pem"), "No such file"),
        (lambda p: str(p), "not a regular file"),
        (lambda p: "/dev/zero", "not a regular file"),
        (_fifo, "not a regular file"),  # would block forever if it were opened
        (lambda p: _write(p / "empty.pem", b""), "no PEM certificate"),
        (lambda p: _write(p / "pubkey.pem", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "no PEM certificate"),  # noqa: E501
        (lambda p: _write(p / "bad.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "cannot be parsed"),  # noqa: E501
        (lambda p: _write(p / "big.pem", b"x" * (17 << 20)), "too big"),
        (lambda p: "", "empty"),
    ],
)
def test_ca_bundle_must_be_a_regular_pem_file(tmp_path: Path, make: Any, why: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=why) as info:
        PlaneClient("https://plane.example.com", api_key="k" * 20, ca_bundle=path)
    assert "AAAA" not in str(info.value)  # the file's content is never echoed


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


_WARN = r"""
import logging, sys
from plane_connector import PlaneClient
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
for base in sys.argv[1:]:
    PlaneClient(base, api_key="k" * 20)
"""


def test_plain_http_to_another_host_warns_once_per_base_url() -> None:
    # Only clients are built: nothing is sent, so no address outside this machine is reached.
    bases = [
        "http://plane.internal.example", "http://plane.internal.example/", "http://10.1.2.3:8000",
        "http://plane.internal.example", "http://127.0.0.1:8000", "http://localhost:8000",
        "http://[::1]:8000", "https://plane.internal.example", "http://app.localhost",
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", _WARN, *bases], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2, proc.stderr
    assert "http://plane.internal.example" in warnings[0] and "https://" in warnings[0]
    assert "http://10.1.2.3:8000" in warnings[1]
    assert all(" plane_connector." in w for w in warnings)


def test_https_proxy_is_used_and_no_proxy_bypasses_it(tls_emulator: Any) -> None:
    target = f"127.0.0.1:{tls_emulator.port}"
    kw = {"ca_bundle": tls_emulator.ca_bundle}
    with ConnectProxy() as proxy:
        out = run_client(tls_emulator, env={"HTTPS_PROXY": proxy.url}, kw=kw,
                         clients=["sync", "async"])  # fmt: skip
        assert out["sync"].get("ok") and out["async"].get("ok"), out
        assert proxy.tunnels == [target, target]  # one pooled connection per client process
        out = run_client(tls_emulator, env={"https_proxy": proxy.url, "NO_PROXY": "127.0.0.1"},
                         kw=kw)  # fmt: skip
        assert out["sync"].get("ok"), out
        assert proxy.tunnels == [target, target]  # NO_PROXY: straight to the server
