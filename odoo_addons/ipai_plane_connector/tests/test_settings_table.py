"""Issue 23.3: the settings table (``settings.SETTINGS``) is the one source of the connector's
settings: the settings page, ``_plane_config`` and the operator options all follow it, and the
old ``plane_runtime`` names still import."""

import os
from unittest.mock import patch

from odoo.tests import TransactionCase, tagged

from .. import settings as plane_settings


@tagged("post_install", "-at_install")
class TestSettingsTable(TransactionCase):
    def test_the_page_fields_are_the_table(self):
        Settings = self.env["res.config.settings"]
        ours = {
            name: field for name, field in Settings._fields.items()
            if field._module == "ipai_plane_connector" and getattr(field, "config_parameter", None)
        }
        rows = {s.field: s for s in plane_settings.SETTINGS if s.field}
        self.assertEqual(set(ours), set(rows))
        for name, field in ours.items():
            row = rows[name]
            self.assertEqual(field.config_parameter, row.param, name)
            default = field.default(Settings) if field.default else ""
            self.assertEqual(default or "", row.default, name)
            if row.option:
                self.assertIn(f"{name}_operator", Settings._fields)
        # No other module puts a table parameter on the page under a second name.
        by_param = {s.param: s.field for s in plane_settings.SETTINGS}
        for name, field in Settings._fields.items():
            parameter = getattr(field, "config_parameter", None)
            if parameter in by_param:
                self.assertEqual(name, by_param[parameter], parameter)

    def test_plane_config_reads_every_row_from_the_database(self):
        params = self.env["ir.config_parameter"].sudo()
        values = {}
        for setting in plane_settings.SETTINGS:
            values[setting.name] = "https://x.example" if "url" in setting.name else "env:PLANE_X"
            params.set_param(setting.param, values[setting.name])
        with patch.dict(os.environ, {s.option.upper(): "" for s in
                                     plane_settings.OPERATOR_SETTINGS}):
            config = self.env["plane.connector"]._plane_config()
        self.assertEqual(config["operator"], frozenset())
        for name, value in values.items():
            self.assertEqual(config[name], value, name)
        for setting in plane_settings.SETTINGS:
            params.set_param(setting.param, False)
        with patch.dict(os.environ, {s.option.upper(): "" for s in
                                     plane_settings.OPERATOR_SETTINGS}):
            config = self.env["plane.connector"]._plane_config()
        for setting in plane_settings.SETTINGS:
            self.assertEqual(config[setting.name], setting.default, setting.name)

    def test_every_operator_option_is_read_and_shown(self):
        for setting in plane_settings.OPERATOR_SETTINGS:
            value = "https://operator.example" if setting.name == "base_url" else (
                "/etc/ssl/certs/ca-certificates.crt" if setting.name == "ca_bundle"
                else f"env:PLANE_OPERATOR_{setting.name.upper()}")
            with self.subTest(option=setting.option), \
                    patch.dict(os.environ, {setting.option.upper(): value}):
                config = self.env["plane.connector"]._plane_config()
                self.assertEqual(config[setting.name], value)
                self.assertIn(setting.name, config["operator"])
                page = self.env["res.config.settings"].create({})
                self.assertTrue(page[f"{setting.field}_operator"])
                self.assertIn(f"{setting.option} = {value}", page.plane_operator_fixed)
                # Any secret option pins the host (issue 21.3): the base URL and CA bundle
                # become the operator's too.
                if setting.secret_ref:
                    self.assertEqual(config["base_url"], plane_settings.BASE_URL.default)
                    self.assertLessEqual({"base_url", "ca_bundle"}, config["operator"])

    def test_secret_rows_carry_the_wheel_pattern_options(self):
        from plane_connector import secrets

        self.assertEqual(
            {s.name: s.allow_option for s in plane_settings.SETTINGS if s.secret_ref},
            secrets.SETTING_OPTIONS)
        self.assertEqual({s.name for s in plane_settings.SECRET_SETTINGS},
                         set(secrets.SETTING_OPTIONS))

    def test_plane_runtime_still_gives_the_old_names(self):
        from .. import caches, crons, paths, redaction, sync_guard
        from .. import plane_runtime as rt

        self.assertEqual(rt.PARAM_BASE_URL, "plane.base_url")
        self.assertEqual(rt.DEFAULT_BASE_URL, "https://api.plane.so")
        self.assertEqual(rt.PARAM_OAUTH_SECRET_REF, "plane.oauth_client_secret_ref")
        self.assertEqual(rt.PARAM_OAUTH_KEY_REF, "plane.oauth_token_key_ref")
        self.assertEqual(rt.PARAM_OAUTH_INSTALLATION, "plane.oauth_app_installation_id")
        self.assertEqual(rt.OPERATOR_OPTIONS, {
            "base_url": "plane_base_url",
            "api_key_ref": "plane_api_key_ref",
            "webhook_secret_ref": "plane_webhook_secret_ref",
            "oauth_client_secret_ref": "plane_oauth_client_secret_ref",
            "oauth_token_key_ref": "plane_oauth_token_key_ref",
            "ca_bundle": "plane_ca_bundle",
        })
        self.assertEqual(rt.SECRET_OPTIONS, ("api_key_ref", "webhook_secret_ref",
                                             "oauth_client_secret_ref", "oauth_token_key_ref"))
        self.assertIs(rt.wake_cron, crons.wake_cron)
        self.assertIs(rt.forget_clients, caches.forget_clients)
        self.assertIs(rt.is_uuid, paths.is_uuid)
        self.assertIs(rt.redact, redaction.redact)
        self.assertIs(rt.guard_sync_fields, sync_guard.guard_sync_fields)
        self.assertIs(rt.checked_ca_bundle, plane_settings.checked_ca_bundle)
        for name in ("PARAM_WEB_URL", "PARAM_WORKSPACE", "PARAM_API_KEY_REF",
                     "PARAM_WEBHOOK_SECRET_REF", "PARAM_REQUESTS_PER_MINUTE", "PARAM_RATE_WINDOW",
                     "PARAM_AUTH_MODE", "PARAM_CA_BUNDLE", "PARAM_OAUTH_CLIENT_ID",
                     "PARAM_SECRETS_GENERATION", "OAUTH_TOKEN_NAME", "OAUTH_CALLBACK",
                     "SECRET_TTL", "SECRET_FAILURE_TTL", "ConfigRefused", "operator_option",
                     "operator_refs", "secret_policy", "secret_cache", "get_client",
                     "store_connect", "pg_connect", "is_slug", "bad_path_segment",
                     "plane_remote", "notify_cron_workers"):
            self.assertTrue(hasattr(rt, name), name)
