"""Back-fill of 1,000 tasks within Plane's rate budget, resumed after a kill."""

import collections
import datetime as dt
import logging
import time

from odoo import fields
from odoo.tests import tagged

from .common import ProjectSyncCase

_log = logging.getLogger(__name__)

TASKS = 1000
PLANE_ITEMS = 250


@tagged("post_install", "-at_install")
class TestBackfill(ProjectSyncCase):
    # Plane allows 60 requests per (scaled) minute, a minute lasting 3 s here: slow enough that
    # the budget, not Odoo's own work per task, sets the pace. The client uses the full budget,
    # shared through PostgreSQL as in production.
    emulator_rate_limit = 60
    time_scale = 0.05

    def test_backfill_1000_tasks_within_budget_and_resume_after_kill(self):
        Task = self.env["project.task"].with_context(tracking_disable=True,
                                                    mail_create_nolog=True)
        Task.create([{"name": f"Task {i:04d}", "project_id": self.project.id}
                             for i in range(TASKS)])
        self.emulator.seed_work_items(PLANE_ITEMS)
        requests_before = len(self.emulator.requests)
        started = time.monotonic()

        self.project._plane_link({"id": self.emulator.project_id, "identifier": "ERP"})
        self.assertEqual(self.project.plane_backfill_state, "running")
        # One long run each (the production cron splits runs to stay inside Odoo's time limit
        # for a cron; that is tested in test_cron_budget): this test measures the pace.
        self.run_jobs(limit=400, time_budget=3600)
        self.assertEqual(self.project.plane_task_linked, 400)

        # The kill: a worker claimed the next job and its create reached Plane, then the
        # process died before committing. Its lease runs out; nothing else remembers it.
        Job = self.env["plane.sync.job"]
        with self.env.registry.cursor() as cr:
            claimed = Job.with_env(self.env(cr=cr))._plane_claim(1)
        victim = Job.browse(claimed)
        self.assertEqual(victim.kind, "push")
        self.create_as_if_pushed(victim.task_id)
        victim.lease_until = fields.Datetime.now() - dt.timedelta(seconds=1)
        self.env.flush_all()

        self.run_jobs(time_budget=3600)
        elapsed = time.monotonic() - started
        self.env.invalidate_all()

        items = self.emulator.store.work_items[self.emulator.project_id].values()
        ours = [i for i in items if i.data["external_source"] == "odoo"]
        self.assertEqual(len(ours), TASKS, "one work item per task, no duplicate")
        self.assertEqual(len({i.data["external_id"] for i in ours}), TASKS)
        self.assertEqual(len(items), TASKS + PLANE_ITEMS)
        self.assertEqual(self.project.plane_backfill_state, "done")
        self.assertEqual(self.project.plane_backfill_imported, PLANE_ITEMS)
        all_tasks = Task.search([("project_id", "=", self.project.id)])
        self.assertEqual(len(all_tasks), TASKS + PLANE_ITEMS)
        self.assertEqual(len(set(all_tasks.mapped("plane_work_item_id"))), TASKS + PLANE_ITEMS)
        self.assertFalse(Job.search([("state", "!=", "done")]))
        self.assertEqual(self.project.plane_progress, 100.0)

        sent = self.emulator.requests[requests_before:]
        self.assertEqual([r for r in sent if r.status == 429], [], "no 429 from Plane")
        self.assertEqual(self.client.stats["rate_limited"], 0)
        window = 60.0 * self.time_scale
        budget = self.emulator_rate_limit
        floor = (len(sent) - budget) * window / budget
        kinds = collections.Counter(
            f"{r.method} {r.path.rstrip('/').rsplit('/', 2)[-2 if r.method != 'POST' else -1]}"
            for r in sent)
        _log.info("back-fill: %s requests in %.1fs (budget floor %.1fs): %s; client %s",
                  len(sent), elapsed, floor, dict(kinds), self.client.stats)
        self.assertGreaterEqual(elapsed, floor * 0.95, "faster than the budget allows")
        self.assertLessEqual(elapsed, floor * 1.5 + 5, "far slower than the budget")
