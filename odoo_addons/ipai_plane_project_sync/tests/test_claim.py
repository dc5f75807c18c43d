"""Workers claiming the job queue at once, on real (committed) PostgreSQL transactions, and a
worker that dies holding a job: its job is taken up again at once, not after a lease."""

import psycopg2
from odoo import SUPERUSER_ID, api
from odoo.sql_db import connection_info_for
from odoo.tests import TransactionCase, tagged

from ..models.plane_sync_job import LOCK_SPACE
from .common import CommittedJobs

# pg_locks is the whole cluster's: another database's Odoo (the other series, run side by side,
# or a live test) holds advisory locks in the same space.
THIS_DB = " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"


@tagged("post_install", "-at_install")
class TestConcurrentClaims(CommittedJobs, TransactionCase):
    def setUp(self):
        super().setUp()
        # Rows committed outside the test transaction, so that real transactions see them.
        self.ids = self.commit_jobs(10, work_item_prefix="claim-test-")

    def claim(self, cr, size):
        return api.Environment(cr, SUPERUSER_ID, {})["plane.sync.job"]._plane_claim(size)

    def worker(self):
        """A worker process's own connection (closing it is the worker dying)."""
        conn = psycopg2.connect(**connection_info_for(self.env.cr.dbname)[1])
        conn.autocommit = True
        self.addCleanup(lambda: conn.closed or conn.close())
        return conn

    def rows(self):
        with self.db.cursor() as cr:
            cr.execute("SELECT id, state, attempts FROM plane_sync_job WHERE id = ANY(%s)"
                       " ORDER BY id", (self.ids,))
            return cr.fetchall()

    def test_two_workers_never_claim_the_same_job(self):
        with self.db.cursor() as cr_a, self.db.cursor() as cr_b:
            first = self.claim(cr_a, 6)  # A holds its rows locked (not committed yet)
            second = self.claim(cr_b, 10)  # B skips them instead of waiting
            self.assertEqual(len(first), 6)
            self.assertFalse(set(first) & set(second))
            self.assertEqual(sorted(first + second), self.ids)
            cr_b.rollback()
            cr_a.rollback()

    def test_a_live_workers_job_is_left_alone_and_a_dead_ones_taken_up_at_once(self):
        # Two workers each run one job: the claim committed, the session lock held.
        alive, dead = self.worker(), self.worker()
        for conn, job_id in ((alive, self.ids[0]), (dead, self.ids[1])):
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_SPACE, job_id))
        with self.db.cursor() as cr:
            cr.execute("UPDATE plane_sync_job SET state = 'running', attempts = 1"
                       " WHERE id = ANY(%s)", (self.ids[:2],))
        with self.db.cursor() as cr:
            claimed = self.claim(cr, 10)
            cr.rollback()
        self.assertNotIn(self.ids[0], claimed)
        self.assertNotIn(self.ids[1], claimed, "a job whose worker lives is never taken")
        dead.close()  # kill -9, or its connection cut: PostgreSQL drops the session's locks
        with self.db.cursor() as cr:
            claimed = self.claim(cr, 10)
        self.assertIn(self.ids[1], claimed, "the dead worker's job is runnable at once")
        self.assertNotIn(self.ids[0], claimed)
        states = {row[0]: row[1:] for row in self.rows()}
        self.assertEqual(states[self.ids[1]], ("running", 1),
                         "taking a dead worker's job up again uses no attempt")
        self.assertEqual(states[self.ids[2]], ("running", 1))

    def test_the_cron_takes_up_a_dead_workers_whole_batch_at_once(self):
        # Archive jobs without a work item: nothing to send to Plane, each done at once.
        self.ids = self.commit_jobs(5)
        with self.db.cursor() as cr:
            # A batch claimed under a 10-minute lease by an old worker that died: nothing of it
            # waits for the lease.
            cr.execute("UPDATE plane_sync_job SET state = 'running', attempts = 1,"
                       " lease_until = now() + interval '10 minutes' WHERE id = ANY(%s)",
                       (self.ids,))
        report = self.env["plane.sync.job"]._cron_run_jobs()
        self.assertEqual(report["done"], len(self.ids))
        self.assertEqual({row[1:] for row in self.rows()}, {("done", 1)},
                         "no attempt used for the dead worker's claim")

    def test_the_cron_holds_the_lock_of_the_job_it_runs_and_releases_it(self):
        Job = self.env["plane.sync.job"]
        seen = []
        original = type(Job)._plane_execute

        def execute(job):
            # While the job runs, another session sees it locked (its worker is alive).
            with self.db.cursor() as cr:
                cr.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                           " AND classid = %s::oid AND objid = %s::oid AND granted" + THIS_DB,
                           (LOCK_SPACE, job.id))
                seen.append(cr.fetchone()[0])
            return original(job)

        with self.patch_execute(execute):
            Job._cron_run_jobs(limit=2)
        self.assertEqual(seen, [1, 1])
        with self.db.cursor() as cr:
            cr.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                       " AND classid = %s::oid" + THIS_DB, (LOCK_SPACE,))
            self.assertEqual(cr.fetchone()[0], 0, "no lock outlives its job")

    def patch_execute(self, fn):
        from unittest.mock import patch

        return patch.object(type(self.env["plane.sync.job"]), "_plane_execute", fn)
