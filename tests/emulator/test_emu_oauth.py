"""Cloud edition: OAuth Plane Apps, Bearer tokens, expiry, rotation and revocation."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from plane_connector.testing import PlaneEmulator

from .conftest import Api

REDIRECT = "http://127.0.0.1:8069/plane/oauth/callback"


@pytest.fixture
def cloud() -> PlaneEmulator:
    with PlaneEmulator("cloud", seed=3) as emu:
        yield emu


def authorize(api: Api, client_id: str, state: str = "xyz") -> dict[str, str]:
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "read write",
            "state": state,
        }
    )
    reply = api.get(f"/auth/o/authorize-app/?{query}", key=None)
    assert reply.status == 302
    location = reply.header("Location")
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def form(api: Api, path: str, fields: dict[str, str], basic: tuple[str, str] | None = None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(basic).encode()).decode()
    return api.call("POST", path, raw=urlencode(fields).encode(), key=None, headers=headers)


def bot_token(emu: PlaneEmulator) -> tuple[dict, str]:
    """Register and install an app, then get a bot token the SDK way (JSON body)."""
    client_id, secret = emu.register_oauth_app(redirect_uri=REDIRECT)
    installation = emu.install_oauth_app(client_id)
    body = {
        "grant_type": "client_credentials",
        "app_installation_id": installation,
        "client_id": client_id,
        "client_secret": secret,
    }
    return Api(emu).post("/auth/o/token/", body, key=None).json(), secret


def bearer(api: Api, token: str, path: str = "/api/v1/users/me/"):
    return api.get(path, key=None, headers={"Authorization": f"Bearer {token}"})


def test_authorization_code_flow_and_refresh_rotation(cloud: PlaneEmulator) -> None:
    api = Api(cloud)
    client_id, secret = cloud.register_oauth_app(redirect_uri=REDIRECT)
    cb = authorize(api, client_id)
    assert cb["state"] == "xyz" and cb["app_installation_id"]
    tok = form(
        api,
        "/auth/o/token/",
        {
            "grant_type": "authorization_code",
            "code": cb["code"],
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uri": REDIRECT,
        },
    )
    assert tok.status == 200
    body = tok.json()
    assert list(body) == ["access_token", "expires_in", "token_type", "scope", "refresh_token"]
    assert body["access_token"].startswith("pln_") and body["token_type"] == "Bearer"
    assert body["refresh_token"].startswith("pln_refresh_") and body["expires_in"] == 86400
    me = bearer(api, body["access_token"])
    assert me.status == 200 and me.json()["id"] == cloud.user["id"]
    assert me.header("X-RateLimit-Remaining") is None  # Plane throttles by X-Api-Key only
    # The code is single-use.
    again = form(
        api,
        "/auth/o/token/",
        {
            "grant_type": "authorization_code",
            "code": cb["code"],
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    assert (again.status, again.json()) == (400, {"error": "invalid_grant"})
    # Refresh (SDK style: JSON body with the client credentials) rotates both tokens.
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
        "client_id": client_id,
        "client_secret": secret,
    }
    new = api.post("/auth/o/token/", refresh, key=None)
    assert new.status == 200
    assert bearer(api, body["access_token"]).status == 401
    assert bearer(api, new.json()["access_token"]).status == 200
    assert api.post("/auth/o/token/", refresh, key=None).status == 400
    assert cloud.token_requests == {"authorization_code": 2, "refresh_token": 2}


def test_bot_token_and_installation(cloud: PlaneEmulator) -> None:
    api = Api(cloud)
    client_id, secret = cloud.register_oauth_app(redirect_uri=REDIRECT)
    installation = cloud.install_oauth_app(client_id)
    tok = form(
        api,
        "/auth/o/token/",
        {"grant_type": "client_credentials", "app_installation_id": installation},
        basic=(client_id, secret),
    )
    body = tok.json()
    assert tok.status == 200 and body["access_token"].startswith("pln_bot_")
    assert "refresh_token" not in body
    inst = bearer(api, body["access_token"], f"/auth/o/app-installation/?id={installation}")
    (row,) = inst.json()
    assert row["workspace_detail"]["slug"] == cloud.workspace_slug and row["id"] == installation
    items = bearer(
        api,
        body["access_token"],
        f"/api/v1/workspaces/{cloud.workspace_slug}/projects/{cloud.project_id}/work-items/",
    )
    assert items.status == 200
    me = bearer(api, body["access_token"]).json()
    assert me["display_name"] == "app-bot"


def test_bad_client_credentials(cloud: PlaneEmulator) -> None:
    api = Api(cloud)
    client_id, _ = cloud.register_oauth_app(redirect_uri=REDIRECT)
    bad = form(
        api,
        "/auth/o/token/",
        {"grant_type": "client_credentials", "app_installation_id": "x"},
        basic=(client_id, "wrong"),
    )
    assert (bad.status, bad.json()) == (401, {"error": "invalid_client"})
    grant = api.post("/auth/o/token/", {"grant_type": "password"}, key=None)
    assert grant.status == 401  # client authentication comes first
    wrong_redirect = api.get(
        f"/auth/o/authorize-app/?client_id={client_id}&redirect_uri=http://evil.example/cb",
        key=None,
    )
    assert wrong_redirect.status == 400


def test_tokens_expire_in_scaled_time() -> None:
    with PlaneEmulator("cloud", time_scale=0.001, token_expires_in=1000) as emu:  # 1 s
        api = Api(emu)
        tok, _ = bot_token(emu)
        assert tok["expires_in"] == 1000
        assert bearer(api, tok["access_token"]).status == 200
        time.sleep(1.1)
        expired = bearer(api, tok["access_token"])
        assert (expired.status, expired.json()) == (
            401,
            {"detail": "Authentication credentials were not provided."},
        )


def test_revocation(cloud: PlaneEmulator) -> None:
    api = Api(cloud)
    client_id, secret = cloud.register_oauth_app(redirect_uri=REDIRECT)
    cb = authorize(api, client_id)
    tok = api.post(
        "/auth/o/token/",
        {
            "grant_type": "authorization_code",
            "code": cb["code"],
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uri": REDIRECT,
        },
        key=None,
    ).json()
    revoked = api.post(
        "/auth/o/revoke-token/",
        {"token": tok["access_token"], "client_id": client_id, "client_secret": secret},
        key=None,
    )
    assert (revoked.status, revoked.body) == (200, b"")
    assert bearer(api, tok["access_token"]).status == 401
    cb2 = authorize(api, client_id)
    tok2 = api.post(
        "/auth/o/token/",
        {
            "grant_type": "authorization_code",
            "code": cb2["code"],
            "client_id": client_id,
            "client_secret": secret,
        },
        key=None,
    ).json()
    cloud.revoke_all_tokens()
    assert bearer(api, tok2["access_token"]).status == 401


def test_ce_has_no_oauth() -> None:
    with PlaneEmulator() as emu:
        api = Api(emu)
        reply = api.post("/auth/o/token/", {"grant_type": "client_credentials"}, key=None)
        assert (reply.status, reply.json()) == (404, {"error": "Page not found."})
        with pytest.raises(RuntimeError, match="cloud"):
            emu.register_oauth_app()


def test_tokens_never_logged(cloud: PlaneEmulator) -> None:
    api = Api(cloud)
    tok, secret = bot_token(cloud)
    bearer(api, tok["access_token"])
    logged = json.dumps([r.__dict__ for r in cloud.requests], default=str)
    assert tok["access_token"] not in logged and secret not in logged
    assert cloud.requests[-1].auth == "bearer"
