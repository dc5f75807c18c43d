"""The OAuth endpoints of Plane Cloud (``/auth/o/...``) and the app installation."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode

from plane_connector.testing import _store
from plane_connector.testing._api.base import NOT_AUTHENTICATED, PAGE_NOT_FOUND, ApiBase
from plane_connector.testing._http import Response, finish, oauth_response
from plane_connector.testing._oauth import OAuthError
from plane_connector.testing._store import compact


class OAuthEndpoints(ApiBase):
    def _bot_user(self) -> str:
        bot = next((u for u in self.store.users.values() if u.display_name == "app-bot"), None)
        if bot is None:
            bot = _store.User(
                self.store.new_id(), "App", "Bot", "bot@plane-emulator.local", "app-bot"
            )
            self.store.users[bot.id] = bot
        return bot.id

    def _oauth(
        self, method: str, path: str, params: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Response:
        """``params``: the query string, one value a name (the first)."""
        try:
            if path == "/auth/o/authorize-app/" and method == "GET":
                out = self.oauth.authorize(
                    params, self.store.admin.id, self.store.new_id, self._bot_user()
                )
                redirect_uri = out.pop("_redirect_uri")
                sep = "&" if "?" in redirect_uri else "?"
                return Response(
                    302,
                    [("Location", redirect_uri + sep + urlencode(out)), ("Content-Length", "0")],
                )
            if path == "/auth/o/token/" and method == "POST":
                params.update(_form_or_json(headers, body))
                token = self.oauth.token(params, headers.get("authorization"))
                return oauth_response(200, compact(token))
            if path == "/auth/o/revoke-token/" and method == "POST":
                params.update(_form_or_json(headers, body))
                self.oauth.revoke(params, headers.get("authorization"))
                return oauth_response(200, b"")
            if path == "/auth/o/app-installation/" and method == "GET":
                return self._installation(params, headers)
        except OAuthError as exc:
            return oauth_response(exc.status, compact(exc.body))
        return finish(404, compact(PAGE_NOT_FOUND), "normal", None, None)

    def _installation(self, params: dict[str, str], headers: dict[str, str]) -> Response:
        authz = headers.get("authorization", "")
        token = self.oauth.bearer(authz[7:].strip()) if authz[:7].lower() == "bearer " else None
        if token is None:
            return finish(401, compact(NOT_AUTHENTICATED), "auth", "GET", None)
        installation = self.oauth.installations.get(params.get("id", ""))
        rows = []
        if installation is not None:
            rows.append(
                {
                    "id": installation.id,
                    "workspace": self.store.workspace_id,
                    "workspace_detail": {
                        "name": self.store.workspace_name,
                        "slug": self.store.workspace_slug,
                        "id": self.store.workspace_id,
                    },
                    "app_bot": installation.bot_user_id,
                    "status": "installed",
                }
            )
        return oauth_response(200, compact(rows))


def _form_or_json(headers: dict[str, str], body: bytes) -> dict[str, str]:
    if not body:
        return {}
    if "json" in headers.get("content-type", ""):
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise OAuthError(400, "invalid_request", "Malformed JSON body.") from exc
        if not isinstance(value, dict):
            raise OAuthError(400, "invalid_request", "Expected a JSON object.")
        return {str(k): str(v) for k, v in value.items() if v is not None}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
