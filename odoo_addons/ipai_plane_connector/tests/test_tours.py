"""The connector's screens in a real browser (headless Chromium): Odoo tours.

The tours live in static/tests/tours; each names every button and field it uses in a trigger,
so a screen that loses one fails its tour (test_tour_fails_when_its_button_is_missing).
"""

import hashlib
import os
import secrets
import uuid

from odoo.tests import tagged

from ..settings import API_KEY_REF, BASE_URL, WEBHOOK_SECRET_REF, WORKSPACE_SLUG
from ..settings import WEB_URL as WEB_URL_SETTING
from .common import API_KEY_ENV, TOUR_TAG, WEBHOOK_SECRET_ENV, PlaneEmulatorCase

REFUSED_KEY_ENV = "PLANE_TEST_REFUSED_KEY"  # inside the default policy (PLANE_*)
WEB_URL = "https://plane.example.test"
SETTINGS_URL = "/odoo/action-ipai_plane_connector.action_plane_config_settings"
DELIVERIES_URL = "/odoo/action-ipai_plane_connector.action_plane_webhook_delivery"


@tagged("post_install", "-at_install", TOUR_TAG)
class TestPlaneTours(PlaneEmulatorCase):
    def test_settings_tour(self):
        params = self.env["ir.config_parameter"].sudo()
        for key in (BASE_URL.param, WORKSPACE_SLUG.param, API_KEY_REF.param,
                    WEBHOOK_SECRET_REF.param, WEB_URL_SETTING.param):
            params.set_param(key, False)  # a fresh database: the tour fills them in
        refused = "plane_api_" + secrets.token_hex(16)  # built at run time: no literal key
        os.environ[REFUSED_KEY_ENV] = refused
        self.addCleanup(os.environ.pop, REFUSED_KEY_ENV, None)
        self.start_plane_tour(
            SETTINGS_URL, "plane_settings_tour",
            base_url=self.emulator.base_url, web_url=WEB_URL,
            workspace=self.emulator.workspace_slug,
            good_key_ref=f"env:{API_KEY_ENV}", bad_key_ref=f"env:{REFUSED_KEY_ENV}",
            webhook_secret_ref=f"env:{WEBHOOK_SECRET_ENV}",
            plane_message="Given API token is not valid",  # Plane's own words for a bad key
        )  # fmt: skip
        self.assertEqual(params.get_param(BASE_URL.param), self.emulator.base_url)
        self.assertEqual(params.get_param(WEB_URL_SETTING.param), WEB_URL)
        self.assertEqual(params.get_param(WORKSPACE_SLUG.param), self.emulator.workspace_slug)
        self.assertEqual(params.get_param(API_KEY_REF.param), f"env:{REFUSED_KEY_ENV}")
        checks = self.env["plane.health.check"].search([], order="id desc", limit=2)
        self.assertEqual(checks.mapped("ok"), [False, True])
        for check in checks:
            self.assertNotIn(refused, check.message)
            self.assertNotIn(self.emulator.api_key, check.message)

    def _dead_delivery(self):
        delivery_id = str(uuid.uuid4())
        return self.env["plane.webhook.delivery"].create({
            "delivery_id": delivery_id,
            "fingerprint": hashlib.sha256(delivery_id.encode()).hexdigest(),
            "event": "issue", "action": "updated", "payload": "{}",
            "state": "dead", "attempts": 5, "last_error": "Plane answered 500 five times",
        })

    def test_deliveries_tour(self):
        delivery = self._dead_delivery()
        self.start_plane_tour(DELIVERIES_URL, "plane_deliveries_tour",
                              delivery_id=delivery.delivery_id)
        delivery.invalidate_recordset()
        self.assertEqual((delivery.state, delivery.attempts), ("received", 0))

    def test_tour_fails_when_its_button_is_missing(self):
        # A test-only view takes the Retry button away: the tour must fail at the step that
        # clicks it (after a short per-step wait), and the delivery stays dead.
        self.env["ir.ui.view"].create({
            "name": "test: the deliveries form without its Retry button",
            "model": "plane.webhook.delivery",
            "inherit_id": self.env.ref(
                "ipai_plane_connector.plane_webhook_delivery_view_form").id,
            "arch": "<xpath expr=\"//button[@name='action_retry']\" position=\"replace\"/>",
        })
        delivery = self._dead_delivery()
        with self.assertRaises(AssertionError) as failure, \
                self.assertLogs(self._logger.name, "ERROR"):  # the browser's own report
            self.start_plane_tour(DELIVERIES_URL, "plane_deliveries_tour",
                                  delivery_id=delivery.delivery_id, step_timeout=3000)
        # The failing step is the one that uses the button (not an earlier one).
        self.assertIn(
            "FAILED: [3/7] Tour plane_deliveries_tour → Step retry it "
            "(trigger: .o_form_statusbar button[name='action_retry'])",
            str(failure.exception),
        )
        delivery.invalidate_recordset()
        self.assertEqual(delivery.state, "dead")
