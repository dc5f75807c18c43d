"""A run of the job cron ends well inside the time Odoo allows a cron run.

A prefork Odoo kills a cron worker whose run outlasts --limit-time-real-cron (by default
--limit-time-real, 120 s). A back-fill paced by Plane's budget (60 requests a minute) lasts many
minutes, so one run must stop claiming in time, hand the jobs it claimed but did not start back
to the queue, and wake the cron to go on in a fresh run. Measured by a fake clock: no sleeping.
"""

from types import SimpleNamespace
from unittest.mock import patch

from odoo.tests import TransactionCase, tagged
from odoo.tools import config

from ..models import plane_sync_job
from .common import CommittedJobs

ODOO_LIMITS = {"limit_time_real": 120, "limit_time_real_cron": -1, "limit_time_cpu": 60}


class FakeClock:
    """``time.monotonic`` that moves on ``step`` seconds at every reading."""

    def __init__(self, step):
        self.now, self.step = 0.0, step

    def monotonic(self):
        self.now += self.step
        return self.now


@tagged("post_install", "-at_install")
class TestCronTimeBudget(CommittedJobs, TransactionCase):
    def setUp(self):
        super().setUp()
        # Archive jobs without a work item: nothing to send to Plane, each done at once.
        self.ids = self.commit_jobs(20)
        self.cron = self.env.ref("ipai_plane_project_sync.ir_cron_plane_sync_jobs")

    def _states(self):
        with self.db.cursor() as cr:
            cr.execute("SELECT state, attempts, lease_until FROM plane_sync_job"
                       " WHERE id = ANY(%s) ORDER BY id", (self.ids,))
            return cr.fetchall()

    def _triggers(self):
        return self.env["ir.cron.trigger"].sudo().search_count([("cron_id", "=", self.cron.id)])

    def test_budget_follows_odoo_cron_limits(self):
        budget = plane_sync_job.cron_time_budget
        with patch.dict(config.options, ODOO_LIMITS):
            # an eighth of 120 s: the cron worker's watchdog also counts its poll sleep
            self.assertEqual(budget(), 15)
        with patch.dict(config.options, dict(ODOO_LIMITS, limit_time_real_cron=300)):
            self.assertEqual(budget(), 15)  # the CPU limit (60 s) caps it too
        with patch.dict(config.options, dict(ODOO_LIMITS, limit_time_real_cron=40,
                                             limit_time_cpu=0)):
            self.assertEqual(budget(), 5)
        with patch.dict(config.options, {"limit_time_real": 0, "limit_time_real_cron": 0,
                                         "limit_time_cpu": 0}):
            self.assertEqual(budget(), plane_sync_job.DEFAULT_TIME_BUDGET)  # no limits

    def test_run_stops_in_time_and_hands_back_unstarted_jobs(self):
        triggers = self._triggers()
        clock = FakeClock(step=10.0)
        with patch.dict(config.options, ODOO_LIMITS), \
                patch.object(plane_sync_job, "time", SimpleNamespace(monotonic=clock.monotonic)):
            report = self.env["plane.sync.job"]._cron_run_jobs()
        self.assertGreater(report["done"], 0)
        self.assertLess(report["done"], 10, "kept claiming past an eighth of Odoo's 120 s")
        self.assertLessEqual(clock.now, 120 / 8 + 2 * clock.step)
        rows = self._states()
        done = [r for r in rows if r[0] == "done"]
        self.assertEqual(len(done), report["done"])
        # The rest were claimed with the batch but never started: back in the queue as they
        # were (no attempt used, no lease), claimable by the next run at once.
        self.assertEqual(set(rows) - set(done), {("pending", 0, None)})
        with self.db.cursor() as cr:
            claimable = self.env["plane.sync.job"].with_env(self.env(cr=cr))._plane_claim(50)
            cr.rollback()
        self.assertEqual(len(claimable), 20 - len(done))
        self.assertGreater(self._triggers(), triggers, "the cron did not wake itself")
