"""The client hook (:class:`TokenProvider`) and the redirect callback's handler."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from plane_connector import ConfigError, HTTPError
from plane_connector.oauth.app import OAuthApp
from plane_connector.oauth.stores import DEFAULT_MARGIN, TokenStore
from plane_connector.oauth.tokens import OAuthError, TokenSet

_log = logging.getLogger("plane_connector.oauth")


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
