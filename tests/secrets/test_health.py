"""`plane-connector health` and `plane_connector.health.check` against the Plane emulator over
real loopback HTTP; secret references resolved from real backends."""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from keychain import SECRET_SERVICE_BACKEND, SecretService
from plane_connector import health

EXE = str(Path(sys.executable).with_name("plane-connector"))


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PLANE_")}
    return subprocess.run(
        [EXE, "health", *args], env={**base, **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def client_for(emu: Any, key: str, **kw: Any) -> Any:
    from plane_connector import PlaneClient

    return PlaneClient(emu.base_url, api_key=key, max_retries=0, max_wait=0.0, **kw)


# --- check() ---------------------------------------------------------------------------------


def test_check_healthy(plane_emulator: Any) -> None:
    result = health.check(client_for(plane_emulator, plane_emulator.api_key))
    assert result.ok and result.status == 200
    assert result.user_email == plane_emulator.user["email"]
    assert result.user_display == plane_emulator.user["display_name"]
    assert result.remaining == plane_emulator.rate_limit - 1  # Plane counts the request itself
    assert result.endpoint == f"{plane_emulator.base_url}/api/v1/users/me/"
    assert result.latency_ms > 0
    assert result.error is None


def test_check_bad_key_is_unhealthy_without_the_key(plane_emulator: Any) -> None:
    key = "plane_api_" + pysecrets.token_hex(16)
    result = health.check(client_for(plane_emulator, key), redact=[key])
    assert not result.ok
    assert result.status == 403  # Plane answers 403, not 401, to an invalid key
    assert "Given API token is not valid" in (result.error or "")
    assert key not in json.dumps(result.as_dict())
    assert not result.config_error


def test_check_revoked_key(plane_emulator: Any) -> None:
    key = plane_emulator.add_api_key()
    plane_emulator.revoke_api_key(key)
    result = health.check(client_for(plane_emulator, key))
    assert (result.ok, result.status) == (False, 403)


def test_check_rate_limited(plane_emulator_factory: Any) -> None:
    emu = plane_emulator_factory(rate_limit=1)
    client = client_for(emu, emu.api_key)
    assert health.check(client).ok
    result = health.check(client)
    assert not result.ok
    assert result.status == 429
    assert "retry after" in (result.error or "")


def test_check_server_error(plane_emulator: Any) -> None:
    plane_emulator.faults.add(r"/users/me/", kind="status", status=503)
    result = health.check(client_for(plane_emulator, plane_emulator.api_key))
    assert (result.ok, result.status) == (False, 503)


def test_check_timeout(plane_emulator: Any) -> None:
    plane_emulator.faults.add(r"/users/me/", kind="delay", seconds=3.0)
    result = health.check(client_for(plane_emulator, plane_emulator.api_key, timeout=0.3))
    assert not result.ok
    assert result.status is None
    assert result.error


def test_check_connection_refused() -> None:
    from plane_connector import PlaneClient

    result = health.check(PlaneClient("http://127.0.0.1:1", api_key="x" * 10, max_retries=0))
    assert (result.ok, result.status) == (False, None)
    assert "connect" in (result.error or "")


class _FakeUserClient:
    """A client double for the shapes of users/me/ the real server never sends."""

    base_url = "https://user:pw@plane.example.com"

    class rate_limit:  # noqa: N801 - mirrors the attribute of the real client
        remaining = None

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def me(self) -> Any:
        return self.answer


def test_check_rejects_an_answer_without_a_user_and_hides_url_credentials() -> None:
    result = health.check(_FakeUserClient({}))
    assert not result.ok
    assert "without a user" in (result.error or "")
    assert result.endpoint == "https://plane.example.com/api/v1/users/me/"


def test_check_reports_an_unexpected_failure_without_the_secret() -> None:
    token = "pln_" + pysecrets.token_hex(20)

    class Broken(_FakeUserClient):
        def me(self) -> Any:
            raise RuntimeError(f"token provider blew up with {token}")

    result = health.check(Broken(None), redact=[token])
    assert not result.ok
    assert result.error == "RuntimeError: token provider blew up with ***"


def test_check_user_without_display_name() -> None:
    result = health.check(_FakeUserClient({"id": "u1", "first_name": "Ada", "last_name": "L"}))
    assert result.ok and result.user_display == "Ada L" and result.user_email is None


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_healthy_from_environment(plane_emulator: Any) -> None:
    out = run_cli(env={
        "PLANE_BASE_URL": plane_emulator.base_url,
        "PLANE_API_KEY_REF": "env:PLANE_TEST_HEALTH_KEY",
        "PLANE_TEST_HEALTH_KEY": plane_emulator.api_key,
    })  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK: Plane answered 200 in ")
    assert f"user: admin <{plane_emulator.user['email']}>" in out.stdout
    assert "rate budget: 59 requests left" in out.stdout
    assert plane_emulator.api_key not in out.stdout + out.stderr


def test_cli_flags_override_environment_and_json(plane_emulator: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "plane_api_key"
    key_file.write_text(plane_emulator.api_key + "\n")
    out = run_cli(
        "--base-url", plane_emulator.base_url, "--api-key-ref", f"file:{key_file}", "--json",
        env={"PLANE_BASE_URL": "http://127.0.0.1:1", "PLANE_API_KEY_REF": "env:NOPE"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] is True and data["status"] == 200 and data["remaining"] == 59
    assert plane_emulator.api_key not in out.stdout + out.stderr


def test_cli_bad_key_exits_1_without_the_key(plane_emulator: Any) -> None:
    key = "plane_api_" + pysecrets.token_hex(16)
    out = run_cli(
        "--base-url", plane_emulator.base_url, "--api-key-ref", "env:PLANE_TEST_HEALTH_KEY",
        "--timeout=5",
        env={"PLANE_TEST_HEALTH_KEY": key},
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stdout.startswith("UNHEALTHY: 403 from ")
    assert "Given API token is not valid" in out.stdout
    assert key not in out.stdout + out.stderr


def test_cli_keyring_reference_across_processes(
    plane_emulator: Any, os_keyring: SecretService
) -> None:
    # The OS keychain shared by two processes: this one writes, the CLI reads it through keyring's
    # SecretService backend (named explicitly: keyring's own pick must not matter here).
    import keyring

    keyring.set_password("plane", "api_key", plane_emulator.api_key)
    out = run_cli(
        "--base-url", plane_emulator.base_url, "--api-key-ref", "keyring:plane/api_key",
        env={
            "PYTHON_KEYRING_BACKEND": SECRET_SERVICE_BACKEND,
            "DBUS_SESSION_BUS_ADDRESS": os_keyring.address,
        },
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert plane_emulator.api_key not in out.stdout + out.stderr


def test_cli_rate_limited_exits_1(plane_emulator_factory: Any) -> None:
    emu = plane_emulator_factory(rate_limit=1)
    env = {"PLANE_TEST_HEALTH_KEY": emu.api_key}
    args = ("--base-url", emu.base_url, "--api-key-ref", "env:PLANE_TEST_HEALTH_KEY")
    assert run_cli(*args, env=env).returncode == 0
    out = run_cli(*args, env=env)
    assert out.returncode == 1
    assert out.stdout.startswith("UNHEALTHY: 429 ")


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        ((), {}, "no API key reference"),
        (("--api-key-ref", "env:PLANE_TEST_HEALTH_UNSET"), {}, "env:PLANE_TEST_HEALTH_UNSET"),
        (("--api-key-ref", "keyring:nope"), {}, "keyring:service/name"),
        (("--api-key-ref", "env:K", "--base-url", "not a url"), {"K": "k" * 12}, "base URL"),
        (("--api-key-ref", "env:K", "--base-url", "ftp://x"), {"K": "k" * 12}, "not supported"),
    ],
)
def test_cli_configuration_errors_exit_2(
    args: tuple[str, ...], env: dict[str, str], needle: str
) -> None:
    out = run_cli(*args, env=env)
    assert out.returncode == 2
    assert needle in out.stderr


def test_cli_bare_key_as_reference_is_refused_without_echo() -> None:
    key = "plane_api_" + pysecrets.token_hex(16)
    out = run_cli("--api-key-ref", key)
    assert out.returncode == 2
    assert "looks like a secret value" in out.stderr
    assert key not in out.stdout + out.stderr


def test_cli_configuration_error_as_json() -> None:
    out = run_cli("--json")
    assert out.returncode == 2
    data = json.loads(out.stdout)
    assert data["ok"] is False and data["config_error"] is True
    assert data["endpoint"] == "https://api.plane.so/api/v1/users/me/"
    assert "no API key reference" in data["error"]
