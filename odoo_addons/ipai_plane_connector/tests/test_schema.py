"""The live schema: the unique constraints exist on this Odoo (19 ignores _sql_constraints)."""

import contextlib
import hashlib
import uuid

import psycopg2
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger
from plane_connector.dedupe import Delivery, PostgresDeliveryStore

from ..connections import _NoIsolationSwitch
from ..hooks import post_init_hook


@tagged("post_install", "-at_install")
class TestDeliverySchema(TransactionCase):
    def _unique_indexes(self):
        self.env.cr.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'plane_webhook_delivery'"
        )
        return dict(self.env.cr.fetchall())

    def test_unique_indexes_exist_in_the_live_schema(self):
        indexes = self._unique_indexes()
        for column in ("delivery_id", "fingerprint", "event_id"):
            name = f"plane_webhook_delivery_{column}_uniq"
            self.assertIn(name, indexes, f"no unique index {name}: {sorted(indexes)}")
            self.assertRegex(indexes[name], rf"CREATE UNIQUE INDEX .* \({column}\)")
        self.env.cr.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'plane_webhook_delivery'::regclass "
            "AND contype = 'u'"
        )
        self.assertEqual(
            {r[0] for r in self.env.cr.fetchall()},
            {"plane_webhook_delivery_delivery_id_uniq", "plane_webhook_delivery_fingerprint_uniq",
             "plane_webhook_delivery_event_id_uniq"},
        )

    def test_constraint_refuses_a_second_row(self):
        values = dict(delivery_id=str(uuid.uuid4()), fingerprint="f" * 64, event="issue",
                      action="created", payload="{}", state="received", attempts=0)
        self.env["plane.webhook.delivery"].create(values)
        self.env.flush_all()
        for key, other in (("delivery_id", {"fingerprint": "e" * 64}),
                           ("fingerprint", {"delivery_id": str(uuid.uuid4())})):
            with self.subTest(key=key), mute_logger("odoo.sql_db"), \
                    self.assertRaises(psycopg2.IntegrityError), self.env.cr.savepoint():
                self.env["plane.webhook.delivery"].create(dict(values, **other))
                self.env.flush_all()

    def test_no_database_defaults(self):
        # The wheel inserts with plain SQL and supplies every NOT NULL column itself.
        self.env.cr.execute(
            "SELECT column_name, is_nullable, column_default, data_type "
            "FROM information_schema.columns WHERE table_name = 'plane_webhook_delivery'"
        )
        columns = {r[0]: r[1:] for r in self.env.cr.fetchall()}
        for name in ("delivery_id", "fingerprint", "event", "action", "payload", "state",
                     "attempts", "received_at"):
            self.assertEqual(columns[name][0], "NO", name)
            self.assertIsNone(columns[name][1], name)
        self.assertEqual(columns["received_at"][2], "timestamp without time zone")
        self.assertEqual(columns["payload"][2], "text")
        self.assertEqual(columns["attempts"][2], "integer")

    def test_wheel_store_claims_into_the_odoo_table(self):
        cr = self.env.cr
        store = PostgresDeliveryStore(lambda: contextlib.nullcontext(_NoIsolationSwitch(cr)))
        body = b'{"event": "issue", "action": "created", "data": {"id": "1"}}'

        def delivery(delivery_id):
            return Delivery(delivery_id=delivery_id, event="issue", action="created",
                            fingerprint=hashlib.sha256(body).hexdigest(), body=body,
                            payload={"data": {"id": "1"}})

        first = str(uuid.uuid4())
        self.assertTrue(store.claim(delivery(first)).claimed)
        again = store.claim(delivery(first))
        self.assertEqual((again.claimed, again.duplicate_of), (False, "delivery_id"))
        retry = store.claim(delivery(str(uuid.uuid4())))
        self.assertEqual((retry.claimed, retry.duplicate_of), (False, "fingerprint"))
        row = self.env["plane.webhook.delivery"].search([("delivery_id", "=", first)])
        self.assertEqual((row.state, row.attempts, row.payload), ("received", 0, body.decode()))
        self.assertTrue(row.received_at)

    def test_default_base_url_set_at_install_and_never_overwritten(self):
        params = self.env["ir.config_parameter"].sudo()
        self.assertEqual(params.get_param("plane.base_url"), "https://api.plane.so")
        params.set_param("plane.base_url", "https://plane.example.com")
        post_init_hook(self.env)
        self.assertEqual(params.get_param("plane.base_url"), "https://plane.example.com")

    def test_settings_and_delivery_views_render(self):
        arch = self.env["res.config.settings"].get_views([(False, "form")])["views"]["form"]["arch"]
        for name in ("plane_base_url", "plane_workspace_slug", "plane_api_key_ref",
                     "plane_webhook_secret_ref", "action_plane_test_connection"):
            self.assertIn(name, arch)
        views = self.env["plane.webhook.delivery"].get_views([(False, "list"), (False, "form")])
        self.assertIn("action_retry", views["views"]["form"]["arch"])
