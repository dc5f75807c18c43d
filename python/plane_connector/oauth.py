"""OAuth for Plane Apps: authorize URL, code exchange, bot tokens, refresh, encrypted storage.

Plane Apps exist only on Plane Cloud and the commercial editions; the open-source server has
no OAuth and rejects Bearer tokens on ``/api/v1``, so everything here is optional and the API
key keeps working without it.

Pieces:

- :class:`OAuthApp`: the token endpoint (``/auth/o/token/``) through the Rust client's
  ``oauth_request``. Plane's docs send form data with HTTP Basic, its SDK a JSON body: the app
  tries form + Basic first and falls back to JSON on an ``invalid_client``-style answer.
- :class:`TokenSet`: one token answer; its repr never shows a token.
- :class:`TokenStore`: where tokens live. :class:`PostgresTokenStore` encrypts them
  (AES-256-GCM) and refreshes under a row lock, so N workers seeing an expired token cause
  exactly one refresh; :class:`MemoryTokenStore` is the single-process twin.
- :class:`TokenProvider`: the ``token_provider(force_refresh)`` hook of ``PlaneClient``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import secrets as _secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit

from plane_connector import AuthError, ConfigError, HTTPError, PlaneError

if TYPE_CHECKING:
    from plane_connector.secrets import SecretPolicy

__all__ = [
    "DEFAULT_SCOPES",
    "MemoryTokenStore",
    "OAuthApp",
    "OAuthError",
    "PostgresTokenStore",
    "ReauthorizeError",
    "TokenCipher",
    "TokenProvider",
    "TokenSet",
    "TokenStore",
    "check_state",
    "code_challenge",
    "complete_authorization",
    "new_code_verifier",
    "new_state",
    "token_provider",
]

_log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/auth/o/authorize-app/"
TOKEN_PATH = "/auth/o/token/"  # noqa: S105 - a URL path
REVOKE_PATH = "/auth/o/revoke-token/"
INSTALLATION_PATH = "/auth/o/app-installation/"
DEFAULT_SCOPES = ("read", "write")
# Refresh this long before expiry so a request never leaves with a token about to die.
DEFAULT_MARGIN = 300.0
# While another thread refreshes, a token with at least this long left is still handed out.
SERVE_FLOOR = 30.0
# OAuth error codes that mean the grant itself is gone: only a new authorization helps.
_DEAD_GRANT = frozenset({"invalid_grant", "access_denied", "unauthorized_client"})
# Answers that mean "I did not understand how you sent the client credentials".
_WRONG_STYLE = frozenset({"invalid_client", "invalid_request", "unsupported_grant_type"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


class OAuthError(PlaneError):
    """The token endpoint refused a request for a reason other than a dead grant."""


class ReauthorizeError(AuthError):
    """The grant is revoked or expired, or no token is stored: the app must be authorized again."""


# ---------------------------------------------------------------------------------------------
# Token sets


@dataclass(frozen=True)
class TokenSet:
    """One token answer. ``expires_at`` is epoch seconds; tokens never appear in the repr."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type name
    expires_at: float | None = None
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None
    app_installation_id: str | None = None
    workspace_slug: str | None = None

    @property
    def kind(self) -> str:
        """``bot`` for an app-installation token (no refresh token), ``user`` otherwise."""
        return "bot" if self.app_installation_id and not self.refresh_token else "user"

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        """True when the token expires within ``seconds`` (never for a token without expiry)."""
        if self.expires_at is None:
            return False
        return self.expires_at - (time.time() if now is None else now) <= seconds

    @classmethod
    def from_response(
        cls,
        data: Any,
        *,
        now: float,
        app_installation_id: str | None = None,
        previous: TokenSet | None = None,
    ) -> TokenSet:
        """Parse a token endpoint answer; a refresh answer without a new refresh token keeps
        the previous one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("access_token"), str):
            raise OAuthError("the token endpoint answered without an access_token")
        expires_in = data.get("expires_in")
        try:
            expires_at = now + float(expires_in) if expires_in is not None else None
        except (TypeError, ValueError):
            raise OAuthError(f"the token endpoint sent a bad expires_in: {expires_in!r}") from None
        refresh = data.get("refresh_token") or (previous.refresh_token if previous else None)
        return cls(
            access_token=data["access_token"],
            token_type=str(data.get("token_type") or "Bearer"),
            expires_at=expires_at,
            refresh_token=refresh,
            scope=data.get("scope") or (previous.scope if previous else None),
            app_installation_id=app_installation_id
            or (previous.app_installation_id if previous else None),
            workspace_slug=previous.workspace_slug if previous else None,
        )


# ---------------------------------------------------------------------------------------------
# The app and its token endpoint


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


# ---------------------------------------------------------------------------------------------
# Encryption at rest


class TokenCipher:
    """AES-256-GCM for token columns: ``v1.<key id>.<base64url(nonce + ciphertext)>``.

    The key is 32 bytes from a secret reference, written as base64 (standard or url-safe) or
    64 hex digits. Each value gets a random 96-bit nonce; the associated data binds a value to
    its row and column, so a ciphertext copied into another row does not decrypt.
    """

    PREFIX = "v1"

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("token encryption key must be 32 bytes (AES-256)")
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise ConfigError(
                "encrypted token storage needs the 'cryptography' package "
                "(pip install 'plane_connector[oauth]')"
            ) from None
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"plane_connector token key" + key).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"TokenCipher(key_id={self.key_id!r})"

    @classmethod
    def from_ref(cls, key_ref: str, *, policy: SecretPolicy | None = None) -> TokenCipher:
        """The cipher for the key behind a secret reference (resolved under ``policy``)."""
        from plane_connector.secrets import resolve

        return cls(decode_key(resolve(key_ref, policy=policy), key_ref))

    @staticmethod
    def generate_key() -> str:
        """A new random key, base64-encoded, for storing in a secret store."""
        return base64.b64encode(os.urandom(32)).decode("ascii")

    def encrypt(self, plaintext: str, aad: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), aad.encode("utf-8"))
        blob = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{self.PREFIX}.{self.key_id}.{blob}"

    def decrypt(self, token: str, aad: str) -> str:
        try:
            prefix, key_id, blob = token.split(".", 2)
        except ValueError:
            raise ConfigError("stored token is not in the encrypted format") from None
        if prefix != self.PREFIX:
            raise ConfigError(f"stored token has unknown format {prefix!r}")
        if key_id != self.key_id:
            raise ConfigError(
                f"stored token was encrypted with another key (key id {key_id}, this key is "
                f"{self.key_id}): configure the old key or re-authorize"
            )
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(blob.encode("ascii"))
            plain = self._aead.decrypt(raw[:12], raw[12:], aad.encode("utf-8"))
        except (InvalidTag, binascii.Error, ValueError):
            raise ConfigError(
                "stored token failed authentication (tampered, or moved from another row)"
            ) from None
        return plain.decode("utf-8")


def decode_key(text: str, ref: str = "the key reference") -> bytes:
    """32 key bytes from base64 (standard or url-safe) or 64 hex digits."""
    value = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return bytes.fromhex(value)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            key = decoder(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(key) == 32:
            return key
    raise ConfigError(
        f"the token encryption key behind {ref} must be 32 bytes, written as base64 or 64 hex "
        "digits (TokenCipher.generate_key() makes one)"
    )


# ---------------------------------------------------------------------------------------------
# Token stores


Refresher = Callable[[TokenSet], TokenSet]


class TokenStore(Protocol):
    """Where token sets live, one per connection name (a user grant or an app installation)."""

    def load(self, name: str) -> TokenSet | None: ...

    def save(self, name: str, tokens: TokenSet) -> None: ...

    def delete(self, name: str) -> None: ...

    def get_valid_token(
        self,
        name: str,
        refresh: Refresher,
        *,
        margin: float = DEFAULT_MARGIN,
        reject: str | None = None,
    ) -> TokenSet: ...


class _Txn(Protocol):
    def load(self) -> tuple[TokenSet | None, str | None]: ...

    def save(self, tokens: TokenSet) -> None: ...

    def mark_reauthorize(self, reason: str) -> None: ...


class _SingleFlightStore:
    """The refresh protocol shared by the stores: cheap read, then lock, re-check, refresh.

    While one thread refreshes early (inside the margin), the other threads of the process keep
    using the old token, which still works, instead of queueing behind the refresh. Besides
    latency this matters for the async client: its hooks run on the client's own worker threads,
    and a worker parked behind the refresh cannot drive the refresh's own HTTP request.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._flight = threading.Condition()
        # name -> the token being replaced by the refresh in flight in this process (at most
        # one per name: the other threads serve it or wait, they never queue on the store).
        self._inflight: dict[str, TokenSet] = {}

    def _read(self, name: str) -> tuple[TokenSet | None, str | None]:
        raise NotImplementedError

    def _exclusive(self, name: str) -> contextlib.AbstractContextManager[_Txn]:
        raise NotImplementedError

    def get_valid_token(
        self,
        name: str,
        refresh: Refresher,
        *,
        margin: float = DEFAULT_MARGIN,
        reject: str | None = None,
    ) -> TokenSet:
        """A token that is good for at least ``margin`` seconds, refreshing it if needed.

        ``reject`` is an access token the server just refused (a 401): it is refreshed unless
        another thread or worker has already replaced it. Raises :class:`ReauthorizeError`
        when no token is stored or the grant is dead.
        """
        while True:
            with self._flight:
                while name in self._inflight:
                    replacing = self._inflight[name]
                    if self._servable(replacing, reject):
                        return replacing
                    self._flight.wait()  # a refused or dying token: wait for the new one
            tokens, reauth = self._read(name)
            if self._usable(name, tokens, reauth, margin, reject):
                assert tokens is not None
                return tokens
            assert tokens is not None
            with self._flight:
                if name in self._inflight:
                    continue  # another thread started the refresh meanwhile
                self._inflight[name] = tokens
            break
        try:
            return self._refresh_locked(name, refresh, margin, reject)
        finally:
            with self._flight:
                self._inflight.pop(name, None)
                self._flight.notify_all()

    def _refresh_locked(
        self, name: str, refresh: Refresher, margin: float, reject: str | None
    ) -> TokenSet:
        with self._exclusive(name) as txn:
            # Another thread or worker may have refreshed while we waited for the lock.
            tokens, reauth = txn.load()
            if self._usable(name, tokens, reauth, margin, reject):
                assert tokens is not None
                return tokens
            assert tokens is not None
            try:
                new = refresh(tokens)
            except ReauthorizeError as exc:
                # Remember it (committed) so other workers fail fast instead of replaying a
                # dead grant.
                txn.mark_reauthorize(str(exc))
                dead = exc
            else:
                txn.save(new)
                _log.info("refreshed OAuth token for %r (expires in %s)", name, _ttl(new, self))
                return new
        raise dead

    def _servable(self, tokens: TokenSet, reject: str | None) -> bool:
        """Still accepted by Plane for a request about to leave (not refused, not expiring)."""
        if reject is not None and hmac.compare_digest(tokens.access_token, reject):
            return False
        return not tokens.expires_within(SERVE_FLOOR, now=self.clock())

    def _usable(
        self,
        name: str,
        tokens: TokenSet | None,
        reauth: str | None,
        margin: float,
        reject: str | None,
    ) -> bool:
        if tokens is None:
            raise ReauthorizeError(
                f"no OAuth token stored for {name!r}: authorize the Plane app first", status=401
            )
        if reauth:
            raise ReauthorizeError(
                f"the OAuth grant for {name!r} needs re-authorization: {reauth}", status=401
            )
        if reject is not None and hmac.compare_digest(tokens.access_token, reject):
            return False
        return not tokens.expires_within(margin, now=self.clock())


