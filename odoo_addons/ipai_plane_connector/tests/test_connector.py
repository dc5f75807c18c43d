"""plane.connector against the Plane emulator: client, pagination, idempotent create, health,
settings and the reconciliation sweep."""

import hashlib
from unittest.mock import patch

from odoo.exceptions import UserError
from odoo.tests import tagged

from .. import exceptions as plane_errors
from ..caches import forget_clients
from ..settings import CA_BUNDLE, RATE_WINDOW, REQUESTS_PER_MINUTE, WEB_URL
from .common import API_KEY_ENV, PlaneEmulatorCase


@tagged("post_install", "-at_install")
class TestConnector(PlaneEmulatorCase):
    def _items_path(self):
        return self.connector._plane_path("work_items", self.emulator.project_id)

    def test_request_and_cached_client(self):
        me = self.connector._plane_request("GET", "users/me/")
        self.assertEqual(me["id"], self.emulator.user["id"])
        client = self.connector._plane_client()
        self.assertIs(self.connector._plane_client(), client, "the client is built once")
        self.assertNotIn(self.emulator.api_key, repr(client))
        self.env["ir.config_parameter"].sudo().set_param(
            "plane.base_url", self.emulator.base_url + "/"
        )
        self.assertIsNot(self.connector._plane_client(), client, "new config, new client")

    def test_the_face_domain_modules_use(self):
        """Errors, their description and the retry delay come from the connector: what the
        client raises is what ``exceptions`` exports (docs/domain-modules.md)."""
        missing = self.connector._plane_path("work_items", self.emulator.project_id,
                                             "00000000-0000-4000-8000-000000000000")
        with self.assertRaises(plane_errors.NotFoundError) as caught:
            self.connector._plane_request("GET", missing)
        self.assertIsInstance(caught.exception, plane_errors.HTTPError)
        self.assertIsInstance(caught.exception, plane_errors.PlaneError)
        text = self.connector._plane_describe_error(
            plane_errors.PlaneError(f"boom with {self.emulator.api_key}"))
        self.assertTrue(text.startswith("PlaneError: boom"), text)
        self.assertNotIn(self.emulator.api_key, text)
        self.assertLessEqual(len(self.connector._plane_describe_error(ValueError("x" * 9000))),
                             2000)
        delay = self.connector._plane_retry_delay
        self.assertEqual([delay(n) for n in (1, 2, 3, 40)], [60.0, 120.0, 240.0, 3600.0])
        asked = plane_errors.RateLimitError("429", status=429, retry_after=600)
        self.assertEqual(delay(1, asked), 600.0)

    def test_rate_settings_build_the_client(self):
        params = self.env["ir.config_parameter"].sudo()
        default = self.connector._plane_client()
        params.set_param(REQUESTS_PER_MINUTE.param, "300")  # a Plane service token's budget
        params.set_param(RATE_WINDOW.param, "60")
        service = self.connector._plane_client()
        self.assertIsNot(service, default, "a new rate makes a new client")
        self.assertEqual(service.rate_limit.limit, 300)
        for rpm, window in (("many", "60"), ("0", "60"), ("60", "-1")):
            params.set_param(REQUESTS_PER_MINUTE.param, rpm)
            params.set_param(RATE_WINDOW.param, window)
            with self.assertRaises(UserError):
                self.connector._plane_client()

    def test_ca_bundle_setting(self):
        params = self.env["ir.config_parameter"].sudo()
        default = self.connector._plane_client()
        # Any regular PEM file of CA certificates works; the system store's is one.
        params.set_param(CA_BUNDLE.param, "/etc/ssl/certs/ca-certificates.crt")
        with_bundle = self.connector._plane_client()
        self.assertIsNot(with_bundle, default, "a new CA bundle makes a new client")
        self.assertEqual(with_bundle.me()["id"], self.emulator.user["id"])
        for bad in ("relative/ca.pem", "/nonexistent/ca.pem", "/dev/zero", "/etc",
                    "/etc/hostname"):
            params.set_param(CA_BUNDLE.param, bad)
            with self.assertRaises(UserError):
                self.connector._plane_client()
            with self.assertRaises(UserError):
                self.env["res.config.settings"].create({"plane_ca_bundle": bad})

    def test_rate_budget_is_shared_in_postgres(self):
        self.connector._plane_request("GET", "users/me/")
        key_id = hashlib.sha256(self.emulator.api_key.encode()).hexdigest()
        self.env.cr.execute("SELECT key_id FROM plane_rate_budget")
        key_ids = {r[0] for r in self.env.cr.fetchall()}
        self.assertIn(key_id, key_ids)
        self.assertNotIn(self.emulator.api_key, key_ids)

    def test_paginate_walks_every_page(self):
        seeded = set(self.emulator.seed_work_items(7))
        ids = [item["id"] for item in self.connector._plane_paginate(self._items_path(),
                                                                     per_page=3)]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertLessEqual(seeded, set(ids))

    def test_create_idempotent_returns_the_existing_item(self):
        values = {"name": "Idempotent"}
        first = self.connector._plane_create_idempotent(self._items_path(), values,
                                                        external_id="ext-1")
        again = self.connector._plane_create_idempotent(self._items_path(), values,
                                                        external_id="ext-1")
        self.assertEqual(first["id"], again["id"])
        found = self.connector._plane_request(
            "GET", self._items_path(), params={"external_id": "ext-1", "external_source": "odoo"}
        )
        self.assertEqual(found["id"], first["id"])

    def test_health_check_records_success_and_failure(self):
        ok = self.env["plane.health.check"]._plane_run_check()
        self.assertTrue(ok.ok, ok.message)
        self.assertIn("connected", ok.message)
        with patch.dict("os.environ", {API_KEY_ENV: "plane_api_" + "ff" * 16}):
            forget_clients()
            bad = self.env["plane.health.check"]._plane_run_check()
        forget_clients()
        self.assertFalse(bad.ok)
        self.assertIn("403", bad.message)
        self.assertNotIn("ff" * 16, bad.message)
        with patch.dict("os.environ", {API_KEY_ENV: ""}):
            forget_clients()
            unset = self.env["plane.health.check"]._plane_run_check()
        forget_clients()
        self.assertFalse(unset.ok)
        self.assertIn(API_KEY_ENV, unset.message)
        settings = self.env["res.config.settings"].create({})
        self.assertIn("(failed)", settings.plane_last_check)

    def test_settings_hold_references_not_values(self):
        raw = "plane_api_" + "ab" * 16
        with self.assertRaises(UserError) as caught:  # ValidationError is a UserError
            self.env["res.config.settings"].create({"plane_api_key_ref": raw})
        self.assertNotIn("ab" * 16, str(caught.exception))
        # file: references need a directory the operator allows (see test_security).
        with patch.dict("os.environ", {"PLANE_SECRET_FILE_ROOTS": "/run/secrets"}):
            settings = self.env["res.config.settings"].create({
                "plane_api_key_ref": f"env:{API_KEY_ENV}",
                "plane_webhook_secret_ref": "file:/run/secrets/plane_webhook_secret",
            })
            settings.execute()
        params = self.env["ir.config_parameter"].sudo()
        self.assertEqual(params.get_param("plane.webhook_secret_ref"),
                         "file:/run/secrets/plane_webhook_secret")
        self.assertNotIn(self.emulator.api_key, settings.plane_mcp_config or "")
        action = settings.action_plane_test_connection()
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])

    def test_web_url_setting_takes_http_addresses_only(self):
        # It becomes the href of the Open in Plane links.
        for bad in ("javascript:alert(1)", "data:text/html,x", "app.plane.so", "https://"):
            with self.assertRaises(UserError):
                self.env["res.config.settings"].create({"plane_web_url": bad})
        self.env["res.config.settings"].create({"plane_web_url": "https://app.plane.so"}).execute()
        params = self.env["ir.config_parameter"].sudo()
        self.assertEqual(params.get_param(WEB_URL.param), "https://app.plane.so")

    def test_reconciliation_sweep_feeds_missed_changes(self):
        link = self.env["plane.project.link"].create({
            "name": "ERP", "plane_project_id": self.emulator.project_id,
        })
        item = self.emulator.create_work_item("Changed while the webhook was down")
        fed = []
        model = type(self.env["plane.connector"])
        hook = patch.object(model, "_plane_handle_event", autospec=True,
                            side_effect=lambda _s, e, a, p: fed.append((e, a, p)) or True)
        with hook:
            self.assertEqual(link._plane_sweep(), 0, "the first sweep only sets the mark")
        self.assertTrue(link.sync_mark)
        mark = link.sync_mark
        self.emulator.update_work_item(item["id"], name="Renamed in Plane")
        grace = "odoo.addons.ipai_plane_connector.models.plane_project_link.SILENCE_GRACE"
        with hook, patch(grace, __import__("datetime").timedelta(0)):
            self.assertEqual(link._plane_sweep(), 1)
        self.assertEqual(len(fed), 1)
        event, action, payload = fed[0]
        self.assertEqual((event, action), ("issue", "updated"))
        self.assertEqual(payload["data"]["name"], "Renamed in Plane")
        self.assertIsInstance(payload["data"]["state"], dict, "state comes expanded")
        self.assertGreater(link.sync_mark, mark)
        self.assertTrue(link.webhook_silent_since, "changes no webhook reported are flagged")
        with hook:
            self.assertEqual(self.connector._cron_reconcile()[self.emulator.project_id], 0)
        self.assertEqual(len(fed), 1)
