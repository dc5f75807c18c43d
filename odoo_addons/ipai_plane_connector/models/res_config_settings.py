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
    plane_ca_bundle = fields.Char(
        string="Extra CA bundle", config_parameter=rt.PARAM_CA_BUNDLE,
        help="For a self-hosted Plane behind an internal certificate authority: the absolute "
        "path of a PEM file of CA certificates on the Odoo server, trusted in addition to the "
        "system store and the bundled roots. Leave empty for Plane Cloud.",
    )
    plane_auth_mode = fields.Selection(
        [("api_key", "API key"), ("oauth", "OAuth (Plane App)")],
        string="Authentication", config_parameter=rt.PARAM_AUTH_MODE, default="api_key",
        help="OAuth Plane Apps exist on Plane Cloud and the commercial editions only.",
    )
    plane_oauth_client_id = fields.Char(
        string="App client id", config_parameter=rt.PARAM_OAUTH_CLIENT_ID
    )
    plane_oauth_client_secret_ref = fields.Char(
        string="App client secret reference", config_parameter=rt.PARAM_OAUTH_SECRET_REF,
        help="e.g. env:PLANE_CLIENT_SECRET",
    )
    plane_oauth_token_key_ref = fields.Char(
        string="Token encryption key reference", config_parameter=rt.PARAM_OAUTH_KEY_REF,
        help="32 random bytes (base64) that encrypt the stored tokens, e.g. env:PLANE_TOKEN_KEY",
    )
    plane_oauth_app_installation_id = fields.Char(
        string="App installation id", config_parameter=rt.PARAM_OAUTH_INSTALLATION,
        help="Set by the install callback; enter it to connect as the app's bot.",
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

    @api.constrains("plane_api_key_ref", "plane_webhook_secret_ref",
                    "plane_oauth_client_secret_ref", "plane_oauth_token_key_ref")
    def _check_plane_refs(self):
        for settings in self:
            for label, ref in (
                ("API key reference", settings.plane_api_key_ref),
                ("Webhook secret reference", settings.plane_webhook_secret_ref),
                ("App client secret reference", settings.plane_oauth_client_secret_ref),
                ("Token encryption key reference", settings.plane_oauth_token_key_ref),
            ):
                # The webhook secret may list two references while a new secret rolls out.
                for one in (ref or "").replace(",", " ").split():
                    _check_reference(label, one)

    @api.constrains("plane_ca_bundle")
    def _check_plane_ca_bundle(self):
        for settings in self:
            rt.checked_ca_bundle(settings.plane_ca_bundle)

    def set_values(self):
        super().set_values()
        rt.forget_clients(self.env.cr.dbname)

    def action_plane_test_connection(self):
        """Save, call ``users/me/`` through the wheel, record and show the outcome."""
        self.execute()
        check = self.env["plane.health.check"].sudo()._plane_run_check()
        return _notify("Plane connection", check.message, check.ok)

    def action_plane_oauth_authorize(self):
        """Save, then send the administrator to Plane's consent page (user token)."""
        self.execute()
        return {"type": "ir.actions.act_url", "url": "/plane/oauth/start", "target": "self"}

    def action_plane_oauth_install(self):
        """Save, then fetch the app installation's bot token (no browser step)."""
        self.execute()
        installation = (self.plane_oauth_app_installation_id or "").strip()
        if not installation:
            raise UserError("Enter the app installation id first.")
        tokens = self.env["plane.connector"].sudo()._plane_oauth_complete(
            app_installation_id=installation
        )
        slug = f" (workspace {tokens.workspace_slug})" if tokens.workspace_slug else ""
        return _notify("Plane App connected", f"Connected as the app's bot{slug}.", True)


def _notify(title: str, message: str, ok: bool) -> dict:
    return {
        "type": "ir.actions.client",
        "tag": "display_notification",
        "params": {
            "title": title,
            "message": message,
            "type": "success" if ok else "danger",
            "sticky": not ok,
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
