"""OAuth "Plane Apps": send an administrator to Plane's consent page and take the callback.

Plane Cloud and the commercial editions only; with Plane CE keep the API key.
"""

import logging

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from .. import plane_runtime as rt

_log = logging.getLogger(__name__)

_STATE_KEY = "plane_oauth_state"
_SETTINGS = "/odoo/action-ipai_plane_connector.action_plane_config_settings"


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
