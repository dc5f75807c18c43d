"""OAuth "Plane Apps": send an administrator to Plane's consent page and take the callback.

Plane Cloud and the commercial editions only; with Plane CE keep the API key.
"""

import logging
import re

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from ..redaction import redact
from ..settings import OAUTH_CALLBACK

_log = logging.getLogger(__name__)

_STATE_KEY = "plane_oauth_state"
# PKCE: the verifier stays server-side with the state; only its S256 challenge goes to Plane.
_VERIFIER_KEY = "plane_oauth_verifier"
_SETTINGS = "/odoo/action-ipai_plane_connector.action_plane_config_settings"
# OAuth error codes (RFC 6749 section 4.1.2.1) are short snake_case words; anything else in
# ``error`` is not echoed at all.
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


def _text(message: str, status: int):
    """A plain-text answer: whatever it quotes, a browser renders it as text, never as HTML."""
    return request.make_response(redact(message), status=status, headers=[
        ("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"),
    ])


class _RedactCallbackQuery(logging.Filter):
    """Odoo logs each request line, and the callback's query holds the one-time authorization
    code (and the state). The code is short-lived and single-use, but a log is no place for it."""

    plane_oauth_redaction = True  # found again after a module reload, where isinstance is not
    _query = re.compile(re.escape(OAUTH_CALLBACK) + r"\?[^\s\"']*")

    def _clean(self, value):
        return self._query.sub(OAUTH_CALLBACK + "?[redacted]", value) if isinstance(
            value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        return True


def _install_log_redaction() -> None:
    logger = logging.getLogger("werkzeug")
    if not any(getattr(f, "plane_oauth_redaction", False) for f in logger.filters):
        logger.addFilter(_RedactCallbackQuery())


_install_log_redaction()


class PlaneOAuthController(http.Controller):
    @http.route("/plane/oauth/start", type="http", auth="user", methods=["GET"])
    def plane_oauth_start(self, **_kwargs):
        if not request.env.user.has_group("base.group_system"):
            return _text("Only administrators can connect Plane.", 403)
        from plane_connector import oauth

        app = request.env["plane.connector"].sudo()._plane_oauth_app()
        state, verifier = oauth.new_state(), oauth.new_code_verifier()
        request.session[_STATE_KEY] = state
        request.session[_VERIFIER_KEY] = verifier
        return request.redirect(app.authorize_url(state, code_verifier=verifier), local=False)

    @http.route(OAUTH_CALLBACK, type="http", auth="user", methods=["GET"])
    def plane_oauth_callback(self, state=None, code=None, app_installation_id=None, **kwargs):
        from plane_connector import oauth

        if not request.env.user.has_group("base.group_system"):
            return _text("Only administrators can connect Plane.", 403)
        expected = request.session.pop(_STATE_KEY, None)
        verifier = request.session.pop(_VERIFIER_KEY, None)
        if not oauth.check_state(expected, state):
            _log.warning("Plane OAuth callback refused: state does not match the session")
            return _text("Plane authorization: invalid or expired state.", 400)
        error = kwargs.get("error")
        if error:
            shown = error if _ERROR_CODE.fullmatch(error) else "(not a valid OAuth error code)"
            return _text(f"Plane authorization was not granted: {shown}", 400)
        try:
            request.env["plane.connector"].sudo()._plane_oauth_complete(
                code=code, app_installation_id=app_installation_id, code_verifier=verifier
            )
        except UserError as exc:
            return _text(str(exc), 502)
        return request.redirect(_SETTINGS)
