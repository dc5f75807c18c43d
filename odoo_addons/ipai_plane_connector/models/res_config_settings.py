"""Settings > Plane: the rows of ``settings.SETTINGS`` (references, never values) and a test.

What the server operator fixed in odoo.conf or the environment is shown read-only with the
operator's value; references stored here are limited by the operator's secret policy, checked
when saved and again whenever one is resolved.
"""

import json
import logging

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

from ..caches import forget_clients
from ..redaction import redact
from ..settings import (
    API_KEY_REF,
    AUTH_MODE,
    BASE_URL,
    CA_BUNDLE,
    OAUTH_APP_INSTALLATION_ID,
    OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET_REF,
    OAUTH_TOKEN_KEY_REF,
    OPERATOR_SETTINGS,
    SETTINGS,
    WEB_URL,
    WEBHOOK_SECRET_REF,
    WORKSPACE_SLUG,
    policy_refusal,
    secret_policy,
)

_log = logging.getLogger(__name__)


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    plane_base_url = fields.Char(
        string="Plane base URL", config_parameter=BASE_URL.param,
        default=BASE_URL.default,
        help="https://api.plane.so for Plane Cloud, or your self-hosted Plane's address.",
    )
    plane_web_url = fields.Char(
        string="Plane web app URL", config_parameter=WEB_URL.param,
        help="Where 'Open in Plane' links point: https://app.plane.so for Plane Cloud, your "
        "Plane's address when self-hosted. Empty: derived from the base URL.",
    )
    plane_workspace_slug = fields.Char(
        string="Workspace slug", config_parameter=WORKSPACE_SLUG.param
    )
    plane_api_key_ref = fields.Char(
        string="API key reference", config_parameter=API_KEY_REF.param,
        help="Where the API key lives, never the key: env:PLANE_API_KEY, "
        "keyring:plane/api_key, vault:plane_api_key or file:/run/secrets/plane_api_key.",
    )
    plane_webhook_secret_ref = fields.Char(
        string="Webhook secret reference", config_parameter=WEBHOOK_SECRET_REF.param,
        help="Where the webhook signing secret lives, e.g. env:PLANE_WEBHOOK_SECRET.",
    )
    plane_ca_bundle = fields.Char(
        string="Extra CA bundle", config_parameter=CA_BUNDLE.param,
        help="For a self-hosted Plane behind an internal certificate authority: the absolute "
        "path of a PEM file of CA certificates on the Odoo server, trusted in addition to the "
        "system store and the bundled roots. Leave empty for Plane Cloud.",
    )
    plane_auth_mode = fields.Selection(
        [("api_key", "API key"), ("oauth", "OAuth (Plane App)")],
        string="Authentication", config_parameter=AUTH_MODE.param,
        default=AUTH_MODE.default,
        help="OAuth Plane Apps exist on Plane Cloud and the commercial editions only.",
    )
    plane_oauth_client_id = fields.Char(
        string="App client id", config_parameter=OAUTH_CLIENT_ID.param
    )
    plane_oauth_client_secret_ref = fields.Char(
        string="App client secret reference", config_parameter=OAUTH_CLIENT_SECRET_REF.param,
        help="e.g. env:PLANE_CLIENT_SECRET",
    )
    plane_oauth_token_key_ref = fields.Char(
        string="Token encryption key reference", config_parameter=OAUTH_TOKEN_KEY_REF.param,
        help="32 random bytes (base64) that encrypt the stored tokens, e.g. env:PLANE_TOKEN_KEY",
    )
    plane_oauth_app_installation_id = fields.Char(
        string="App installation id", config_parameter=OAUTH_APP_INSTALLATION_ID.param,
        help="Set by the install callback; enter it to connect as the app's bot.",
    )
    plane_last_check = fields.Char(string="Last connection check", compute="_compute_plane_info")
    plane_server = fields.Char(string="Plane server", compute="_compute_plane_info",
                               help="What the last connection check found: Plane's version and "
                               "edition, and the routes the connector uses for work items")
    plane_mcp_config = fields.Text(string="MCP client configuration",
                                   compute="_compute_plane_info")
    plane_operator_fixed = fields.Text(
        string="Set by the server operator", compute="_compute_plane_operator",
        help="odoo.conf [options] or environment values: they win over this page's.")
    plane_secret_policy = fields.Char(
        string="References allowed here", compute="_compute_plane_operator",
        help="What a reference stored in the database may name (the server operator's "
        "plane_secret_* options).")
    plane_base_url_operator = fields.Boolean(compute="_compute_plane_operator")
    plane_api_key_ref_operator = fields.Boolean(compute="_compute_plane_operator")
    plane_webhook_secret_ref_operator = fields.Boolean(compute="_compute_plane_operator")
    plane_oauth_client_secret_ref_operator = fields.Boolean(compute="_compute_plane_operator")
    plane_oauth_token_key_ref_operator = fields.Boolean(compute="_compute_plane_operator")
    plane_ca_bundle_operator = fields.Boolean(compute="_compute_plane_operator")

    def _compute_plane_operator(self):
        config = self.env["plane.connector"]._plane_config()
        fixed = "\n".join(
            f"{s.option} = {config[s.name] or '(none: the system trust store)'}"
            for s in OPERATOR_SETTINGS if s.name in config["operator"])
        try:
            policy = secret_policy().describe()
        except UserError as exc:
            policy = str(exc)
        for settings in self:
            settings.plane_operator_fixed = fixed
            settings.plane_secret_policy = policy
            for setting in OPERATOR_SETTINGS:
                if setting.field:
                    settings[f"{setting.field}_operator"] = setting.name in config["operator"]

    @api.depends(BASE_URL.field, WORKSPACE_SLUG.field, API_KEY_REF.field)
    def _compute_plane_info(self):
        last = self.env["plane.health.check"].sudo()._plane_last()
        summary = server = ""
        if last:
            outcome = "ok" if last.ok else "failed"
            summary = f"{fields.Datetime.to_string(last.checked_at)} — {last.message} ({outcome})"
            server = last.plane_server or ""
        for settings in self:
            settings.plane_last_check = summary
            settings.plane_server = server
            settings.plane_mcp_config = settings._plane_mcp_text()

    def _plane_mcp_text(self) -> str:
        try:
            from plane_connector import mcp
        except ImportError:
            return ""
        # The configuration in effect (operator values win), and the key reference only when
        # the policy admits it: the page must not hand out a reference that would be refused.
        config = self.env["plane.connector"]._plane_config()
        base_url, key_ref = config["base_url"], config["api_key_ref"]
        if "base_url" not in config["operator"]:
            base_url = self.plane_base_url or BASE_URL.default
        if "api_key_ref" not in config["operator"]:
            key_ref = (self.plane_api_key_ref or "").strip()
            refusal = policy_refusal(self._fields[API_KEY_REF.field].string, key_ref,
                                     API_KEY_REF.name)
            if refusal:
                return f"# {refusal}"
        try:
            built = mcp.build_config(
                None, base_url=base_url, workspace_slug=self.plane_workspace_slug or None,
                api_key_ref=key_ref or None, resolve_secrets=False,
                secret_policy=self.env["plane.connector"]._plane_policy_for(config, "api_key_ref"),
            )
        except Exception as exc:  # noqa: BLE001 - shown on the page instead of the config
            return f"# {redact(exc)}"
        return json.dumps(built, indent=2)

    @api.constrains(*(s.field for s in SETTINGS if s.field and s.validator))
    def _check_plane_settings(self):
        """Each setting's validator (see ``settings.SETTINGS``) on the value typed here; a
        setting the operator fixed is not checked, since its value here is not used."""
        operator = self.env["plane.connector"]._plane_config()["operator"]
        for settings in self:
            for setting in SETTINGS:
                if setting.field and setting.validator and setting.name not in operator:
                    setting.validator(setting, self._fields[setting.field].string,
                                      settings[setting.field])

    def set_values(self):
        self._plane_check_admin()
        super().set_values()
        forget_clients(self.env.cr.dbname)

    def _plane_check_admin(self):
        """Settings > Plane and its buttons are for administrators (checked before any call)."""
        if not self.env.su and not self.env.user.has_group("base.group_system"):
            raise AccessError("Only administrators can change the Plane settings or use them to "
                              "call Plane.")

    def action_plane_test_connection(self):
        """Save, call ``users/me/`` through the wheel, record and show the outcome."""
        self._plane_check_admin()
        self.execute()
        check = self.env["plane.health.check"].sudo()._plane_run_check()
        return _notify("Plane connection", check.message, check.ok)

    def action_plane_oauth_authorize(self):
        """Save, then send the administrator to Plane's consent page (user token)."""
        self._plane_check_admin()
        self.execute()
        return {"type": "ir.actions.act_url", "url": "/plane/oauth/start", "target": "self"}

    def action_plane_oauth_install(self):
        """Save, then fetch the app installation's bot token (no browser step)."""
        self._plane_check_admin()
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
            # soft_reload re-reads the settings (the last check shows) and keeps the
            # notification; a full reload would wipe it before anyone could read it.
            "next": {"type": "ir.actions.client", "tag": "soft_reload"},
        },
    }
