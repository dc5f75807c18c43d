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

The package, by job: :mod:`.tokens` (:class:`TokenSet`, the errors), :mod:`.app` (the app, PKCE
and ``state``), :mod:`.cipher`, :mod:`.stores` and :mod:`.provider` (the client hook and the
callback); every name is importable from ``plane_connector.oauth`` as before.
"""

from __future__ import annotations

from plane_connector.oauth.app import (
    AUTHORIZE_PATH,
    DEFAULT_SCOPES,
    INSTALLATION_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    OAuthApp,
    check_state,
    code_challenge,
    new_code_verifier,
    new_state,
)
from plane_connector.oauth.cipher import TokenCipher, decode_key
from plane_connector.oauth.provider import TokenProvider, complete_authorization, token_provider
from plane_connector.oauth.stores import (
    DEFAULT_MARGIN,
    SERVE_FLOOR,
    MemoryTokenStore,
    PostgresTokenStore,
    Refresher,
    TokenStore,
)
from plane_connector.oauth.tokens import OAuthError, ReauthorizeError, TokenSet

__all__ = [
    "AUTHORIZE_PATH",
    "DEFAULT_MARGIN",
    "DEFAULT_SCOPES",
    "INSTALLATION_PATH",
    "REVOKE_PATH",
    "SERVE_FLOOR",
    "TOKEN_PATH",
    "MemoryTokenStore",
    "OAuthApp",
    "OAuthError",
    "PostgresTokenStore",
    "ReauthorizeError",
    "Refresher",
    "TokenCipher",
    "TokenProvider",
    "TokenSet",
    "TokenStore",
    "check_state",
    "code_challenge",
    "complete_authorization",
    "decode_key",
    "new_code_verifier",
    "new_state",
    "token_provider",
]
