"""The Plane App and its endpoints: authorize URL, code exchange, bot token, refresh, revoke;
the PKCE and ``state`` helpers of the authorization-code flow."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit

from plane_connector import ConfigError, HTTPError
from plane_connector.oauth.tokens import OAuthError, ReauthorizeError, TokenSet

if TYPE_CHECKING:
    from plane_connector.secrets import SecretPolicy


_log = logging.getLogger("plane_connector.oauth")


AUTHORIZE_PATH = "/auth/o/authorize-app/"
TOKEN_PATH = "/auth/o/token/"  # noqa: S105 - a URL path
REVOKE_PATH = "/auth/o/revoke-token/"
INSTALLATION_PATH = "/auth/o/app-installation/"
DEFAULT_SCOPES = ("read", "write")


# OAuth error codes that mean the grant itself is gone: only a new authorization helps.
_DEAD_GRANT = frozenset({"invalid_grant", "access_denied", "unauthorized_client"})
# Answers that mean "I did not understand how you sent the client credentials".
_WRONG_STYLE = frozenset({"invalid_client", "invalid_request", "unsupported_grant_type"})


class _OAuthTransport(Protocol):
    """What the app needs of ``PlaneClient``: its OAuth-endpoint request."""

    def oauth_request(
        self,
        method: str,
        path: str,
        *,
        form: Mapping[str, Any] | None = None,
        json: Any = None,
        basic_auth: tuple[str, str] | None = None,
        bearer: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any: ...


class OAuthApp:
    """A registered Plane App: client id, secret reference, redirect URI and scopes.

    ``client_secret_ref`` is a secret reference (``env:``, ``keyring:``, ``vault:``, ``file:``),
    resolved when a token request is made and never kept in the repr.
    """

    def __init__(
        self,
        base_url: str = "https://api.plane.so",
        client_id: str = "",
        client_secret_ref: str = "",
        redirect_uri: str | None = None,
        scopes: Sequence[str] | str = DEFAULT_SCOPES,
        *,
        client: _OAuthTransport | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
        secret_policy: SecretPolicy | None = None,
    ) -> None:
        if not client_id:
            raise ConfigError("OAuth app needs a client_id")
        if not client_secret_ref:
            raise ConfigError("OAuth app needs client_secret_ref (e.g. env:PLANE_CLIENT_SECRET)")
        from plane_connector.secrets import parse, redact

        # A pasted secret, or a reference the operator's policy does not admit, is refused here,
        # before any request.
        if secret_policy is not None:
            secret_policy.check(client_secret_ref)
        else:
            parse(client_secret_ref)
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"bad Plane base URL {redact(repr(base_url))}: expected http(s)://host"
            )
        self.base_url = base_url.strip().rstrip("/")
        self.client_id = client_id
        self.client_secret_ref = client_secret_ref
        self.secret_policy = secret_policy
        self.redirect_uri = redirect_uri
        self.scopes = tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)
        self._client = client
        self._clock = clock
        self._timeout = timeout
        # Which request style the server accepted last; tried first next time.
        self._style: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"OAuthApp(base_url={self.base_url!r}, client_id={self.client_id!r}, "
            f"client_secret_ref={self.client_secret_ref!r})"
        )

    # -- the authorization-code flow --------------------------------------------------------

    def authorize_url(
        self,
        state: str,
        *,
        scopes: Sequence[str] | None = None,
        code_verifier: str | None = None,
    ) -> str:
        """The consent URL to send the user's browser to; ``state`` comes back on the callback.

        ``code_verifier`` (see :func:`new_code_verifier`; keep it with the state, server-side)
        adds PKCE: the URL carries its S256 ``code_challenge``, and only the holder of the
        verifier can redeem the code (:meth:`exchange_code`), so a code leaked from the redirect
        (browser history, a proxy log, a malicious app on the redirect URI) is worthless.
        """
        if not self.redirect_uri:
            raise ConfigError("OAuth app needs redirect_uri for the authorization-code flow")
        if not state:
            raise ConfigError("authorize_url needs a state (see new_state())")
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scopes or self.scopes),
            "state": state,
        }
        if code_verifier is not None:
            query["code_challenge"] = code_challenge(code_verifier)
            query["code_challenge_method"] = "S256"
        return f"{self.base_url}{AUTHORIZE_PATH}?{urlencode(query)}"

    def exchange_code(self, code: str, *, code_verifier: str | None = None) -> TokenSet:
        """Trade the callback's ``code`` for a user token set (access + refresh token).

        Pass the ``code_verifier`` whose challenge went into :meth:`authorize_url`."""
        if not code:
            raise ConfigError("exchange_code needs the authorization code from the callback")
        if not self.redirect_uri:
            raise ConfigError("OAuth app needs redirect_uri to exchange a code")
        fields = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
        }
        if code_verifier is not None:
            _check_verifier(code_verifier)
            fields["code_verifier"] = code_verifier
        data = self._token_request(fields)
        return TokenSet.from_response(data, now=self._clock())

    def bot_token(self, app_installation_id: str, *, scope: str | None = None) -> TokenSet:
        """A bot token for an app installation (client credentials; no refresh token)."""
        if not app_installation_id:
            raise ConfigError("bot_token needs the app_installation_id from the install callback")
        data = self._token_request(
            {
                "grant_type": "client_credentials",
                "app_installation_id": app_installation_id,
                "scope": scope or " ".join(self.scopes),
            }
        )
        return TokenSet.from_response(
            data, now=self._clock(), app_installation_id=app_installation_id
        )

    def refresh(self, tokens: TokenSet) -> TokenSet:
        """A fresh token set: refresh-token grant for a user token, a new bot token for a bot."""
        if tokens.refresh_token:
            data = self._token_request(
                {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
            )
            return TokenSet.from_response(data, now=self._clock(), previous=tokens)
        if tokens.app_installation_id:
            new = self.bot_token(tokens.app_installation_id, scope=tokens.scope)
            return replace(new, workspace_slug=tokens.workspace_slug)
        raise ReauthorizeError(
            "the stored token has neither a refresh token nor an app installation: "
            "re-authorize the Plane app",
            status=401,
        )

    def revoke(self, token: str) -> None:
        """Revoke an access or refresh token (Plane's SDK sends a JSON body for this)."""
        secret = self._secret()
        self._transport().oauth_request(
            "POST",
            REVOKE_PATH,
            json={"token": token, "client_id": self.client_id, "client_secret": secret},
        )

    def app_installation(self, app_installation_id: str, bearer: str) -> dict[str, Any]:
        """The installation record (``workspace_detail.slug`` says which workspace it is)."""
        data = self._transport().oauth_request(
            "GET", INSTALLATION_PATH, params={"id": app_installation_id}, bearer=bearer
        )
        # Plane answers a list filtered by id on some versions, the object on others.
        if isinstance(data, list):
            data = data[0] if data else {}
        if not isinstance(data, dict):
            raise OAuthError("the app-installation endpoint answered with no object")
        return data

    # -- token endpoint ------------------------------------------------------------------------

    def _transport(self) -> _OAuthTransport:
        with self._lock:
            if self._client is None:
                from plane_connector import PlaneClient

                self._client = PlaneClient(self.base_url, timeout=self._timeout)
            return self._client

    def _secret(self) -> str:
        from plane_connector.secrets import resolve

        return resolve(self.client_secret_ref, policy=self.secret_policy)

    def _token_request(self, fields: dict[str, str]) -> dict[str, Any]:
        secret = self._secret()
        sensitive = (fields.get("code"), fields.get("refresh_token"), fields.get("code_verifier"))
        styles = ["form", "json"] if self._style != "json" else ["json", "form"]
        last: HTTPError | None = None
        for style in styles:
            try:
                if style == "form":
                    data = self._transport().oauth_request(
                        "POST", TOKEN_PATH, form=fields, basic_auth=(self.client_id, secret)
                    )
                else:
                    body = {**fields, "client_id": self.client_id, "client_secret": secret}
                    data = self._transport().oauth_request("POST", TOKEN_PATH, json=body)
            except HTTPError as exc:
                code = _oauth_error_code(exc)
                if code in _DEAD_GRANT:
                    raise ReauthorizeError(
                        f"Plane refused the {fields['grant_type']} grant ({code}): the grant is "
                        "revoked or expired; re-authorize the Plane app",
                        status=exc.status,
                        body=_scrub(exc.body, secret, *sensitive),
                        message=code,
                    ) from None
                if exc.status in (400, 401, 415) and (code in _WRONG_STYLE or code is None):
                    _log.debug("token endpoint refused %s style (%s); trying next", style, code)
                    last = exc
                    continue
                detail = _scrub(code or exc.message, secret, *sensitive)
                raise OAuthError(f"token request failed: HTTP {exc.status} {detail}") from None
            if self._style != style:
                _log.info("Plane token endpoint accepts %s requests", style)
                self._style = style
            if not isinstance(data, dict):
                raise OAuthError("the token endpoint answered with no JSON object")
            return data
        assert last is not None
        detail = _scrub(_oauth_error_code(last) or last.message, secret, *sensitive)
        raise OAuthError(
            f"the token endpoint refused the client credentials in both form+Basic and JSON "
            f"style (HTTP {last.status} {detail}): check client_id {self.client_id!r} and the "
            f"secret behind {self.client_secret_ref}"
        )


def _oauth_error_code(exc: HTTPError) -> str | None:
    for text in (getattr(exc, "body", ""), getattr(exc, "message", "")):
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        code = data.get("error") if isinstance(data, dict) else None
        if isinstance(code, str):
            return code
    return None


def _scrub(text: str, *secret_values: str | None) -> str:
    """``text`` with the client secret, code and refresh token blanked out."""
    out = text or ""
    for value in secret_values:
        if isinstance(value, str) and len(value) >= 4:
            out = out.replace(value, "***")
    return out


def new_state() -> str:
    """A random ``state`` for the authorize URL (keep it in the user's session)."""
    return secrets.token_urlsafe(32)


def new_code_verifier() -> str:
    """A PKCE ``code_verifier`` (RFC 7636: 43 to 128 unreserved characters; this is 64).

    Keep it server-side with the ``state``; it never goes into a URL."""
    return secrets.token_urlsafe(48)


def code_challenge(code_verifier: str) -> str:
    """The S256 ``code_challenge`` of a verifier: base64url(SHA-256(verifier)) without padding."""
    _check_verifier(code_verifier)
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}\Z")


def _check_verifier(code_verifier: str) -> None:
    if not isinstance(code_verifier, str) or not _VERIFIER.match(code_verifier):
        raise ConfigError(
            "a PKCE code_verifier is 43 to 128 characters from A-Z a-z 0-9 - . _ ~ "
            "(use new_code_verifier())"
        )


def check_state(expected: str | None, received: str | None) -> bool:
    """Constant-time check of the callback's ``state`` against the one sent."""
    if not expected or not received:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), received.encode("utf-8"))
