"""Two workers claiming the job queue at once, on real (committed) PostgreSQL transactions."""

import datetime as dt

from odoo import SUPERUSER_ID, api, fields
from odoo.tests import TransactionCase, tagged

from .common import CommittedJobs


@tagged("post_install", "-at_install")
class TestConcurrentClaims(CommittedJobs, TransactionCase):
    def setUp(self):
        super().setUp()
        # Rows committed outside the test transaction, so that two real transactions see them.
        self.ids = self.commit_jobs(10, work_item_prefix="claim-test-")

    def claim(self, cr, size):
        return api.Environment(cr, SUPERUSER_ID, {})["plane.sync.job"]._plane_claim(size)

    def test_two_workers_never_claim_the_same_job(self):
        with self.db.cursor() as cr_a, self.db.cursor() as cr_b:
            first = self.claim(cr_a, 6)  # A holds its rows locked (not committed yet)
            second = self.claim(cr_b, 10)  # B skips them instead of waiting
            self.assertEqual(len(first), 6)
            self.assertFalse(set(first) & set(second))
            self.assertEqual(sorted(first + second), self.ids)
            cr_b.commit()
            cr_a.commit()
        with self.db.cursor() as cr:
            cr.execute("SELECT DISTINCT state FROM plane_sync_job WHERE id = ANY(%s)",
                       (self.ids,))
            self.assertEqual(cr.fetchall(), [("running",)])
            self.assertEqual(self.claim(cr, 10), [], "a running job under lease is left alone")
            # A worker died: its lease ran out, so the jobs are claimed again.
            cr.execute("UPDATE plane_sync_job SET lease_until = %s WHERE id = ANY(%s)",
                       (fields.Datetime.now() - dt.timedelta(seconds=1), self.ids[:3]))
            self.assertEqual(self.claim(cr, 10), self.ids[:3])
