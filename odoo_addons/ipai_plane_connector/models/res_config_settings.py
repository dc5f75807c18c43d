"""Settings > Plane: the four parameters (references, never values) and a connection test."""

import json
import logging

from odoo import api, fields, models
from odoo.exceptions import UserError

from .. import plane_runtime as rt

_log = logging.getLogger(__name__)


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    plane_base_url = fields.Char(
        string="Plane base URL", config_parameter=rt.PARAM_BASE_URL,
        default=rt.DEFAULT_BASE_URL,
        help="https://api.plane.so for Plane Cloud, or your self-hosted Plane's address.",
    )
    plane_workspace_slug = fields.Char(
        string="Workspace slug", config_parameter=rt.PARAM_WORKSPACE
    )
    plane_api_key_ref = fields.Char(
        string="API key reference", config_parameter=rt.PARAM_API_KEY_REF,
        help="Where the API key lives, never the key: env:PLANE_API_KEY, "
        "keyring:plane/api_key, vault:plane_api_key or file:/run/secrets/plane_api_key.",
    )
    plane_webhook_secret_ref = fields.Char(
        string="Webhook secret reference", config_parameter=rt.PARAM_WEBHOOK_SECRET_REF,
        help="Where the webhook signing secret lives, e.g. env:PLANE_WEBHOOK_SECRET.",
    )
    plane_last_check = fields.Char(string="Last connection check", compute="_compute_plane_info")
    plane_mcp_config = fields.Text(string="MCP client configuration",
                                   compute="_compute_plane_info")

    @api.depends("plane_base_url", "plane_workspace_slug", "plane_api_key_ref")
    def _compute_plane_info(self):
        last = self.env["plane.health.check"].sudo()._plane_last()
        summary = ""
        if last:
            outcome = "ok" if last.ok else "failed"
            summary = f"{fields.Datetime.to_string(last.checked_at)} — {last.message} ({outcome})"
        for settings in self:
            settings.plane_last_check = summary
            settings.plane_mcp_config = settings._plane_mcp_text()

    def _plane_mcp_text(self) -> str:
        try:
            from plane_connector import mcp
        except ImportError:
            return ""
        try:
            config = mcp.build_config(
                None, base_url=self.plane_base_url or rt.DEFAULT_BASE_URL,
                workspace_slug=self.plane_workspace_slug or None,
                api_key_ref=self.plane_api_key_ref or None, resolve_secrets=False,
            )
        except Exception as exc:  # noqa: BLE001 - shown on the page instead of the config
            return f"# {exc}"
        return json.dumps(config, indent=2)

    @api.constrains("plane_api_key_ref", "plane_webhook_secret_ref")
    def _check_plane_refs(self):
        for settings in self:
            for label, ref in (
                ("API key reference", settings.plane_api_key_ref),
                ("Webhook secret reference", settings.plane_webhook_secret_ref),
            ):
                if ref:
                    _check_reference(label, ref)

    def set_values(self):
        super().set_values()
        rt.forget_clients(self.env.cr.dbname)

    def action_plane_test_connection(self):
        """Save, call ``users/me/`` through the wheel, record and show the outcome."""
        self.execute()
        check = self.env["plane.health.check"].sudo()._plane_run_check()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": "Plane connection",
                "message": check.message,
                "type": "success" if check.ok else "danger",
                "sticky": not check.ok,
                "next": {"type": "ir.actions.client", "tag": "reload"},
            },
        }


def _check_reference(label: str, ref: str) -> None:
    """Refuse anything that is not a secret reference (a pasted key must never be stored)."""
    try:
        from plane_connector import secrets as plane_secrets
    except ImportError:  # pragma: no cover - external_dependencies stops the install first
        return
    try:
        plane_secrets.parse(ref)
    except plane_secrets.SecretError as exc:
        raise UserError(f"{label}: {exc}") from None
