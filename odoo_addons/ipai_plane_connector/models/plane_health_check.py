"""``plane.health.check``: the recorded outcome of each ``users/me/`` check."""

import logging

from odoo import api, fields, models

from ..redaction import redact
from .plane_connector import describe_error

_log = logging.getLogger(__name__)

KEEP_CHECKS = 200


class PlaneHealthCheck(models.Model):
    _name = "plane.health.check"
    _description = "Plane connection check"
    _order = "id desc"

    checked_at = fields.Datetime(required=True, default=fields.Datetime.now, readonly=True)
    ok = fields.Boolean(readonly=True)
    message = fields.Char(readonly=True)
    plane_user = fields.Char(readonly=True, help="Display name of the API key's user")
    base_url = fields.Char(readonly=True)
    plane_server = fields.Char(
        string="Plane server", readonly=True,
        help="The version and edition Plane reports, and the routes the connector uses there "
        "(work items via /issues/ on Plane up to 1.0, /work-items/ after). Detected again at "
        "each check, so an upgrade in place is noticed.")

    def init(self):
        from .plane_outage import ensure_outage_table

        ensure_outage_table(self.env.cr)

    @api.model
    def _plane_run_check(self):
        """Check the connection now and store the result (never raises for Plane errors)."""
        connector = self.env["plane.connector"]
        base_url = connector._plane_config()["base_url"]
        ok, message, user, server = False, "", "", ""
        try:
            client = connector._plane_client()
            result = _health(client)
            ok, message, user = result["ok"], result["message"], result["user"]
            server = result.get("server") or ""
        except Exception as exc:  # noqa: BLE001 - the outcome is recorded, not raised
            message = describe_error(exc)
        check = self.create({"ok": ok, "message": redact(message)[:500], "plane_user": user,
                             "base_url": base_url, "plane_server": redact(server)[:200]})
        old = self.search([], offset=KEEP_CHECKS)
        if old:
            old.unlink()
        if not ok:
            _log.warning("Plane health check failed: %s", message)
        else:
            # Plane answers: whatever paused for an outage may go on now, not at its next probe.
            self.env["plane.connector"]._plane_outage_clear()
        return check

    @api.model
    def _plane_last(self):
        return self.search([], limit=1)


def _health(client) -> dict:
    """``plane_connector.health.check`` when the wheel has it, else a bare ``users/me/``."""
    try:
        from plane_connector import health
    except ImportError:
        health = None
    if health is not None:
        result = health.check(client)
        user = result.user_display or result.user_email or ""
        message = f"connected as {user}: {result.summary()}" if result.ok else result.summary()
        return {"ok": result.ok, "message": message, "user": user,
                "server": getattr(result, "server", None)}
    me = client.me()
    name = me.get("display_name") or me.get("email") or me.get("id") or ""
    return {"ok": True, "message": f"connected as {name}", "user": name}
