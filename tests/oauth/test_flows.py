"""OAuth Plane Apps against the emulator's cloud edition, through the Rust client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from plane_connector import AsyncPlaneClient, AuthError, ConfigError, PlaneClient
from plane_connector.oauth import (
    OAuthApp,
    OAuthError,
    PostgresTokenStore,
    ReauthorizeError,
    TokenSet,
    check_state,
    code_challenge,
    complete_authorization,
    new_code_verifier,
    new_state,
    token_provider,
)
from plane_connector.testing import PlaneEmulator

REDIRECT = "http://127.0.0.1:8069/plane/oauth/callback"
SECRET_ENV = "PLANE_TEST_CLIENT_SECRET"
WORKER = Path(__file__).with_name("_worker.py")


@pytest.fixture
def emu() -> Iterator[PlaneEmulator]:
    with PlaneEmulator("cloud", seed=11, token_expires_in=3600) as emulator:
        yield emulator


@pytest.fixture
def app(emu: PlaneEmulator, monkeypatch: pytest.MonkeyPatch) -> OAuthApp:
    client_id, secret = emu.register_oauth_app(redirect_uri=REDIRECT)
    monkeypatch.setenv(SECRET_ENV, secret)
    return OAuthApp(emu.base_url, client_id, f"env:{SECRET_ENV}", REDIRECT, ("read", "write"))


@pytest.fixture
def store(
    connect: Callable[[], Any], token_table: str, key_ref: str
) -> Iterator[PostgresTokenStore]:
    s = PostgresTokenStore(connect, key_ref=key_ref, table=token_table)
    yield s
    s.close()


def browser_consent(url: str) -> dict[str, str]:
    """What the user's browser does: open the consent URL, read the redirect's query."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", f"{parts.path}?{parts.query}")
    resp = conn.getresponse()
    location = resp.getheader("Location") or ""
    conn.close()
    assert resp.status == 302, resp.status
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(app: OAuthApp, store: PostgresTokenStore, name: str = "odoo") -> TokenSet:
    state, verifier = new_state(), new_code_verifier()
    callback = browser_consent(app.authorize_url(state, code_verifier=verifier))
    assert check_state(state, callback["state"])
    return complete_authorization(
        app,
        store,
        name,
        code=callback["code"],
        app_installation_id=callback.get("app_installation_id"),
        code_verifier=verifier,
    )


def token_posts(emu: PlaneEmulator) -> list[Any]:
    return [r for r in emu.requests if r.path == "/auth/o/token/"]


def expiring_copy(store: PostgresTokenStore, name: str = "odoo", seconds: float = 10) -> None:
    """Make the stored token look close to expiry (the emulator still honours it)."""
    tokens = store.load(name)
    assert tokens is not None
    store.save(name, TokenSet(**{**tokens.__dict__, "expires_at": time.time() + seconds}))


def test_authorization_code_flow(emu: PlaneEmulator, app: OAuthApp, store: Any) -> None:
    url = app.authorize_url("s1")
    assert url.startswith(f"{emu.base_url}/auth/o/authorize-app/?client_id=")
    assert "response_type=code" in url and "scope=read+write" in url
    tokens = authorize(app, store)
    assert tokens.access_token.startswith("pln_") and tokens.refresh_token
    assert tokens.workspace_slug == emu.workspace_slug
    assert tokens.expires_at is not None and tokens.expires_at > time.time() + 3000
    assert emu.token_requests == {"authorization_code": 1}
    # The docs' style first: form body with HTTP Basic client credentials.
    (post,) = token_posts(emu)
    assert post.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    assert "authorization" in post.headers  # recorded redacted; the emulator checked Basic

    client = PlaneClient(emu.base_url, token_provider=token_provider(app, store, "odoo"))
    assert client.me()["id"] == emu.user["id"]
    assert emu.requests[-1].auth == "bearer"
    stored = store.load("odoo")
    assert stored is not None and stored.access_token == tokens.access_token


def test_json_body_fallback_when_form_is_refused(
    emu: PlaneEmulator, app: OAuthApp, store: Any
) -> None:
    # A server that does not read HTTP Basic answers invalid_client; the SDK's JSON style works.
    emu.faults.add(r"^/auth/o/token/$", "POST", status=401, body={"error": "invalid_client"})
    tokens = authorize(app, store)
    assert tokens.refresh_token
    first, second = token_posts(emu)
    assert "form-urlencoded" in first.headers.get("content-type", "")
    assert "json" in second.headers.get("content-type", "")
    assert "authorization" not in {k.lower() for k in second.headers}
    # The accepted style is remembered: the refresh goes straight to JSON.
    app.refresh(tokens)
    assert len(token_posts(emu)) == 3
    assert "json" in token_posts(emu)[-1].headers.get("content-type", "")


