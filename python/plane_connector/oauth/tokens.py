"""Token answers and the errors of the OAuth flow."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plane_connector import AuthError, PlaneError


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
