"""One push of a filing at a time: the push cron and the button never push one filing at once
(both would send the same requests, and the transaction that wrote the filing second failed with
"could not serialize access", which Odoo logged as an ERROR before retrying it).

Real transactions on filings committed outside the test's own (two cursors of the registry, as
two workers would have); both paths are decided before any request, so no Plane is needed."""

from odoo import SUPERUSER_ID, api
from odoo.exceptions import UserError
from odoo.sql_db import db_connect
from odoo.tests import TransactionCase, tagged
from psycopg2 import errors as pg_errors

SQL_LOGGER = "odoo.sql_db"


@tagged("post_install", "-at_install")
class TestPushLock(TransactionCase):
    def setUp(self):
        super().setUp()
        self.db = db_connect(self.env.cr.dbname)
        with self.db.cursor() as cr:
            cr.execute(
                "INSERT INTO bir_filing (form_code, period, due_date, state, plane_dirty, name)"
                " VALUES ('2550M', '2031-01', '2031-02-20', 'draft', true, 'BIR 2550M 2031-01'),"
                "        ('2550M', '2031-02', '2031-03-20', 'draft', true, 'BIR 2550M 2031-02')"
                " RETURNING id")
            self.ids = sorted(r[0] for r in cr.fetchall())
        self.addCleanup(self._drop)

    def _drop(self):
        with self.db.cursor() as cr:
            cr.execute("DELETE FROM bir_filing WHERE id = ANY(%s)", (self.ids,))

    def filings(self, cr):
        return api.Environment(cr, SUPERUSER_ID, {})["bir.filing"].browse(self.ids)

    def lock(self, cr, filing, from_button):
        return api.Environment(cr, SUPERUSER_ID, {})["plane.connector"]._plane_lock_for_push(
            filing, from_button)

    def lockable(self, cr):
        return [f.id for f in self.filings(cr) if self.lock(cr, f, from_button=False)]

    def test_the_cron_skips_a_filing_the_button_is_pushing(self):
        with self.db.cursor() as button, self.db.cursor() as cron:
            self.assertTrue(self.lock(button, self.filings(button)[0], from_button=True))
            with self.assertNoLogs(SQL_LOGGER, "ERROR"):
                self.assertEqual(self.lockable(cron), self.ids[1:])
            button.rollback()
            cron.rollback()

    def test_the_button_says_the_background_job_is_pushing_it(self):
        with self.db.cursor() as cron, self.db.cursor() as button:
            self.assertEqual(self.lockable(cron), self.ids)
            with self.assertNoLogs(SQL_LOGGER, "ERROR"), \
                    self.assertRaisesRegex(UserError, "being pushed to Plane by the background"):
                self.filings(button)[0].action_plane_sync()
            # The transaction is still usable: the failed lock was inside a savepoint.
            button.execute("SELECT count(*) FROM bir_filing WHERE id = ANY(%s)", (self.ids,))
            self.assertEqual(button.fetchone()[0], 2)
            button.rollback()
            cron.rollback()

    def test_a_filing_pushed_since_the_transaction_began_is_not_the_crons(self):
        with self.db.cursor() as cron, self.db.cursor() as button:
            cron.execute("SELECT count(*) FROM bir_filing")  # the cron's snapshot is taken
            button.execute("UPDATE bir_filing SET plane_dirty = false WHERE id = %s",
                           (self.ids[0],))
            button.commit()  # the button pushed it and committed
            with self.assertNoLogs(SQL_LOGGER, "ERROR"):
                self.assertEqual(self.lockable(cron), self.ids[1:])
            cron.rollback()

    def test_the_buttons_lost_race_is_left_to_odoos_retry_without_an_error_line(self):
        with self.db.cursor() as button, self.db.cursor() as cron:
            button.execute("SELECT count(*) FROM bir_filing")
            cron.execute("UPDATE bir_filing SET plane_dirty = false WHERE id = %s",
                         (self.ids[0],))
            cron.commit()
            # Raised as it is: Odoo retries such a request in a fresh transaction (INFO line).
            with self.assertNoLogs(SQL_LOGGER, "ERROR"), \
                    self.assertRaises(pg_errors.SerializationFailure):
                self.lock(button, self.filings(button)[0], from_button=True)
            button.rollback()
