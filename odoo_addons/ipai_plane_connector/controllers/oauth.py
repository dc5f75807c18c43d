"""OAuth "Plane Apps": send an administrator to Plane's consent page and take the callback.

Plane Cloud and the commercial editions only; with Plane CE keep the API key.
"""

import logging
import re

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from .. import plane_runtime as rt

_log = logging.getLogger(__name__)

_STATE_KEY = "plane_oauth_state"
_SETTINGS = "/odoo/action-ipai_plane_connector.action_plane_config_settings"


class _RedactCallbackQuery(logging.Filter):
    """Odoo logs each request line, and the callback's query holds the one-time authorization
    code (and the state). The code is short-lived and single-use, but a log is no place for it."""

    plane_oauth_redaction = True  # found again after a module reload, where isinstance is not
    _query = re.compile(re.escape(rt.OAUTH_CALLBACK) + r"\?[^\s\"']*")

    def _clean(self, value):
        return self._query.sub(rt.OAUTH_CALLBACK + "?[redacted]", value) if isinstance(
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
            return request.make_response("Only administrators can connect Plane.", status=403)
        from plane_connector import oauth

        app = request.env["plane.connector"].sudo()._plane_oauth_app()
        state = oauth.new_state()
        request.session[_STATE_KEY] = state
        return request.redirect(app.authorize_url(state), local=False)

    @http.route(rt.OAUTH_CALLBACK, type="http", auth="user", methods=["GET"])
    def plane_oauth_callback(self, state=None, code=None, app_installation_id=None, **kwargs):
        from plane_connector import oauth

        if not request.env.user.has_group("base.group_system"):
            return request.make_response("Only administrators can connect Plane.", status=403)
        expected = request.session.pop(_STATE_KEY, None)
        if not oauth.check_state(expected, state):
            _log.warning("Plane OAuth callback refused: state does not match the session")
            return request.make_response("Plane authorization: invalid or expired state.",
                                         status=400)
        if kwargs.get("error"):
            return request.make_response(
                f"Plane authorization was not granted: {kwargs['error']}", status=400
            )
        try:
            request.env["plane.connector"].sudo()._plane_oauth_complete(
                code=code, app_installation_id=app_installation_id
            )
        except UserError as exc:
            return request.make_response(str(exc), status=502)
        return request.redirect(_SETTINGS)
