"""OAuth Plane Apps (cloud edition of the emulator): bot installation and the consent flow
through Odoo's routes; tokens encrypted at rest in PostgreSQL."""

import logging
import os
from unittest.mock import patch
from urllib.parse import parse_qs, urlparse

from odoo.tests import tagged
from plane_connector.oauth import TokenCipher

from ..caches import forget_clients
from ..connections import pg_connect
from ..settings import (
    AUTH_MODE,
    BASE_URL,
    OAUTH_CALLBACK,
    OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET_REF,
    OAUTH_TOKEN_KEY_REF,
    OAUTH_TOKEN_NAME,
)
from .common import PlaneEmulatorCase
from .test_operator_host import AttackerHost
from .test_security import operator

CLIENT_SECRET_ENV = "PLANE_TEST_CLIENT_SECRET"  # noqa: S105 - a variable name
TOKEN_KEY_ENV = "PLANE_TEST_TOKEN_KEY"  # noqa: S105 - a variable name


@tagged("post_install", "-at_install")
class TestOAuth(PlaneEmulatorCase):
    emulator_edition = "cloud"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        redirect = cls.base_url() + OAUTH_CALLBACK
        cls.client_id, secret = cls.emulator.register_oauth_app(redirect_uri=redirect)
        saved = {k: os.environ.get(k) for k in (CLIENT_SECRET_ENV, TOKEN_KEY_ENV)}

        def restore():
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.update({key: value})

        cls.addClassCleanup(restore)
        os.environ[CLIENT_SECRET_ENV] = secret
        os.environ[TOKEN_KEY_ENV] = TokenCipher.generate_key()
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param(OAUTH_CLIENT_ID.param, cls.client_id)
        params.set_param(OAUTH_CLIENT_SECRET_REF.param, f"env:{CLIENT_SECRET_ENV}")
        params.set_param(OAUTH_TOKEN_KEY_REF.param, f"env:{TOKEN_KEY_ENV}")

    def setUp(self):
        super().setUp()
        # The token store commits on connections of its own (outside the test transaction).
        store = self.connector._plane_oauth_store()
        store.delete(OAUTH_TOKEN_NAME)
        self.addCleanup(store.close)
        self.addCleanup(store.delete, OAUTH_TOKEN_NAME)
        self.addCleanup(forget_clients)
        self.store = store

    def _stored_columns(self):
        conn = pg_connect(self.env.cr.dbname)()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT * FROM plane_oauth_token")
                return [str(v) for row in cur.fetchall() for v in row]
        finally:
            conn.close()

    def test_bot_installation_from_settings(self):
        installation = self.emulator.install_oauth_app(self.client_id)
        settings = self.env["res.config.settings"].create({
            "plane_auth_mode": "oauth", "plane_oauth_app_installation_id": installation,
        })
        action = settings.action_plane_oauth_install()
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        params = self.env["ir.config_parameter"].sudo()
        self.assertEqual(params.get_param(AUTH_MODE.param), "oauth")
        projects = self.connector._plane_request(
            "GET", self.connector._plane_workspace_path("projects")
        )
        self.assertTrue(projects["results"])
        self.assertEqual(self.emulator.requests[-1].auth, "bearer")
        token = self.store.load(OAUTH_TOKEN_NAME).access_token
        self.assertTrue(token.startswith("pln_bot_"))
        self.assertFalse([v for v in self._stored_columns() if token in v],
                         "tokens are encrypted at rest")

    def test_consent_flow_through_odoo_routes(self):
        self.authenticate("admin", "admin")
        seen = []

        class Capture(logging.Handler):
            def emit(self, record):
                seen.append(record.getMessage())

        # Odoo's request log: the handler sees records after the logger's filters ran.
        werkzeug_log = logging.getLogger("werkzeug")
        capture = Capture(logging.INFO)
        werkzeug_log.addHandler(capture)
        self.addCleanup(werkzeug_log.removeHandler, capture)
        self.addCleanup(werkzeug_log.setLevel, werkzeug_log.level)
        werkzeug_log.setLevel(logging.INFO)
        response = self.url_open("/plane/oauth/start", timeout=30)
        callback_lines = [line for line in seen if OAUTH_CALLBACK in line]
        self.assertEqual(len(callback_lines), 1, seen)
        self.assertIn(OAUTH_CALLBACK + "?[redacted]", callback_lines[0])
        self.assertNotIn("code=", callback_lines[0])
        self.assertEqual(response.status_code, 200, response.text[:300])
        tokens = self.store.load(OAUTH_TOKEN_NAME)
        self.assertIsNotNone(tokens, "the callback stored the tokens")
        self.assertTrue(tokens.refresh_token)
        self.assertEqual(self.env["ir.config_parameter"].sudo().get_param(AUTH_MODE.param),
                         "oauth")
        me = self.connector._plane_request("GET", "users/me/")
        self.assertEqual(me["id"], self.emulator.user["id"])
        self.assertEqual(self.emulator.requests[-1].auth, "bearer")

    def test_callback_refuses_a_forged_state(self):
        self.authenticate("admin", "admin")
        response = self.url_open("/plane/oauth/callback?state=forged&code=abc", timeout=30)
        self.assertEqual(response.status_code, 400)
        self.assertIsNone(self.store.load(OAUTH_TOKEN_NAME))

    def _started_state(self):
        """The state /plane/oauth/start keeps in the session (read from its redirect)."""
        start = self.url_open("/plane/oauth/start", allow_redirects=False, timeout=30)
        self.assertIn(start.status_code, (302, 303), start.text[:300])
        return parse_qs(urlparse(start.headers["Location"]).query)["state"][0]

    def test_callback_error_is_text_never_html(self):
        self.authenticate("admin", "admin")
        state = self._started_state()
        response = self.url_open(
            f"/plane/oauth/callback?state={state}&error=<script>alert(1)</script>", timeout=30)
        self.assertEqual(response.status_code, 400)
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain"),
                        response.headers["Content-Type"])
        self.assertNotIn("<script>", response.text)
        self.assertIsNone(self.store.load(OAUTH_TOKEN_NAME))
        state = self._started_state()
        denied = self.url_open(f"/plane/oauth/callback?state={state}&error=access_denied",
                               timeout=30)
        self.assertIn("access_denied", denied.text)

    def test_consent_uses_pkce_and_a_wrong_verifier_fails(self):
        from odoo import http
        from plane_connector import oauth

        self.authenticate("admin", "admin")
        start = self.url_open("/plane/oauth/start", allow_redirects=False, timeout=30)
        consent = start.headers["Location"]
        query = parse_qs(urlparse(consent).query)
        self.assertEqual(query["code_challenge_method"], ["S256"])
        session = http.root.session_store.get(self.session.sid)
        verifier = session["plane_oauth_verifier"]
        self.assertEqual(query["code_challenge"], [oauth.code_challenge(verifier)])
        self.assertNotIn(verifier, consent, "the verifier stays server-side")
        # Someone holding the code but not the verifier the challenge was made from.
        session["plane_oauth_verifier"] = oauth.new_code_verifier()
        http.root.session_store.save(session)
        response = self.url_open(consent, timeout=30)  # Plane's consent, then our callback
        self.assertEqual(response.status_code, 502, response.text[:300])
        self.assertIn("invalid_grant", response.text)
        self.assertIsNone(self.store.load(OAUTH_TOKEN_NAME))

    def test_operator_token_key_pins_the_host_of_the_access_token(self):
        """Issue 21, 3(c): the operator set the token encryption key; the database admin then
        points plane.base_url at their host. The decrypted access token (and a refresh's
        client secret and refresh token) must go to the operator's host only."""
        attacker = AttackerHost()
        self.addCleanup(attacker.close)
        params = self.env["ir.config_parameter"].sudo()
        # Plane Cloud (the operator's host without plane_base_url) is the emulator here.
        with patch.object(BASE_URL, "default", self.emulator.base_url), \
                operator(plane_oauth_token_key_ref=f"env:{TOKEN_KEY_ENV}"):
            installation = self.emulator.install_oauth_app(self.client_id)
            settings = self.env["res.config.settings"].create({
                "plane_auth_mode": "oauth", "plane_oauth_app_installation_id": installation,
            })
            action = settings.action_plane_oauth_install()
            self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
            token = self.store.load(OAUTH_TOKEN_NAME).access_token
            params.set_param(BASE_URL.param, attacker.url)
            forget_clients()
            path = self.connector._plane_workspace_path("projects")
            projects = self.connector._plane_request("GET", path)
            self.assertEqual(attacker.received, [], "the access token went to the admin's host")
            self.assertTrue(projects["results"])
            self.assertEqual(self.emulator.requests[-1].auth, "bearer")
            check = self.env["plane.health.check"]._plane_run_check()
            self.assertTrue(check.ok, check.message)
            self.assertEqual(check.base_url, self.emulator.base_url)
            self.assertNotIn(token, check.message)
        self.assertEqual(attacker.received, [], "the access token never reached the admin's host")
