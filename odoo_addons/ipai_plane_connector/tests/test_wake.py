"""Waking the processing cron on every accepted delivery: cheap, and never lost by Odoo 18.

The webhook route wakes the cron once per accepted delivery. Odoo's ``ir.cron._trigger()`` did
it by opening (and authenticating) a new connection to the ``postgres`` database after every
commit, most of the route's cost; and it stamps the trigger with the whole second, which Odoo 18
deletes at the end of a run that began later in that same second, leaving the delivery to the
cron's next regular call (five minutes on).
"""

import select
import time
from unittest.mock import patch

import psycopg2
from odoo.sql_db import db_connect
from odoo.tests import TransactionCase, tagged

CRON = "ipai_plane_connector.ir_cron_plane_process_deliveries"


@tagged("post_install", "-at_install")
class TestWakeCron(TransactionCase):
    def setUp(self):
        super().setUp()
        self.cron = self.env.ref(CRON)
        self.deliveries = self.env["plane.webhook.delivery"].sudo()

    def test_trigger_outlives_odoo18_cleanup_of_a_run_begun_the_same_second(self):
        # A cron run begins (Odoo 18 notes the moment, the start of its transaction) ...
        self.env.cr.execute("SELECT clock_timestamp() AT TIME ZONE 'UTC'")
        run_began = self.env.cr.fetchone()[0]
        # ... a delivery is accepted while it runs ...
        self.deliveries._plane_trigger_processing()
        # ... and the run ends by deleting the triggers stamped before it began.
        self.env.cr.execute("DELETE FROM ir_cron_trigger WHERE cron_id = %s AND call_at < %s",
                            (self.cron.id, run_began))
        self.env.cr.execute("SELECT count(*) FROM ir_cron_trigger WHERE cron_id = %s",
                            (self.cron.id,))
        self.assertEqual(self.env.cr.fetchone()[0], 1, "the new delivery's trigger was lost")

    def test_cron_workers_are_notified_without_a_new_connection_each_time(self):
        listener = db_connect("postgres").cursor()
        self.addCleanup(listener.close)
        listener.execute("LISTEN cron_trigger")
        listener.commit()
        connect = psycopg2.connect
        opened = []

        def counting_connect(*args, **kwargs):
            opened.append(kwargs.get("database") or kwargs.get("dsn"))
            return connect(*args, **kwargs)

        with patch.object(psycopg2, "connect", side_effect=counting_connect):
            for _ in range(5):
                self.deliveries._plane_trigger_processing()
                self.env.cr.postcommit.run()  # what the request's commit runs
        self.assertLessEqual(len(opened), 1, f"connections opened: {opened}")
        payloads = []
        deadline = time.monotonic() + 10
        while payloads.count(self.env.cr.dbname) < 5 and time.monotonic() < deadline:
            select.select([listener._cnx], [], [], 0.5)
            listener._cnx.poll()
            payloads += [n.payload for n in listener._cnx.notifies]
            listener._cnx.notifies.clear()
        self.assertEqual(payloads.count(self.env.cr.dbname), 5)

    def test_inactive_cron_is_not_woken(self):
        self.cron.active = False
        self.env.flush_all()
        self.deliveries._plane_trigger_processing()
        self.assertFalse(self.env["ir.cron.trigger"].sudo().search_count(
            [("cron_id", "=", self.cron.id)]))
