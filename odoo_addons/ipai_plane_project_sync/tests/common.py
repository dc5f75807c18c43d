"""A linked project on the Plane emulator, its webhooks captured and replayed into Odoo."""

from __future__ import annotations

import datetime as dt

from odoo import fields
from odoo.addons.ipai_plane_connector.caches import forget_clients
from odoo.addons.ipai_plane_connector.settings import (
    RATE_WINDOW,
    REQUESTS_PER_MINUTE,
)
from odoo.addons.ipai_plane_connector.tests.common import (
    TEST_WEBHOOK_SECRET,
    PlaneEmulatorCase,
    WebhookSink,
)
from odoo.sql_db import db_connect


class CommittedJobs:
    """Sync jobs committed outside the test transaction (a TransactionCase mixin), so that the
    real transactions of a claim or a cron run see them; deleted again at cleanup."""

    def commit_jobs(self, count: int, work_item_prefix: str | None = None) -> list[int]:
        """``count`` due archive jobs (with work items ``<prefix><n>`` or none); their ids."""
        self.db = db_connect(self.env.cr.dbname)
        past = fields.Datetime.now() - dt.timedelta(seconds=5)
        with self.db.cursor() as cr:
            cr.execute(
                "INSERT INTO plane_sync_job (kind, state, attempts, writes, next_attempt_at,"
                " work_item_id) SELECT 'archive', 'pending', 0, 1, %s, %s || g"
                " FROM generate_series(1, %s) g RETURNING id", (past, work_item_prefix, count))
            ids = sorted(r[0] for r in cr.fetchall())
        self.addCleanup(self._drop_jobs, ids)
        return ids

    def _drop_jobs(self, ids):
        with self.db.cursor() as cr:
            cr.execute("DELETE FROM plane_sync_job WHERE id = ANY(%s)", (ids,))


class ProjectSyncCase(PlaneEmulatorCase):
    """An Odoo project linked to the emulator's project, webhooks registered to a sink."""

    emulator_rate_limit = 600
    client_rate_limit = None  # None: the emulator's own limit
    time_scale = 1.0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.time_scale != 1.0:
            # A time-scaled emulator: its minute lasts less.
            cls._restart_emulator(time_scale=cls.time_scale)
        cls._install_client()
        cls.sink = WebhookSink()
        cls.addClassCleanup(cls.sink.close)
        cls.emulator.register_webhook(cls.sink.url, secret=TEST_WEBHOOK_SECRET)
        cls.replayed = 0
        env = cls.env
        cls.stages = env["project.task.type"].create([
            {"name": "New", "sequence": 1},
            {"name": "In Progress", "sequence": 2},
            {"name": "Done", "sequence": 3, "fold": True},
            {"name": "Cancelled", "sequence": 4, "fold": True},
        ])
        cls.project = env["project.project"].create({
            "name": "Odoo Sync Lab", "type_ids": [(6, 0, cls.stages.ids)],
        })

    @classmethod
    def _install_client(cls):
        """Point the connector's rate settings at this emulator's rate and time scale.

        The real configuration path builds the client (`plane.requests_per_minute`,
        `plane.rate_window`), with the shared PostgreSQL budget as in production.
        """
        forget_clients()
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param(REQUESTS_PER_MINUTE.param,
                         str(cls.client_rate_limit or cls.emulator_rate_limit))
        params.set_param(RATE_WINDOW.param, str(60.0 * cls.time_scale))
        cls.client = cls.env["plane.connector"]._plane_client()

    # -- helpers

    def link(self, project=None):
        project = project or self.project
        project._plane_link({"id": self.emulator.project_id, "identifier": "ERP"})
        self.run_jobs()
        return project

    def run_jobs(self, **kwargs):
        report = self.env["plane.sync.job"]._cron_run_jobs(**kwargs)
        self.env.invalidate_all()
        return report

    def deliver_webhooks(self):
        """Send Plane's webhooks so far through /plane/webhook, then process the deliveries."""
        self.emulator.wait_webhooks_idle(10)
        new = self.sink.received[type(self).replayed:]
        type(self).replayed = len(self.sink.received)
        for headers, body in new:
            response = self.post_webhook(body, {
                k: v for k, v in headers.items()
                if k.lower().startswith("x-plane-") or k.lower() == "content-type"
            })
            self.assertEqual(response.status_code, 200, response.text)
        self.connector._cron_process_deliveries(limit=1000)
        self.env.invalidate_all()
        return len(new)

    def skip_webhooks(self):
        """Drop the webhooks sent so far (e.g. those of the set-up)."""
        self.emulator.wait_webhooks_idle(10)
        type(self).replayed = len(self.sink.received)

    def requests(self, method=None, contains=""):
        return [r for r in self.emulator.requests
                if (method is None or r.method == method) and contains in r.path]

    def create_as_if_pushed(self, task, name=None):
        """Create the task's work item the way a push does, without the push's commit."""
        return self.client.create_idempotent(
            self.connector._plane_path("work_items", self.emulator.project_id),
            {"name": name or task.name, "external_id": f"project.task,{task.id}",
             "external_source": "odoo"})

    def items_of(self, task):
        """The emulator's work items carrying this task's external_id."""
        items = self.emulator.store.work_items[self.emulator.project_id].values()
        return [i for i in items if i.data["external_id"] == f"project.task,{task.id}"]

    def item(self, task):
        return self.emulator.work_item(task.plane_work_item_id)

    def state_group(self, item):
        states = self.emulator.store.states[item.get("project") or self.emulator.project_id]
        return states[item["state"]].data["group"]
