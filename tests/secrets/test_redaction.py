"""Redaction: every error path, driven with recognizable secret values, must keep them out of log
records, reprs, exception messages (and their chains) and CLI output.

Paths: bad URL, 401, 403, 429 retries exhausted, timeout, bad webhook signature, unresolvable
references, failed OAuth refresh; each through the real Rust client against the Plane emulator
over loopback HTTP, and the CLI paths as real subprocesses with DEBUG logging on.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets as pysecrets
import selectors
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plane_connector
import plane_connector.cli.webhook  # noqa: F401 - the CLI the subprocess tests run
import plane_connector.testing.emulator  # noqa: F401 - what the plane_emulator fixtures start
import pytest
from plane_connector import dedupe, oauth, secrets, webhooks

EXE = str(Path(sys.executable).with_name("plane-connector"))


@dataclass
class Secrets:
    """Recognizable throwaway values, made at run time (never literals in the tree)."""

    api_key: str = field(default_factory=lambda: "plane_api_" + pysecrets.token_hex(16))
    webhook_secret: str = field(default_factory=lambda: "plane_wh_" + pysecrets.token_hex(16))
    access_token: str = field(default_factory=lambda: "pln_" + pysecrets.token_hex(20))
    refresh_token: str = field(default_factory=lambda: "pln_refresh_" + pysecrets.token_hex(20))
    client_secret: str = field(default_factory=lambda: "cs_" + pysecrets.token_hex(20))
    db_password: str = field(default_factory=lambda: "pw" + pysecrets.token_hex(12))
    extra: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [
            self.api_key, self.webhook_secret, self.access_token, self.refresh_token,
            self.client_secret, self.db_password, *self.extra,
        ]  # fmt: skip


class Leaks:
    """Collects every text a user or operator could see, then checks none holds a secret."""

    def __init__(self, values: Secrets, caplog: pytest.LogCaptureFixture) -> None:
        self.values = values
        self.caplog = caplog
        self.texts: list[tuple[str, str]] = []

    def exception(self, exc: BaseException) -> BaseException:
        self.texts.append(("str(exc)", str(exc)))
        self.texts.append(("repr(exc)", repr(exc)))
        # The whole chain, as a traceback in a log file would show it.
        self.texts.append(("traceback", "".join(traceback.format_exception(exc))))
        for attr in ("body", "message", "reason", "args"):
            if hasattr(exc, attr):
                self.texts.append((f"exc.{attr}", repr(getattr(exc, attr))))
        return exc

    def add(self, label: str, text: object) -> None:
        self.texts.append((label, text if isinstance(text, str) else repr(text)))

    def check(self) -> None:
        # Runs at fixture teardown, where caplog.records/.text only hold the teardown phase.
        records = [
            *self.caplog.get_records("setup"),
            *self.caplog.get_records("call"),
            *self.caplog.records,
        ]
        assert records or self.texts, "nothing was captured: the test drove no error path"
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for r in records:
            self.texts.append((f"log record {r.name}", formatter.format(r)))
            if r.exc_info and r.exc_info[1] is not None:
                self.texts.append(
                    ("logged traceback", "".join(traceback.format_exception(r.exc_info[1])))
                )
        for label, text in self.texts:
            for value in self.values.all():
                assert value not in text, f"secret leaked in {label}: {text[:300]!r}"


@pytest.fixture()
def leaks(caplog: pytest.LogCaptureFixture) -> Iterator[Leaks]:
    caplog.set_level(logging.DEBUG)  # every logger, including the Rust core's bridge
    collector = Leaks(Secrets(), caplog)
    yield collector
    collector.check()


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PLANE_")}
    return subprocess.run(
        [EXE, "-v", *args], env={**base, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# --- the Rust client against the emulator ------------------------------------------------


def test_bad_url(leaks: Leaks) -> None:
    s = leaks.values
    for url in ("not a url", "ftp://plane.example.com", f"https://odoo:{s.db_password}@plane.io"):
        with pytest.raises(plane_connector.ConfigError) as info:
            plane_connector.PlaneClient(url, api_key=s.api_key)
        leaks.exception(info.value)


def test_401_bearer_refused(plane_emulator: Any, leaks: Leaks) -> None:
    # CE has no OAuth: a Bearer token gets 401 "credentials were not provided".
    client = plane_connector.PlaneClient(
        plane_emulator.base_url, access_token=leaks.values.access_token, max_retries=0
    )
    leaks.add("repr(client)", repr(client))
    with pytest.raises(plane_connector.AuthError) as info:
        client.me()
    assert info.value.status == 401
    leaks.exception(info.value)
    leaks.add("repr(client) after", repr(client))


def test_403_invalid_key(plane_emulator: Any, leaks: Leaks) -> None:
    client = plane_connector.PlaneClient(
        plane_emulator.base_url, api_key=leaks.values.api_key, max_retries=0
    )
    leaks.add("repr(client)", repr(client))
    leaks.add("stats", client.stats)
    with pytest.raises(plane_connector.AuthError) as info:
        client.get(f"workspaces/{plane_emulator.workspace_slug}/projects/")
    assert info.value.status == 403
    leaks.exception(info.value)


def test_429_retries_exhausted(plane_emulator: Any, leaks: Leaks) -> None:
    plane_emulator.faults.add(r"/users/me/", kind="status", status=429, count=None, retry_after=0)
    leaks.values.extra.append(plane_emulator.api_key)
    client = plane_connector.PlaneClient(
        plane_emulator.base_url, api_key=plane_emulator.api_key, max_retries=3, max_wait=0.05,
        backoff_base=0.01,
    )  # fmt: skip
    with pytest.raises(plane_connector.RateLimitError) as info:
        client.me()
    assert client.stats["rate_limited"] == 4  # the first answer and three retries
    leaks.exception(info.value)
    leaks.add("repr(client)", repr(client))
    leaks.add("stats", client.stats)


def test_timeout(plane_emulator: Any, leaks: Leaks) -> None:
    plane_emulator.faults.add(r"/users/me/", kind="delay", seconds=2.0)
    client = plane_connector.PlaneClient(
        plane_emulator.base_url, api_key=leaks.values.api_key, timeout=0.2, max_retries=0
    )
    with pytest.raises(plane_connector.TimeoutError) as info:
        client.me()
    leaks.exception(info.value)


def test_connection_refused_with_retries(leaks: Leaks) -> None:
    client = plane_connector.PlaneClient(
        "http://127.0.0.1:1", api_key=leaks.values.api_key, max_retries=2, backoff_base=0.01,
        max_wait=0.05,
    )  # fmt: skip
    with pytest.raises(plane_connector.TransportError) as info:
        client.me()
    leaks.exception(info.value)


# --- webhooks ----------------------------------------------------------------------------


def test_bad_signature(tmp_path: Path, leaks: Leaks) -> None:
    s = leaks.values
    body = json.dumps({"event": "issue", "action": "created", "data": {"id": "x"}}).encode()
    wrong = plane_connector.sign_body(s.webhook_secret + "x", body)
    assert not plane_connector.verify_signature(s.webhook_secret, body, wrong)
    store = dedupe.SQLiteDeliveryStore(str(tmp_path / "d.sqlite3"))
    receiver = webhooks.WebhookReceiver(store, s.webhook_secret)
    leaks.add("repr(receiver)", repr(receiver))
    headers = {"X-Plane-Delivery": "d-1", "X-Plane-Event": "issue", "X-Plane-Signature": wrong}
    status, answer = receiver.handle(headers, body)
    assert status == 401
    leaks.add("answer", json.dumps(answer))


def _start_webhook_cli(env: dict[str, str], store: str) -> tuple[subprocess.Popen[str], str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PLANE_")}
    proc = subprocess.Popen(
        [EXE, "-v", "webhook", "--port", "0", "--secret-ref", "env:PLANE_TEST_WH_SECRET",
         "--store", store],
        env={**base, **env}, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not sel.select(timeout=deadline - time.monotonic()):
            break
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise AssertionError(f"webhook CLI did not start: {seen}")


def test_bad_signature_through_the_webhook_cli(tmp_path: Path, leaks: Leaks) -> None:
    s = leaks.values
    proc, url = _start_webhook_cli(
        {"PLANE_TEST_WH_SECRET": s.webhook_secret}, f"sqlite:{tmp_path / 'w.sqlite3'}"
    )
    try:
        body = b'{"event": "issue", "action": "created", "data": {"id": "x"}}'
        request = urllib.request.Request(  # noqa: S310 - the loopback URL the CLI printed
            url, data=body, method="POST",
            headers={"X-Plane-Delivery": "d-2", "X-Plane-Event": "issue",
                     "X-Plane-Signature": "0" * 64, "Content-Type": "application/json"},
        )  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310 - loopback URL
        assert info.value.code == 401
        leaks.add("HTTP answer", info.value.read().decode())
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    leaks.add("webhook CLI stdout", out)
    leaks.add("webhook CLI stderr", err)


# --- secret references ---------------------------------------------------------------------


def test_unresolvable_references(
    leaks: Leaks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = leaks.values
    monkeypatch.delenv("PLANE_TEST_ABSENT", raising=False)
    cases = [
        ("env:PLANE_TEST_ABSENT", {}),
        (s.api_key, {}),  # a pasted value instead of a reference
        (f"keyring:{s.api_key}", {}),
        (f"vualt:{s.api_key}", {}),
        (f"file:{tmp_path / 'absent'}", {}),
        ("vault:plane_api_key", {"vault_dsn": f"postgresql://u:{s.db_password}@127.0.0.1:1/db"}),
        ("vault:plane_api_key", {"vault_dsn": f"host=127.0.0.1 port=1 password={s.db_password}"}),
    ]
    for ref, kwargs in cases:
        with pytest.raises(secrets.SecretError) as info:
            secrets.resolve(ref, **kwargs)
        leaks.exception(info.value)


# --- OAuth: failed refresh -----------------------------------------------------------------


@dataclass
class OAuthSetup:
    oauth: Any  # the plane_connector.oauth module
    app: Any  # OAuthApp registered on the cloud emulator
    stale: Any  # an expired TokenSet with made-up tokens the emulator never issued


@pytest.fixture()
def oauth_setup(
    request: pytest.FixtureRequest,
    plane_emulator_factory: Callable[..., Any],
    leaks: Leaks,
    monkeypatch: pytest.MonkeyPatch,
) -> OAuthSetup:
    """A Plane App on a cloud emulator; ``indirect`` param "wrong secret" configures a bad one."""
    cloud = plane_emulator_factory(edition="cloud")
    s = leaks.values
    client_id, client_secret = cloud.register_oauth_app()
    s.extra.append(client_secret)
    wrong = getattr(request, "param", None) == "wrong secret"
    monkeypatch.setenv("PLANE_TEST_CLIENT_SECRET", s.client_secret if wrong else client_secret)
    app = oauth.OAuthApp(cloud.base_url, client_id, "env:PLANE_TEST_CLIENT_SECRET")
    stale = oauth.TokenSet(
        access_token=s.access_token, refresh_token=s.refresh_token, expires_at=time.time() - 10
    )
    leaks.add("repr(app)", repr(app))
    leaks.add("repr(tokens)", repr(stale))
    return OAuthSetup(oauth, app, stale)


def test_failed_refresh(oauth_setup: OAuthSetup, leaks: Leaks) -> None:
    with pytest.raises(oauth_setup.oauth.ReauthorizeError, match="re-authorize") as info:
        oauth_setup.app.refresh(oauth_setup.stale)
    leaks.exception(info.value)


@pytest.mark.parametrize("oauth_setup", ["wrong secret"], indirect=True)
def test_failed_refresh_with_a_wrong_client_secret(oauth_setup: OAuthSetup, leaks: Leaks) -> None:
    with pytest.raises(oauth_setup.oauth.OAuthError, match="invalid_client") as info:
        oauth_setup.app.refresh(oauth_setup.stale)
    leaks.exception(info.value)


def test_failed_refresh_through_the_client(oauth_setup: OAuthSetup, leaks: Leaks) -> None:
    # The whole chain: an expired stored token, the provider's refresh refused, the request
    # fails with "re-authorize" and nothing secret on the way.
    oauth = oauth_setup.oauth
    store = oauth.MemoryTokenStore()
    store.save("main", oauth_setup.stale)
    leaks.add("repr(store)", repr(store))
    provider = oauth.token_provider(oauth_setup.app, store, "main")
    client = plane_connector.PlaneClient(
        oauth_setup.app.base_url, token_provider=provider, max_retries=0
    )
    leaks.add("repr(client)", repr(client))
    with pytest.raises(plane_connector.PlaneError, match="re-authorize") as info:
        client.me()
    leaks.exception(info.value)


# --- CLI output ------------------------------------------------------------------------------


def test_cli_health_bad_key(plane_emulator: Any, leaks: Leaks) -> None:
    s = leaks.values
    out = run_cli(
        ["health", "--base-url", plane_emulator.base_url, "--api-key-ref", "env:PLANE_TEST_K"],
        {"PLANE_TEST_K": s.api_key},
    )
    assert out.returncode == 1
    leaks.add("health stdout", out.stdout)
    leaks.add("health stderr (-v)", out.stderr)


def test_cli_health_timeout_and_429(plane_emulator: Any, leaks: Leaks) -> None:
    key = plane_emulator.api_key
    leaks.values.extra.append(key)
    env = {"PLANE_TEST_K": key}
    args = ["health", "--base-url", plane_emulator.base_url, "--api-key-ref", "env:PLANE_TEST_K"]
    plane_emulator.faults.add(r"/users/me/", kind="delay", seconds=3.0)
    out = run_cli([*args, "--timeout", "0.3"], env)
    assert out.returncode == 1
    leaks.add("health timeout stdout", out.stdout)
    leaks.add("health timeout stderr", out.stderr)
    plane_emulator.faults.clear()
    plane_emulator.faults.add(r"/users/me/", kind="status", status=429, count=None)
    out = run_cli([*args, "--json"], env)
    assert out.returncode == 1
    leaks.add("health 429 stdout", out.stdout)
    leaks.add("health 429 stderr", out.stderr)


@pytest.mark.parametrize("how", ["bare value", "unresolvable", "bad url"])
def test_cli_health_configuration_errors(leaks: Leaks, how: str) -> None:
    s = leaks.values
    args = {
        "bare value": ["--api-key-ref", s.api_key],
        "unresolvable": ["--api-key-ref", f"keyring:{s.api_key}"],
        "bad url": ["--api-key-ref", "env:PLANE_TEST_K", "--base-url", f"ftp://{s.api_key}"],
    }[how]
    out = run_cli(["health", *args], {"PLANE_TEST_K": s.api_key})
    assert out.returncode == 2
    leaks.add("health stdout", out.stdout)
    leaks.add("health stderr", out.stderr)


def test_cli_guard_on_a_planted_secret(tmp_path: Path, leaks: Leaks) -> None:
    s = leaks.values
    repo = tmp_path / "r"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "settings.py").write_text(
        f'API_KEY = "{s.api_key}"\nWEBHOOK = "{s.webhook_secret}"\nTOKEN = "{s.access_token}"\n'
        f'REFRESH = "{s.refresh_token}"\nclient_secret = "{s.client_secret}"\n'
        f'DSN = "postgresql://odoo:{s.db_password}@db/odoo"\n'
    )
    out = run_cli(
        ["guard", "--repo", str(repo), "--base", "4b825dc642cb6eb9a060e54bf8d69288fbee4904"], {}
    )
    assert out.returncode == 1
    assert out.stdout.count("settings.py:") == 6
    leaks.add("guard stdout", out.stdout)
    leaks.add("guard stderr", out.stderr)


@pytest.mark.parametrize(
    "command",
    [
        ["health", "--api-key-ref", "{v}"],
        ["export", "--api-key-ref", "{v}", "--workspace", "ws", "--project", "p"],
        ["webhook", "--port", "0", "--secret-ref", "{v}"],
        ["mcp-config", "--mode", "api-key", "--workspace-slug", "ws", "--api-key-ref", "{v}"],
    ],
    ids=lambda c: c[0],
)
def test_every_cli_refuses_a_pasted_secret_without_echo(leaks: Leaks, command: list[str]) -> None:
    for value in (leaks.values.api_key, leaks.values.webhook_secret):
        out = run_cli([part.format(v=value) for part in command], {})
        assert out.returncode == 2, out.stdout + out.stderr
        assert "looks like a secret value" in out.stdout + out.stderr
        leaks.add(f"{command[0]} stdout", out.stdout)
        leaks.add(f"{command[0]} stderr", out.stderr)


def test_cli_export_bad_key_and_mcp_config(plane_emulator: Any, leaks: Leaks) -> None:
    env = {"PLANE_TEST_K": leaks.values.api_key}
    out = run_cli(
        ["export", "--base-url", plane_emulator.base_url, "--api-key-ref", "env:PLANE_TEST_K",
         "--workspace", plane_emulator.workspace_slug, "--project", plane_emulator.project_id],
        env,
    )  # fmt: skip
    assert out.returncode != 0
    leaks.add("export stdout", out.stdout)
    leaks.add("export stderr", out.stderr)
    for mode in ("api-key", "stdio"):
        out = run_cli(
            ["mcp-config", "--mode", mode, "--workspace-slug", "ws",
             "--api-key-ref", "env:PLANE_TEST_K"],
            env,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        leaks.add(f"mcp-config {mode} stdout", out.stdout)
        leaks.add(f"mcp-config {mode} stderr", out.stderr)