def test_wrong_client_secret_is_a_clear_error(
    emu: PlaneEmulator, app: OAuthApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    install = emu.install_oauth_app(app.client_id)
    monkeypatch.setenv(SECRET_ENV, "not-the-secret-" + "9" * 20)
    with pytest.raises(OAuthError) as err:
        app.bot_token(install)
    message = str(err.value)
    assert "client_id" in message and f"env:{SECRET_ENV}" in message
    assert "not-the-secret" not in message
    assert len(token_posts(emu)) == 2  # both styles tried, then a clear stop


def test_bot_token_is_reissued_when_it_nears_expiry(
    emu: PlaneEmulator, app: OAuthApp, store: Any
) -> None:
    installation = emu.install_oauth_app(app.client_id)
    tokens = complete_authorization(app, store, "bot", app_installation_id=installation)
    assert tokens.access_token.startswith("pln_bot_") and tokens.refresh_token is None
    assert tokens.kind == "bot" and tokens.workspace_slug == emu.workspace_slug
    provider = token_provider(app, store, "bot", margin=60)
    assert provider() == tokens.access_token
    assert emu.token_requests == {"client_credentials": 1}
    expiring_copy(store, "bot")
    fresh = provider()
    assert fresh != tokens.access_token and fresh.startswith("pln_bot_")
    assert emu.token_requests == {"client_credentials": 2}
    client = PlaneClient(emu.base_url, token_provider=provider)
    assert client.get(f"workspaces/{emu.workspace_slug}/projects/")["results"]


def test_refresh_before_expiry_rotates_tokens(
    emu: PlaneEmulator, app: OAuthApp, store: Any
) -> None:
    old = authorize(app, store)
    expiring_copy(store)
    provider = token_provider(app, store, "odoo", margin=60)
    client = PlaneClient(emu.base_url, token_provider=provider)
    assert client.me()["id"] == emu.user["id"]
    assert emu.token_requests.get("refresh_token") == 1
    new = store.load("odoo")
    assert new is not None
    assert new.access_token != old.access_token and new.refresh_token != old.refresh_token
    # Plane rotates: the old access token no longer works.
    with pytest.raises(AuthError):
        PlaneClient(emu.base_url, access_token=old.access_token).me()


def test_threads_refresh_once_against_plane(emu: PlaneEmulator, app: OAuthApp, store: Any) -> None:
    authorize(app, store)
    expiring_copy(store)
    provider = token_provider(app, store, "odoo", margin=60)
    barrier = threading.Barrier(16)
    seen: list[str] = []

    def worker() -> None:
        barrier.wait()
        seen.append(provider(False))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(seen) == 16 and len(set(seen)) == 1
    assert emu.token_requests.get("refresh_token") == 1


def test_processes_refresh_once_against_plane(
    emu: PlaneEmulator,
    app: OAuthApp,
    store: PostgresTokenStore,
    pg_dsn: str,
    token_table: str,
) -> None:
    authorize(app, store)
    expiring_copy(store)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, str(WORKER), emu.base_url, app.client_id, pg_dsn, token_table, "odoo"]
    procs = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(4)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:  # all four ask at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        hashes = []
        for p in procs:
            out, _ = p.communicate(timeout=60)
            assert p.returncode == 0
            hashes.append(out.strip())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert len(set(hashes)) == 1
    assert emu.token_requests.get("refresh_token") == 1
    stored = store.load("odoo")
    assert stored is not None
    assert hashes[0] == hashlib.sha256(stored.access_token.encode()).hexdigest()


def test_401_forces_one_refresh_and_retries(emu: PlaneEmulator, app: OAuthApp, store: Any) -> None:
    tokens = authorize(app, store)
    provider = token_provider(app, store, "odoo", margin=60)
    client = PlaneClient(emu.base_url, token_provider=provider)
    assert client.me()
    # Plane drops the access token early (as after a password change); our clock says it is fine.
    emu.oauth.tokens[tokens.access_token].revoked = True
    assert client.me()["id"] == emu.user["id"]
    assert emu.token_requests.get("refresh_token") == 1
    statuses = [r.status for r in emu.requests if r.path == "/api/v1/users/me/"]
    assert statuses == [200, 401, 200]