def _ttl(tokens: TokenSet, store: _SingleFlightStore) -> str:
    if tokens.expires_at is None:
        return "never"
    return f"{tokens.expires_at - store.clock():.0f}s"


class MemoryTokenStore(_SingleFlightStore):
    """Process-local store for tests and single-process tools (threads single-flight too)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self._rows: dict[str, tuple[TokenSet, str | None]] = {}
        self._lock = threading.Lock()  # the rows; held only for a moment
        self._refresh_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryTokenStore(names={sorted(self._rows)!r})"

    def load(self, name: str) -> TokenSet | None:
        with self._lock:
            row = self._rows.get(name)
        return row[0] if row else None

    def save(self, name: str, tokens: TokenSet) -> None:
        with self._lock:
            self._rows[name] = (tokens, None)

    def delete(self, name: str) -> None:
        with self._lock:
            self._rows.pop(name, None)

    def _read(self, name: str) -> tuple[TokenSet | None, str | None]:
        with self._lock:
            return self._rows.get(name, (None, None))

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[_Txn]:
        store = self

        class Txn:
            def load(self) -> tuple[TokenSet | None, str | None]:
                return store._read(name)

            def save(self, tokens: TokenSet) -> None:
                store.save(name, tokens)

            def mark_reauthorize(self, reason: str) -> None:
                with store._lock:
                    if name in store._rows:
                        store._rows[name] = (store._rows[name][0], reason)

        with self._refresh_lock:
            yield Txn()


class PostgresTokenStore(_SingleFlightStore):
    """Encrypted token rows in PostgreSQL; refresh serialized across workers by a row lock.

    ``connect`` returns a new DB-API connection (psycopg2) owned by the store, or a new Odoo
    cursor (``odoo.sql_db.db_connect(dbname).cursor()``): the store commits on its own, so never
    hand it the request's ``env.cr``. Columns
    ``access_token_encrypted`` / ``refresh_token_encrypted`` hold AES-256-GCM ciphertext; the
    key comes from ``key_ref``.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        key_ref: str | None = None,
        cipher: TokenCipher | None = None,
        key_policy: SecretPolicy | None = None,
        table: str = "plane_oauth_token",
        lock_timeout: float = 60.0,
        create: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _IDENTIFIER.match(table):
            raise ConfigError(f"bad token table name {table!r}")
        if cipher is None:
            if not key_ref:
                raise ConfigError(
                    "PostgresTokenStore needs key_ref (the token encryption key's reference)"
                )
            cipher = TokenCipher.from_ref(key_ref, policy=key_policy)
        self._cipher = cipher
        self.table = table
        self._lock_timeout_ms = int(lock_timeout * 1000)
        super().__init__(clock)
        # A DB-API connection carries one transaction, so each is used by one thread at a time.
        # Reads get their own so they never wait behind a refresh holding the row lock.
        self._writes = _Connection(connect)
        self._reads = _Connection(connect)
        if create:
            self.ensure_schema()

    def __repr__(self) -> str:
        return f"PostgresTokenStore(table={self.table!r}, cipher={self._cipher!r})"

    def close(self) -> None:
        """Close this process's connections (they are re-opened on next use)."""
        self._writes.close()
        self._reads.close()

    def ensure_schema(self) -> None:
        """Create the token table if it does not exist."""
        with self._cursor() as cur:
            cur.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {self.table} (
                    name varchar PRIMARY KEY,
                    kind varchar NOT NULL,
                    access_token_encrypted text NOT NULL,
                    refresh_token_encrypted text,
                    token_type varchar NOT NULL,
                    scope text,
                    expires_at timestamp,
                    app_installation_id varchar,
                    workspace_slug varchar,
                    reauthorize_reason text,
                    refresh_count integer NOT NULL,
                    updated_at timestamp NOT NULL
                )
                """
            )

    def load(self, name: str) -> TokenSet | None:
        return self._read(name)[0]

    def save(self, name: str, tokens: TokenSet) -> None:
        """Store a token set (a new authorization clears any re-authorize mark)."""
        with self._cursor() as cur:
            self._upsert(cur, name, tokens, refreshed=False)

    def delete(self, name: str) -> None:
        with self._cursor() as cur:
            cur.execute(f"DELETE FROM {self.table} WHERE name = %s", (name,))

    def needs_reauthorization(self, name: str) -> str | None:
        """The reason the grant must be re-authorized, or None."""
        return self._read(name)[1]

    # -- internals -------------------------------------------------------------------------

    def _cursor(self, *, lock: bool = False) -> contextlib.AbstractContextManager[Any]:
        return self._writes.transaction(self._lock_timeout_ms if lock else None)

    def _read(self, name: str) -> tuple[TokenSet | None, str | None]:
        with self._reads.transaction() as cur:
            return self._select(cur, name, for_update=False)

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[_Txn]:
        store = self
        with self._cursor(lock=True) as cur:

            class Txn:
                def load(self) -> tuple[TokenSet | None, str | None]:
                    return store._select(cur, name, for_update=True)

                def save(self, tokens: TokenSet) -> None:
                    store._upsert(cur, name, tokens, refreshed=True)

                def mark_reauthorize(self, reason: str) -> None:
                    cur.execute(
                        f"UPDATE {store.table} SET reauthorize_reason = %s, updated_at = %s "
                        "WHERE name = %s",
                        (reason[:500], _utcnow(), name),
                    )

            yield Txn()

    def _select(
        self, cur: Any, name: str, *, for_update: bool
    ) -> tuple[TokenSet | None, str | None]:
        cur.execute(
            "SELECT access_token_encrypted, refresh_token_encrypted, token_type, scope, "
            "expires_at, app_installation_id, workspace_slug, reauthorize_reason "
            f"FROM {self.table} WHERE name = %s" + (" FOR UPDATE" if for_update else ""),
            (name,),
        )
        row = cur.fetchone()
        if row is None:
            return None, None
        access, refresh, token_type, scope, expires_at, inst, slug, reauth = row
        tokens = TokenSet(
            access_token=self._cipher.decrypt(access, self._aad(name, "access")),
            refresh_token=self._cipher.decrypt(refresh, self._aad(name, "refresh"))
            if refresh
            else None,
            token_type=token_type,
            scope=scope,
            expires_at=_to_epoch(expires_at),
            app_installation_id=inst,
            workspace_slug=slug,
        )
        return tokens, reauth

    def _upsert(self, cur: Any, name: str, tokens: TokenSet, *, refreshed: bool) -> None:
        access = self._cipher.encrypt(tokens.access_token, self._aad(name, "access"))
        refresh = (
            self._cipher.encrypt(tokens.refresh_token, self._aad(name, "refresh"))
            if tokens.refresh_token
            else None
        )
        cur.execute(
            f"""
            INSERT INTO {self.table} AS t (name, kind, access_token_encrypted,
                refresh_token_encrypted, token_type, scope, expires_at, app_installation_id,
                workspace_slug, reauthorize_reason, refresh_count, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, %s, %s)
            ON CONFLICT (name) DO UPDATE SET
                kind = EXCLUDED.kind,
                access_token_encrypted = EXCLUDED.access_token_encrypted,
                refresh_token_encrypted = EXCLUDED.refresh_token_encrypted,
                token_type = EXCLUDED.token_type,
                scope = EXCLUDED.scope,
                expires_at = EXCLUDED.expires_at,
                app_installation_id = EXCLUDED.app_installation_id,
                workspace_slug = EXCLUDED.workspace_slug,
                reauthorize_reason = NULL,
                refresh_count = t.refresh_count + EXCLUDED.refresh_count,
                updated_at = EXCLUDED.updated_at
            """,
            (
                name,
                tokens.kind,
                access,
                refresh,
                tokens.token_type,
                tokens.scope,
                _from_epoch(tokens.expires_at),
                tokens.app_installation_id,
                tokens.workspace_slug,
                1 if refreshed else 0,
                _utcnow(),
            ),
        )

    def _aad(self, name: str, column: str) -> str:
        return f"{self.table}/{name}/{column}"


class _Connection:
    """One DB-API connection of this process, used by one thread at a time.

    Re-opened after a fork: the parent's socket belongs to the parent.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def transaction(self, lock_timeout_ms: int | None = None) -> Iterator[Any]:
        with self._lock:
            if self._conn is None or self._pid != os.getpid() or self._conn.closed:
                self._conn = self._connect()
                self._pid = os.getpid()
            conn = self._conn
            try:
                conn.rollback()  # start clean: SET TRANSACTION must come first
                # An Odoo cursor (db_connect(db).cursor()) is its own connection and cursor.
                cur = conn.cursor() if callable(getattr(conn, "cursor", None)) else conn
                # READ COMMITTED so a row locked and updated by another worker is re-read
                # (REPEATABLE READ, Odoo's default, would raise a serialization failure).
                cur.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                if lock_timeout_ms is not None:
                    cur.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
                yield cur
                conn.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.rollback()
                raise


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _from_epoch(value: float | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, dt.timezone.utc).replace(tzinfo=None)


