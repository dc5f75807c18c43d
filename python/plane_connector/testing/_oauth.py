"""OAuth "Plane Apps" (Cloud edition only): apps, installations, codes and expiring tokens.

Shapes follow Plane's developer docs and plane-python-sdk (not in the CE repo, so not recorded):
token responses in django-oauth-toolkit's key order, errors as RFC 6749 ``{"error": ...}``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from plane_connector.testing._throttle import ScaledClock

CODE_LIFETIME = 60.0  # django-oauth-toolkit's default authorization-code lifetime (s)


class OAuthError(Exception):
    """An OAuth failure answered as ``status`` with body ``{"error": code, ...}``."""

    def __init__(self, status: int, code: str, description: str | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.body: dict[str, Any] = {"error": code}
        if description:
            self.body["error_description"] = description


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str
    name: str
    redirect_uris: tuple[str, ...]
    scopes: str


@dataclass(frozen=True)
class Code:
    app: OAuthApp
    redirect_uri: str
    scope: str
    user_id: str
    expiry: float
    installation_id: str
    challenge: str | None = None  # PKCE (RFC 7636), S256 or plain
    challenge_method: str | None = None


@dataclass
class Installation:
    id: str
    app: OAuthApp
    bot_user_id: str


@dataclass
class Token:
    value: str
    kind: str  # access | refresh | bot
    client_id: str
    scope: str
    expires_at: float | None  # monotonic instant; None for refresh tokens
    user_id: str
    installation_id: str | None = None
    pair: str | None = None  # the refresh token of an access token and vice versa
    revoked: bool = False


@dataclass
class OAuthServer:
    clock: ScaledClock
    expires_in: int = 86400
    apps: dict[str, OAuthApp] = field(default_factory=dict)
    installations: dict[str, Installation] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    token_requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register_app(
        self, name: str, redirect_uris: tuple[str, ...], scopes: str
    ) -> tuple[str, str]:
        app = OAuthApp(secrets.token_hex(20), secrets.token_hex(32), name, redirect_uris, scopes)
        with self.lock:
            self.apps[app.client_id] = app
        return app.client_id, app.client_secret

    # -- authorize (auto-approved: the test user consents at once) ------------------------------
    def authorize(
        self, params: dict[str, str], user_id: str, new_id: Any, bot_user_id: str
    ) -> dict[str, str]:
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise OAuthError(400, "invalid_client", "Unknown client_id.")
        if params.get("response_type", "code") != "code":
            raise OAuthError(400, "unsupported_response_type")
        redirect_uri = params.get("redirect_uri") or app.redirect_uris[0]
        if redirect_uri not in app.redirect_uris:
            raise OAuthError(400, "invalid_request", "Mismatching redirect URI.")
        scope = params.get("scope") or app.scopes
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method") or ("plain" if challenge else None)
        if challenge and method not in ("S256", "plain"):
            raise OAuthError(400, "invalid_request", "Transform algorithm not supported.")
        code = secrets.token_urlsafe(30)
        with self.lock:
            installation = next(
                (i for i in self.installations.values() if i.app is app), None
            ) or Installation(new_id(), app, bot_user_id)
            self.installations[installation.id] = installation
            expiry = self.clock.monotonic() + self.clock.scaled(CODE_LIFETIME)
            self.codes[code] = Code(
                app, redirect_uri, scope, user_id, expiry, installation.id, challenge, method
            )
        out = {"code": code, "app_installation_id": installation.id}
        if "state" in params:
            out["state"] = params["state"]
        out["_redirect_uri"] = redirect_uri
        return out

    # -- token endpoint ------------------------------------------------------------------------
    def token(self, params: dict[str, str], authorization: str | None) -> dict[str, Any]:
        grant = params.get("grant_type", "")
        with self.lock:
            self.token_requests[grant or "(missing)"] += 1
            app = self._client(params, authorization)
            if grant == "authorization_code":
                return self._grant_code(app, params)
            if grant == "refresh_token":
                return self._grant_refresh(app, params)
            if grant == "client_credentials":
                return self._grant_bot(app, params)
        raise OAuthError(400, "unsupported_grant_type")

    def _client(self, params: dict[str, str], authorization: str | None) -> OAuthApp:
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                raw = base64.b64decode(authorization[6:].strip()).decode("utf-8")
                client_id, _, client_secret = raw.partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise OAuthError(401, "invalid_client") from exc
        app = self.apps.get(client_id or "")
        if app is None or not secrets.compare_digest(app.client_secret, client_secret or ""):
            raise OAuthError(401, "invalid_client")
        return app

    def _grant_code(self, app: OAuthApp, params: dict[str, str]) -> dict[str, Any]:
        entry = self.codes.pop(params.get("code", ""), None)  # single use
        if entry is None or entry.app is not app or entry.expiry <= self.clock.monotonic():
            raise OAuthError(400, "invalid_grant")
        if params.get("redirect_uri", entry.redirect_uri) != entry.redirect_uri:
            raise OAuthError(400, "invalid_request", "Mismatching redirect URI.")
        if entry.challenge is not None and not _pkce_ok(entry, params.get("code_verifier")):
            # django-oauth-toolkit (oauthlib): a missing or wrong verifier is invalid_grant, and
            # the code is spent either way.
            raise OAuthError(400, "invalid_grant", "Code verifier mismatch.")
        return self._issue(app, entry.scope, entry.user_id, entry.installation_id)

    def _grant_refresh(self, app: OAuthApp, params: dict[str, str]) -> dict[str, Any]:
        old = self.tokens.get(params.get("refresh_token", ""))
        if old is None or old.kind != "refresh" or old.revoked or old.client_id != app.client_id:
            raise OAuthError(400, "invalid_grant")
        # Rotation: the used refresh token and its access token stop working.
        old.revoked = True
        if old.pair and old.pair in self.tokens:
            self.tokens[old.pair].revoked = True
        return self._issue(app, old.scope, old.user_id, old.installation_id)

    def _grant_bot(self, app: OAuthApp, params: dict[str, str]) -> dict[str, Any]:
        installation = self.installations.get(params.get("app_installation_id", ""))
        if installation is None or installation.app is not app:
            raise OAuthError(400, "invalid_grant", "Unknown app_installation_id.")
        scope = params.get("scope") or app.scopes
        value = "pln_bot_" + secrets.token_hex(24)
        self.tokens[value] = Token(
            value, "bot", app.client_id, scope, self._expiry(), installation.bot_user_id,
            installation.id,
        )  # fmt: skip
        return {
            "access_token": value,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "scope": scope,
        }

    def _issue(
        self, app: OAuthApp, scope: str, user_id: str, installation_id: str | None
    ) -> dict[str, Any]:
        access = "pln_" + secrets.token_hex(24)
        refresh = "pln_refresh_" + secrets.token_hex(24)
        self.tokens[access] = Token(
            access, "access", app.client_id, scope, self._expiry(), user_id, installation_id,
            refresh,
        )  # fmt: skip
        self.tokens[refresh] = Token(
            refresh, "refresh", app.client_id, scope, None, user_id, installation_id, access
        )
        return {
            "access_token": access,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "scope": scope,
            "refresh_token": refresh,
        }

    def _expiry(self) -> float:
        return self.clock.monotonic() + self.clock.scaled(self.expires_in)

    # -- revoke, introspect --------------------------------------------------------------------
    def revoke(self, params: dict[str, str], authorization: str | None) -> None:
        with self.lock:
            app = self._client(params, authorization)
            token = self.tokens.get(params.get("token", ""))
            # RFC 7009: an unknown token is not an error.
            if token is not None and token.client_id == app.client_id:
                token.revoked = True
                if token.pair and token.pair in self.tokens:
                    self.tokens[token.pair].revoked = True

    def revoke_all(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.revoked = True

    def bearer(self, value: str) -> Token | None:
        """The live access or bot token for a Bearer value, else None."""
        with self.lock:
            token = self.tokens.get(value)
            if token is None or token.revoked or token.kind == "refresh":
                return None
            if token.expires_at is not None and token.expires_at <= self.clock.monotonic():
                return None
            return token


def _pkce_ok(code: Code, verifier: str | None) -> bool:
    if not verifier:
        return False
    if code.challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode("utf-8")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        expected = verifier
    return secrets.compare_digest(expected, code.challenge or "")
