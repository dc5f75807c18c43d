"""The processing cron: exactly once, failure kept on the row, dead after the last attempt."""

import datetime as dt
import hashlib
import uuid
from unittest.mock import patch

from odoo import fields
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from .common import issue_body

LEAKY_KEY = "plane_api_" + "0123456789abcdef" * 2


@tagged("post_install", "-at_install")
class TestDeliveryProcessing(TransactionCase):
    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param("plane.webhook_max_attempts", "3")
        self.connector = self.env["plane.connector"]
        self.calls = []

    def _row(self, **data):
        body = issue_body(**data)
        return self.env["plane.webhook.delivery"].sudo().create({
            "delivery_id": str(uuid.uuid4()),
            "fingerprint": hashlib.sha256(body).hexdigest(),
            "event": "issue",
            "action": "created",
            "payload": body.decode(),
            "state": "received",
            "attempts": 0,
            "received_at": fields.Datetime.now(),
        })

    def _run(self, behaviour):
        model = type(self.env["plane.connector"])

        def hook(_self, event, action, payload):
            self.calls.append(payload["data"]["id"])
            return behaviour(_self, event, action, payload)

        with patch.object(model, "_plane_handle_event", autospec=True, side_effect=hook):
            return self.connector._cron_process_deliveries()

    def _make_due(self, row):
        row.write({"next_attempt_at": fields.Datetime.now() - dt.timedelta(minutes=1)})
        self.env.flush_all()

    def test_processed_exactly_once(self):
        row = self._row()
        self.assertEqual(self._run(lambda *a: True)["done"], 1)
        self.assertEqual((row.state, row.attempts), ("done", 1))
        self.assertTrue(row.processed_at)
        self.assertEqual(self._run(lambda *a: True)["done"], 0)
        self.assertEqual(len(self.calls), 1)

    def test_failure_path_attempts_error_dead_and_retry(self):
        row = self._row()

        def failing(_self, event, action, payload):
            # A write the failure must roll back, and a secret the error must not keep.
            _self.env["plane.project.link"].create({"name": "ghost", "plane_project_id": "p1"})
            raise RuntimeError(f"Plane said no (key {LEAKY_KEY})")

        self.assertEqual(self._run(failing)["failed"], 1)
        self.assertEqual((row.state, row.attempts), ("failed", 1))
        self.assertIn("RuntimeError: Plane said no", row.last_error)
        self.assertNotIn(LEAKY_KEY, row.last_error)
        self.assertGreater(row.next_attempt_at, fields.Datetime.now())
        self.assertFalse(self.env["plane.project.link"].search([("name", "=", "ghost")]))

        # Not due yet: the backoff holds it back.
        self.assertEqual(self._run(failing)["failed"], 0)
        self._make_due(row)
        self.assertEqual(self._run(failing)["failed"], 1)
        self.assertEqual(row.attempts, 2)
        self._make_due(row)
        with mute_logger("plane_connector.dedupe"):  # its ERROR line is the expected outcome
            self.assertEqual(self._run(failing)["dead"], 1)
        self.assertEqual((row.state, row.attempts), ("dead", 3))
        self.assertFalse(row.next_attempt_at)
        self.assertEqual(len(self.calls), 3)
        self._run(failing)
        self.assertEqual(len(self.calls), 3, "a dead delivery is not retried by the cron")

        row.action_retry()
        self.assertEqual((row.state, row.attempts), ("received", 0))
        self.assertEqual(self._run(lambda *a: True)["done"], 1)
        self.assertEqual(row.state, "done")
        self.assertFalse(row.last_error)

    def test_retry_ignores_done_rows(self):
        row = self._row()
        self._run(lambda *a: True)
        row.action_retry()
        self.assertEqual((row.state, row.attempts), ("done", 1))

    def test_v2_event_names_reach_the_hook_as_v1(self):
        row = self._row()
        row.sudo().write({"event": "workitem.updated", "action": "updated"})
        seen = []
        self._run(lambda _s, e, a, p: seen.append((e, a)) or True)
        self.assertEqual(seen, [("issue", "updated")])

    def test_old_done_rows_are_purged_pending_ones_kept(self):
        old_done, old_dead, recent = self._row(), self._row(), self._row()
        self._run(lambda *a: True)
        long_ago = fields.Datetime.now() - dt.timedelta(days=31)
        old_done.write({"received_at": long_ago})
        old_dead.write({"received_at": long_ago, "state": "dead"})
        self.env.flush_all()
        result = self._run(lambda *a: True)
        self.assertEqual(result["purged"], 1)
        self.assertFalse(old_done.exists())
        self.assertTrue(old_dead.exists() and recent.exists())
