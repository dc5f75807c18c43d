"""A Plane outage pauses the queue as a whole: one probe, no attempt used, tasks waiting, and
the queue drains at once when Plane answers again. An absurd Retry-After never breaks the
error path."""

import math
from unittest.mock import patch

from odoo.addons.ipai_plane_connector.exceptions import RateLimitError, TransportError
from odoo.addons.ipai_plane_connector.models.plane_connector import RETRY_CAP
from odoo.tests import tagged

from .common import ProjectSyncCase

CONNECTOR_LOGGER = "odoo.addons.ipai_plane_connector.models.plane_outage"


@tagged("post_install", "-at_install")
class TestPlaneOutage(ProjectSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.project._plane_link({"id": cls.emulator.project_id, "identifier": "ERP"})
        cls.env["plane.sync.job"]._cron_run_jobs()

    def setUp(self):
        super().setUp()
        self.skip_webhooks()
        self.Job = self.env["plane.sync.job"]

    def tasks(self, n):
        return self.env["project.task"].create(
            [{"name": f"Outage {i}", "project_id": self.project.id} for i in range(n)])

    def outage(self):
        self.env.cr.execute("SELECT failures, next_probe_at > (now() AT TIME ZONE 'UTC')"
                            " FROM plane_outage")
        return self.env.cr.fetchone()

    def probe_due(self):
        self.env.cr.execute("UPDATE plane_outage SET next_probe_at = now() AT TIME ZONE 'UTC'"
                            " - interval '1 second'")

    def go_down(self, kind="status"):
        return self.emulator.faults.add(kind=kind, status=502, count=None)

    def check_paused(self, tasks, fault):
        jobs = self.Job.search([("task_id", "in", tasks.ids)])
        self.assertEqual(set(jobs.mapped("state")), {"pending"})
        self.assertEqual(set(jobs.mapped("attempts")), {0}, "an outage uses no attempt")
        probes = jobs.filtered("last_error")
        self.assertEqual(len(probes), 1, "one job probes Plane; the others are not tried")
        self.assertIn("Waiting for Plane", probes.last_error)
        self.assertEqual(probes.task_id.plane_sync_state, "waiting")
        self.assertEqual(set((tasks - probes.task_id).mapped("plane_sync_state")), {"pending"})
        self.assertGreater(fault.hits, 0)
        return probes

    def test_an_outage_pauses_the_queue_and_it_drains_when_plane_is_back(self):
        for kind in ("status", "reset"):  # 502 from the proxy, then connections reset
            with self.subTest(kind=kind):
                tasks = self.tasks(5)
                fault = self.go_down(kind)
                with self.assertLogs(CONNECTOR_LOGGER, "WARNING") as logs:
                    report = self.Job._cron_run_jobs()
                self.assertEqual(report.get("paused"), 1)
                self.assertEqual(len(logs.records), 1, "one line per outage, not per job")
                self.check_paused(tasks, fault)
                failures, waiting = self.outage()
                self.assertEqual((failures, waiting), (1, True))
                # Until the probe is due, nothing is tried at all.
                hits = fault.hits
                self.assertEqual(self.Job._cron_run_jobs(), {"done": 0, "retry": 0, "dead": 0})
                self.assertEqual(fault.hits, hits)
                # Probes that fail push the next one further off (10, 20, then the 30 s cap
                # twice), still without attempts. Each probe is a real request with its
                # in-call retries (about 3 s of backoff): four show the curve and its cap.
                for probe in range(2, 6):
                    self.probe_due()
                    self.Job._cron_run_jobs()
                    self.assertEqual(self.outage()[0], probe)
                self.check_paused(tasks, fault)
                # Plane is back: the next probe gets through and the whole queue drains.
                self.emulator.faults.remove(fault)
                self.probe_due()
                report = self.Job._cron_run_jobs()
                self.assertEqual(report["done"], 5)
                self.assertIsNone(self.outage())
                self.assertEqual(set(tasks.mapped("plane_sync_state")), {"synced"})
                self.assertEqual([self.item(t)["name"] for t in tasks], tasks.mapped("name"))

    def test_a_passing_health_check_ends_the_outage_at_once(self):
        tasks = self.tasks(2)
        fault = self.go_down()
        self.Job._cron_run_jobs()
        self.assertIsNotNone(self.outage())
        self.emulator.faults.remove(fault)
        self.env["plane.health.check"]._plane_run_check()
        self.assertIsNone(self.outage())
        self.assertEqual(self.Job._cron_run_jobs()["done"], 2)
        self.assertEqual(set(tasks.mapped("plane_sync_state")), {"synced"})

    def test_an_ordinary_failure_is_still_a_failure(self):
        task = self.tasks(1)
        fault = self.emulator.faults.add(route_regex=r"/projects/", method="POST",
                                         kind="status", status=400, count=None)
        self.Job._cron_run_jobs()
        self.emulator.faults.remove(fault)
        job = self.Job.search([("task_id", "=", task.id)])
        self.assertEqual((job.state, job.attempts), ("pending", 1))
        self.assertEqual(task.plane_sync_state, "error")
        self.assertIsNone(self.outage())

    def test_deliveries_wait_for_plane_without_using_attempts(self):
        self.tasks(1)
        self.Job._cron_run_jobs()
        self.emulator.create_work_item("From Plane 1")
        self.emulator.create_work_item("From Plane 2")
        self.emulator.wait_webhooks_idle(10)
        new = self.sink.received[type(self).replayed:]
        type(self).replayed = len(self.sink.received)
        for headers, body in new:
            self.post_webhook(body, {k: v for k, v in headers.items()
                                     if k.lower().startswith("x-plane-")
                                     or k.lower() == "content-type"})
        Delivery = self.env["plane.webhook.delivery"]
        pending = Delivery.search([("state", "=", "received")])
        self.assertGreaterEqual(len(pending), 2)
        down = TransportError("error sending request: connection refused")
        with patch.object(type(self.connector), "_plane_dispatch", side_effect=down):
            report = self.connector._cron_process_deliveries()
        self.assertEqual((report["deferred"], report["failed"], report["dead"]), (1, 0, 0),
                         "the run stops at the first delivery that met the outage")
        pending.invalidate_recordset()
        self.assertEqual(set(pending.mapped("state")), {"received"})
        self.assertEqual(set(pending.mapped("attempts")), {0})
        self.assertIsNotNone(self.outage())
        self.probe_due()
        Delivery.search([]).write({"next_attempt_at": False})
        report = self.connector._cron_process_deliveries()
        self.assertGreaterEqual(report["done"], 2)

    def test_a_cut_database_connection_is_no_failure_of_the_job(self):
        import psycopg2

        task = self.tasks(1)
        cut = psycopg2.OperationalError("terminating connection due to administrator command")
        with patch.object(type(task), "_plane_push", side_effect=cut):
            report = self.Job._cron_run_jobs()
        self.assertEqual(report["retry"], 1)
        job = self.Job.search([("task_id", "=", task.id)])
        self.assertEqual((job.state, job.attempts), ("pending", 0))
        self.assertLessEqual((job.next_attempt_at - job.write_date).total_seconds(), 3)
        self.assertIsNone(self.outage(), "a database fault is not a Plane outage")
        job.next_attempt_at = job.write_date
        self.assertEqual(self.Job._cron_run_jobs()["done"], 1)
        self.assertEqual(task.plane_sync_state, "synced")

    def test_a_job_sent_back_while_a_twin_is_pending_is_superseded_not_a_violation(self):
        # A live run on Plane 1.0.0: a sweep step failed while a user's "Check now" had queued
        # the next sweep; putting the failed one back to pending broke the partial unique index.
        Job = self.Job.sudo()
        cut = TransportError("error sending request: connection refused")
        for path in ("paused", "fallback", "failed"):
            with self.subTest(path=path):
                running = Job.create({"project_id": self.project.id, "kind": "sweep",
                                      "state": "running", "attempts": 1,
                                      "plane_project_id": self.emulator.project_id})
                twin = Job.create({"project_id": self.project.id, "kind": "sweep",
                                   "state": "pending",
                                   "plane_project_id": self.emulator.project_id})
                self.env.flush_all()
                if path == "paused":
                    running._plane_paused(cut, "down", 5.0)
                elif path == "fallback":
                    self.assertEqual(Job._plane_fallback_retry(running.id, cut), "retry")
                else:
                    running._plane_failed(RuntimeError("boom"))
                self.env.flush_all()
                self.env.invalidate_all()
                outcome = (running.state, twin.state, running.last_error or "")
                (running | twin).unlink()
                self.assertEqual(outcome[:2], ("done", "pending"))
                self.assertIn("superseded", outcome[2])

    def test_an_absurd_retry_after_is_clamped(self):
        retry_delay = self.env["plane.connector"]._plane_retry_delay
        first = retry_delay(1)
        self.assertEqual([retry_delay(n) for n in (1, 2, 3)], [first, 2 * first, 4 * first])
        for asked in (3e11, 1e400, math.inf, math.nan, -5.0, None):
            with self.subTest(asked=asked):
                delay = retry_delay(1, RateLimitError("429", status=429, retry_after=asked))
                self.assertTrue(math.isfinite(delay))
                self.assertGreaterEqual(delay, first)
                self.assertLessEqual(delay, RETRY_CAP)
        self.assertEqual(retry_delay(1, RateLimitError("429", retry_after=3e11)), RETRY_CAP)
        self.assertEqual(retry_delay(40), RETRY_CAP)
        # Through the job's error path: the job is rescheduled, not left running.
        task = self.tasks(1)
        flood = RateLimitError("Plane answered 429", status=429, retry_after=3e11)
        with patch.object(type(task), "_plane_push", side_effect=flood):
            report = self.Job._cron_run_jobs()
        self.assertEqual(report["retry"], 1)
        job = self.Job.search([("task_id", "=", task.id)])
        self.assertEqual(job.state, "pending")
        self.assertLessEqual((job.next_attempt_at - job.write_date).total_seconds(),
                             RETRY_CAP + 1)