def _to_epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc).timestamp()


# ---------------------------------------------------------------------------------------------
# The client hook and the callback helpers


class TokenProvider:
    """``PlaneClient(token_provider=...)``: the current access token, refreshed single-flight.

    Called with ``False`` before requests and with ``True`` once after a 401; the forced call
    refreshes only if the token the server refused is still the stored one.
    """

    def __init__(
        self,
        app: OAuthApp,
        store: TokenStore,
        name: str,
        *,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        self.app = app
        self.store = store
        self.name = name
        self.margin = margin
        self._last = threading.local()

    def __repr__(self) -> str:
        return f"TokenProvider(name={self.name!r}, store={self.store!r})"

    def __call__(self, force_refresh: bool = False) -> str:
        reject = getattr(self._last, "token", None) if force_refresh else None
        if force_refresh and reject is None:
            # A forced call from a thread that has not fetched a token: refresh whatever is
            # stored (the caller saw it fail).
            current = self.store.load(self.name)
            reject = current.access_token if current else None
        tokens = self.store.get_valid_token(
            self.name, self.app.refresh, margin=self.margin, reject=reject
        )
        self._last.token = tokens.access_token
        return tokens.access_token


def token_provider(
    app: OAuthApp, store: TokenStore, name: str, *, margin: float = DEFAULT_MARGIN
) -> TokenProvider:
    """The ``token_provider`` callable for :class:`plane_connector.PlaneClient`."""
    return TokenProvider(app, store, name, margin=margin)


def new_state() -> str:
    """A random ``state`` for the authorize URL (keep it in the user's session)."""
    return _secrets.token_urlsafe(32)


def new_code_verifier() -> str:
    """A PKCE ``code_verifier`` (RFC 7636: 43 to 128 unreserved characters; this is 64).

    Keep it server-side with the ``state``; it never goes into a URL."""
    return _secrets.token_urlsafe(48)


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


def complete_authorization(
    app: OAuthApp,
    store: TokenStore,
    name: str,
    *,
    code: str | None = None,
    app_installation_id: str | None = None,
    code_verifier: str | None = None,
) -> TokenSet:
    """Handle the redirect callback: exchange ``code`` (user token, with the PKCE
    ``code_verifier`` given to :meth:`OAuthApp.authorize_url`) or, for an install callback,
    fetch the installation's bot token and its workspace slug; store the result."""
    if code:
        tokens = app.exchange_code(code, code_verifier=code_verifier)
        if app_installation_id:
            tokens = replace(tokens, app_installation_id=app_installation_id)
    elif app_installation_id:
        tokens = app.bot_token(app_installation_id)
    else:
        raise ConfigError("the OAuth callback carried neither code nor app_installation_id")
    if app_installation_id:
        try:
            install = app.app_installation(app_installation_id, tokens.access_token)
        except (HTTPError, OAuthError) as exc:
            _log.warning("could not read app installation %s: %s", app_installation_id, exc)
        else:
            slug = (install.get("workspace_detail") or {}).get("slug")
            if slug:
                tokens = replace(tokens, workspace_slug=slug)
    store.save(name, tokens)
    return tokens