def test_revoked_grant_asks_for_reauthorization(
    emu: PlaneEmulator, app: OAuthApp, store: PostgresTokenStore
) -> None:
    authorize(app, store)
    provider = token_provider(app, store, "odoo", margin=60)
    client = PlaneClient(emu.base_url, token_provider=provider)
    assert client.me()
    emu.revoke_all_tokens()  # the user uninstalled the app / revoked access in Plane
    with pytest.raises(AuthError) as err:
        client.me()
    assert "re-authorize" in str(err.value)
    assert emu.token_requests.get("refresh_token") == 1
    # Other workers fail fast: the dead grant is not replayed against Plane.
    with pytest.raises(ReauthorizeError, match="re-authoriz"):
        token_provider(app, store, "odoo")(False)
    assert emu.token_requests.get("refresh_token") == 1
    assert store.needs_reauthorization("odoo")
    # Authorizing again heals it.
    authorize(app, store)
    assert client.me()["id"] == emu.user["id"]


def test_revoke_token(emu: PlaneEmulator, app: OAuthApp, store: Any) -> None:
    tokens = authorize(app, store)
    app.revoke(tokens.access_token)
    with pytest.raises(AuthError):
        PlaneClient(emu.base_url, access_token=tokens.access_token).me()


def test_no_secret_in_logs_reprs_or_errors(
    emu: PlaneEmulator,
    app: OAuthApp,
    store: PostgresTokenStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = authorize(app, store)
    expiring_copy(store)
    provider = token_provider(app, store, "odoo", margin=60)
    client = PlaneClient(emu.base_url, token_provider=provider)
    client.me()
    fresh = store.load("odoo")
    emu.revoke_all_tokens()
    expiring_copy(store)
    with pytest.raises(ReauthorizeError) as err:
        provider(False)
    secret = os.environ[SECRET_ENV]
    values = [secret, tokens.access_token, tokens.refresh_token]
    values += [fresh.access_token, fresh.refresh_token] if fresh else []
    text = "\n".join(
        [caplog.text, repr(app), repr(provider), repr(store), repr(client), repr(tokens)]
        + [repr(fresh), str(err.value), repr(err.value), str(getattr(err.value, "body", ""))]
    )
    for value in values:
        assert value and value not in text


def concurrent_async_gets(emu: PlaneEmulator, provider: Any, n: int) -> list[Any]:
    """``n`` concurrent GETs of the project list through one AsyncPlaneClient (60 s cap)."""

    async def main() -> list[Any]:
        client = AsyncPlaneClient(emu.base_url, token_provider=provider)
        path = f"workspaces/{emu.workspace_slug}/projects/"
        return await asyncio.gather(*(client.get(path) for _ in range(n)))

    return asyncio.run(asyncio.wait_for(main(), 60))


def test_async_client_reissues_bot_token_once_for_concurrent_requests(
    emu: PlaneEmulator, app: OAuthApp, store: PostgresTokenStore
) -> None:
    # A bot token: Plane does not revoke the old one when it issues a new one, so requests sent
    # with it while the new one is fetched still succeed. (With a rotating user token, a request
    # refused in that window waits for the refresh: see the test below.)
    installation = emu.install_oauth_app(app.client_id)
    complete_authorization(app, store, "bot", app_installation_id=installation)
    expiring_copy(store, "bot", seconds=120)  # inside the 300 s margin, still accepted by Plane
    provider = token_provider(app, store, "bot", margin=300)
    pages = concurrent_async_gets(emu, provider, 6)
    assert len(pages) == 6 and all(p["results"] for p in pages)
    assert emu.token_requests.get("client_credentials") == 2  # the install, then one re-issue


def test_async_client_requests_that_must_wait_for_the_refresh_do_not_deadlock(
    emu: PlaneEmulator, app: OAuthApp, store: PostgresTokenStore
) -> None:
    # 5 s left is inside the provider's hard floor: every caller must wait for the new token.
    # The refresh itself is an HTTP call through the same runtime, so hooks that blocked the
    # runtime's worker threads used to leave nobody to drive it (a hang, not an error).
    installation = emu.install_oauth_app(app.client_id)
    complete_authorization(app, store, "bot", app_installation_id=installation)
    expiring_copy(store, "bot", seconds=5)
    provider = token_provider(app, store, "bot")
    pages = concurrent_async_gets(emu, provider, 8)
    assert len(pages) == 8 and all(p["results"] for p in pages)
    assert emu.token_requests.get("client_credentials") == 2  # the install, then one re-issue


def test_pkce_authorize_url_carries_the_s256_challenge_and_the_exchange_the_verifier(
    emu: PlaneEmulator, app: OAuthApp, store: PostgresTokenStore
) -> None:
    verifier = new_code_verifier()
    assert 43 <= len(verifier) <= 128
    url = app.authorize_url(new_state(), code_verifier=verifier)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    # RFC 7636 4.2: BASE64URL(SHA256(ASCII(verifier))), no padding.
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    expected = base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
    assert query["code_challenge"] == [expected] == [code_challenge(verifier)]
    assert verifier not in url
    tokens = complete_authorization(
        app, store, "odoo", code=browser_consent(url)["code"], code_verifier=verifier
    )
    assert tokens.access_token.startswith("pln_")
    assert emu.token_requests == {"authorization_code": 1}


@pytest.mark.parametrize("verifier", ["wrong", "missing"])
def test_pkce_code_without_its_verifier_is_refused(
    emu: PlaneEmulator, app: OAuthApp, store: PostgresTokenStore, verifier: str
) -> None:
    right = new_code_verifier()
    callback = browser_consent(app.authorize_url(new_state(), code_verifier=right))
    given = new_code_verifier() if verifier == "wrong" else None
    with pytest.raises(ReauthorizeError, match="invalid_grant") as err:
        complete_authorization(app, store, "odoo", code=callback["code"], code_verifier=given)
    assert err.value.status == 400
    assert right not in str(err.value) and callback["code"] not in str(err.value)
    assert store.load("odoo") is None
    # The code is spent: even the right verifier cannot redeem it afterwards.
    with pytest.raises(ReauthorizeError, match="invalid_grant"):
        app.exchange_code(callback["code"], code_verifier=right)


def test_pkce_verifier_shape_is_checked_before_any_request(
    emu: PlaneEmulator, app: OAuthApp
) -> None:
    with pytest.raises(ConfigError, match="43 to 128"):
        app.authorize_url(new_state(), code_verifier="short")
    with pytest.raises(ConfigError, match="43 to 128"):
        app.exchange_code("code", code_verifier="x" * 129)
    assert token_posts(emu) == []


def test_used_code_is_a_reauthorize_error_without_retrying(
    emu: PlaneEmulator, app: OAuthApp, store: PostgresTokenStore
) -> None:
    callback = browser_consent(app.authorize_url(new_state()))
    app.exchange_code(callback["code"])
    with pytest.raises(ReauthorizeError, match="invalid_grant") as err:
        app.exchange_code(callback["code"])  # codes are single-use
    assert callback["code"] not in str(err.value) + str(err.value.body)
    assert len(token_posts(emu)) == 2  # invalid_grant is final: no second request style


def test_server_error_on_token_endpoint_loses_nothing(
    emu: PlaneEmulator, app: OAuthApp, store: PostgresTokenStore
) -> None:
    callback = browser_consent(app.authorize_url(new_state()))
    emu.faults.add(r"^/auth/o/token/$", "POST", status=503)
    with pytest.raises(OAuthError, match="HTTP 503"):
        complete_authorization(app, store, "odoo", code=callback["code"])
    assert store.load("odoo") is None
    # The code was not spent: the callback can simply be retried.
    tokens = complete_authorization(app, store, "odoo", code=callback["code"])
    stored = store.load("odoo")
    assert stored is not None and stored.access_token == tokens.access_token


def test_token_expired_at_plane_is_refreshed_on_the_401(
    app: OAuthApp, store: PostgresTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plane's clock runs 100x fast: its tokens die after 0.6 s while ours says 60 s (clock skew).
    with PlaneEmulator("cloud", seed=12, token_expires_in=60, time_scale=0.01) as fast:
        client_id, secret = fast.register_oauth_app(redirect_uri=REDIRECT)
        monkeypatch.setenv(SECRET_ENV, secret)
        fast_app = OAuthApp(fast.base_url, client_id, f"env:{SECRET_ENV}", REDIRECT)
        tokens = authorize(fast_app, store)
        deadline = time.monotonic() + 30
        while fast.oauth.bearer(tokens.access_token) is not None:  # wait for Plane-side expiry
            assert time.monotonic() < deadline
            time.sleep(0.05)
        fast.oauth.expires_in = 3600  # the next token lives long enough for the retry
        client = PlaneClient(
            fast.base_url, token_provider=token_provider(fast_app, store, "odoo", margin=10)
        )
        assert client.me()["id"] == fast.user["id"]
        assert fast.token_requests.get("refresh_token") == 1
        assert [r.status for r in fast.requests if r.path == "/api/v1/users/me/"] == [401, 200]
