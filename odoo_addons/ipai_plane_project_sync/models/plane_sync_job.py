"""``plane.sync.job``: the durable outbound queue (Odoo -> Plane) and the back-fill steps.

A task write inserts (or coalesces into) one *pending* job in the user's own transaction, so the
job commits and rolls back with the write, and nothing talks to Plane inside that transaction.
A cron claims due jobs with ``FOR UPDATE SKIP LOCKED`` in a short committed transaction that
marks them *running* under a lease, then works each one in its own transaction. While a job
runs, a new write makes a new pending job (the partial unique index only covers pending rows),
so no write is ever folded into a push that read the task before it. A worker killed mid-job
leaves a running row whose lease expires; the next run takes it again, and the push is safe to
repeat (PATCH is idempotent, and a create carries ``external_id`` so Plane answers a repeat
with the existing work item).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from odoo import api, fields, models
from odoo.addons.ipai_plane_connector import plane_runtime as rt

_log = logging.getLogger(__name__)

try:
    from plane_connector import NotFoundError, PlaneError, RateLimitError
except ImportError:  # pragma: no cover - external_dependencies stops the install first
    PlaneError = NotFoundError = RateLimitError = Exception

JOB_STATES = [
    ("pending", "Pending"),
    ("running", "Running"),
    ("done", "Done"),
    ("dead", "Failed (gave up)"),
]
JOB_KINDS = [
    ("push", "Push task"),
    ("archive", "Archive work item"),
    ("comment", "Send chatter to Plane"),
    ("backfill", "Back-fill from Plane"),
    ("project", "Rename the Plane project"),
    ("sweep", "Look for work items deleted in Plane"),
]
#: Job kinds about a whole project (no task): at most one pending per project and kind.
PROJECT_KINDS = ("backfill", "project", "sweep")
PARAM_MAX_ATTEMPTS = "plane.project_sync.max_attempts"
PARAM_LEASE = "plane.project_sync.lease_seconds"
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_LEASE = 600
#: What a job acts on: set by the queue (SQL or sudo) only, never by a user's write, since a
#: job runs as superuser and its ids become request paths.
SYNC_FIELDS = frozenset({"task_id", "project_id", "kind", "plane_project_id", "work_item_id"})
#: Backoff after the n-th failed attempt: 30 s, 1 min, 2 min, ... capped at 1 h.
BACKOFF_BASE = 30
BACKOFF_CAP = 3600
#: Longest run of the job cron when Odoo sets no time limit (see cron_time_budget).
DEFAULT_TIME_BUDGET = 240.0

_ENQUEUE_SQL = """
    INSERT INTO plane_sync_job (task_id, project_id, kind, plane_project_id, work_item_id, state,
                                attempts, writes, next_attempt_at, create_uid, create_date,
                                write_uid, write_date)
    SELECT t.id, t.project_id, %(kind)s, p.plane_project_id,
           COALESCE(%(work_item_id)s, t.plane_work_item_id), 'pending', 0, 1, %(now)s, %(uid)s,
           %(now)s, %(uid)s, %(now)s
      FROM project_task t JOIN project_project p ON p.id = t.project_id
     WHERE t.id = ANY(%(ids)s) AND p.plane_project_id IS NOT NULL
    ON CONFLICT (task_id, kind) WHERE state = 'pending'
    DO UPDATE SET writes = plane_sync_job.writes + 1, write_date = EXCLUDED.write_date,
                  -- a push goes to the task's project as it is now (it may have moved); an
                  -- archive stays with the work item it was queued for
                  project_id = CASE WHEN plane_sync_job.kind = 'push' THEN EXCLUDED.project_id
                                    ELSE plane_sync_job.project_id END,
                  plane_project_id = CASE WHEN plane_sync_job.kind = 'push'
                                          THEN EXCLUDED.plane_project_id
                                          ELSE plane_sync_job.plane_project_id END
"""


class PlaneSyncJob(models.Model):
    _name = "plane.sync.job"
    _inherit = ["plane.sync.guard"]
    _description = "Plane sync job"
    _plane_sync_fields = SYNC_FIELDS
    _order = "id desc"

    task_id = fields.Many2one("project.task", ondelete="set null", index=True, readonly=True)
    project_id = fields.Many2one("project.project", ondelete="cascade", index=True,
                                 readonly=True)
    kind = fields.Selection(JOB_KINDS, required=True, readonly=True)
    plane_project_id = fields.Char(readonly=True)
    work_item_id = fields.Char(readonly=True, help="Kept so a deleted task can still archive it")
    state = fields.Selection(JOB_STATES, required=True, default="pending", readonly=True,
                             index=True)
    attempts = fields.Integer(required=True, default=0, readonly=True)
    writes = fields.Integer(required=True, default=1, readonly=True,
                            help="Odoo writes coalesced into this job")
    next_attempt_at = fields.Datetime(required=True, default=fields.Datetime.now, readonly=True)
    lease_until = fields.Datetime(readonly=True)
    last_error = fields.Text(readonly=True)
    done_at = fields.Datetime(readonly=True)

    def init(self):
        cr = self.env.cr
        # One pending job per (task, kind): the coalescing point of ON CONFLICT.
        cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS plane_sync_job_pending_uniq "
            "ON plane_sync_job (task_id, kind) WHERE state = 'pending'"
        )
        for kind in PROJECT_KINDS:
            cr.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS plane_sync_job_{kind}_uniq "
                f"ON plane_sync_job (project_id) WHERE state = 'pending' AND kind = '{kind}'"
            )
        cr.execute(
            "CREATE INDEX IF NOT EXISTS plane_sync_job_due_idx ON plane_sync_job "
            "(next_attempt_at, id) WHERE state IN ('pending', 'running')"
        )

    # -- enqueue (runs inside the user's transaction: SQL only, no HTTP)

    @api.model
    def _plane_enqueue(self, tasks, kind: str = "push", work_item_id: str | None = None) -> None:
        """Queue (or coalesce into) one pending job per task of a linked project."""
        if not tasks:
            return
        tasks.flush_recordset()
        self.env["project.project"].flush_model(["plane_project_id"])
        self.env.cr.execute(_ENQUEUE_SQL, {
            "kind": kind, "work_item_id": work_item_id, "now": fields.Datetime.now(),
            "uid": self.env.uid, "ids": list(tasks.ids),
        })
        self.invalidate_model()
        self._plane_wake()

    @api.model
    def _plane_enqueue_retire(self, project, plane_project_id: str, work_item_id: str) -> None:
        """Queue the cancellation of a work item no task is linked to any more: a moved task's.

        No task on the job: the task now belongs to another project, and its own pending jobs
        (one per kind) must not coalesce with this one, which is about the old work item."""
        self.create({
            "project_id": project.id, "kind": "archive", "plane_project_id": plane_project_id,
            "work_item_id": work_item_id, "state": "pending",
            "next_attempt_at": fields.Datetime.now(),
        })
        self._plane_wake()

    @api.model
    def _plane_enqueue_backfill(self, project) -> None:
        self._plane_enqueue_project_job(project, "backfill")

    @api.model
    def _plane_enqueue_project_job(self, project, kind: str) -> bool:
        """Queue one job about a whole project (back-fill, rename, deletion check), unless
        one of that kind is already pending; True when one was queued."""
        if kind not in PROJECT_KINDS:
            raise ValueError(kind)
        project.flush_recordset()
        now = fields.Datetime.now()
        # kind is one of PROJECT_KINDS (checked above): the index predicate must be literal.
        self.env.cr.execute(
            f"""
            INSERT INTO plane_sync_job (project_id, kind, plane_project_id, state, attempts,
                                        writes, next_attempt_at, create_uid, create_date,
                                        write_uid, write_date)
            VALUES (%s, %s, %s, 'pending', 0, 1, %s, %s, %s, %s, %s)
            ON CONFLICT (project_id) WHERE state = 'pending' AND kind = '{kind}' DO NOTHING
            """,  # noqa: S608
            (project.id, kind, project.plane_project_id, now, self.env.uid, now, self.env.uid,
             now),
        )
        queued = self.env.cr.rowcount == 1
        self.invalidate_model()
        self._plane_wake()
        return queued

    @api.model
    def _plane_wake(self) -> None:
        """Run the job cron as soon as a worker is free, once this transaction commits."""
        rt.wake_cron(self.env, "ipai_plane_project_sync.ir_cron_plane_sync_jobs")

    # -- the worker

    @api.model
    def _cron_run_jobs(self, limit: int | None = None, batch: int = 20,
                       time_budget: float | None = None) -> dict:
        """Claim and run due jobs until none is due, ``limit`` ran, or the time is up.

        ``time_budget`` (seconds) defaults to :func:`cron_time_budget`: a run must end well
        inside the time Odoo allows a cron run, or Odoo kills the worker in the middle of a job
        (whose lease then holds it for ``lease_seconds``). When the time is up, the jobs claimed
        but not started go back to the queue and the cron wakes itself to go on at once.
        """
        self.env.flush_all()
        registry = self.env.registry
        if time_budget is None:
            time_budget = cron_time_budget()
        started = time.monotonic()
        report = {"done": 0, "retry": 0, "dead": 0}
        ran = 0
        out_of_time = False
        while (limit is None or ran < limit) and not out_of_time:
            size = batch if limit is None else min(batch, limit - ran)
            with registry.cursor() as cr:
                ids = self.with_env(self.env(cr=cr))._plane_claim(size)
            if not ids:
                break
            _log.debug("Plane sync jobs claimed: %s", ids)
            for i, job_id in enumerate(ids):
                if time.monotonic() - started > time_budget:
                    out_of_time = True
                    with registry.cursor() as cr:
                        self.with_env(self.env(cr=cr))._plane_release(ids[i:])
                    break
                with registry.cursor() as cr:
                    env = self.env(cr=cr)
                    outcome = self.with_env(env).browse(job_id)._plane_run()
                    # Odoo's test cursors do not flush on commit: be explicit everywhere.
                    env.flush_all()
                _log.debug("Plane sync job %s: %s", job_id, outcome)
                report[outcome] = report.get(outcome, 0) + 1
                ran += 1
        if out_of_time:
            self._plane_wake()  # more may be due: come back right away, in a fresh run
        self.env.invalidate_all()
        if ran:
            _log.info("Plane sync jobs: %s", report)
        return report

    @api.model
    def _plane_release(self, ids: list[int]) -> None:
        """Put claimed jobs that did not start back in the queue, as if never claimed."""
        self.env.cr.execute(
            "UPDATE plane_sync_job SET state = 'pending', attempts = attempts - 1,"
            " lease_until = NULL WHERE id = ANY(%s) AND state = 'running'",
            (list(ids),),
        )

    @api.model
    def _plane_claim(self, size: int) -> list[int]:
        params = self.env["ir.config_parameter"].sudo()
        lease = int(params.get_param(PARAM_LEASE, DEFAULT_LEASE))
        # With microseconds: fields.Datetime.now() truncates, which would leave a job due
        # "now" waiting for the next second.
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        self.env.cr.execute(
            """
            UPDATE plane_sync_job SET state = 'running', attempts = attempts + 1,
                   lease_until = %(lease)s, write_date = %(now)s
             WHERE id IN (
                   SELECT id FROM plane_sync_job
                    WHERE (state = 'pending' AND next_attempt_at <= %(now)s)
                       OR (state = 'running' AND lease_until < %(now)s)
                    ORDER BY next_attempt_at, id
                    LIMIT %(size)s
                      FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            {"now": now, "lease": now + dt.timedelta(seconds=lease), "size": size},
        )
        return sorted(row[0] for row in self.env.cr.fetchall())

    def _plane_run(self) -> str:
        """Run one claimed job in the current transaction; returns done/retry/dead."""
        self.ensure_one()
        job = self.sudo()
        try:
            with self.env.cr.savepoint():
                more = job._plane_execute()
                self.env.flush_all()
        except Exception as exc:  # noqa: BLE001 - kept on the job and the task, retried
            self.env.invalidate_all()
            return job._plane_failed(exc)
        job.write({"state": "done", "done_at": fields.Datetime.now(), "last_error": False})
        if more:
            # One page (or batch) per run: the next one is the next job, so a kill loses one
            # page at most and the cursor saved with this one is where it resumes.
            self._plane_enqueue_project_job(job.project_id, job.kind)
        return "done"

    def _plane_execute(self) -> bool:
        """Do the job's work; True when a project job has more steps to come."""
        if self.kind == "backfill":
            self.project_id._plane_backfill_page()
            return self.project_id.plane_backfill_state == "running"
        if self.kind == "sweep":
            return self.project_id._plane_sweep_step()
        if self.kind == "project":
            self.project_id._plane_push_project()
            return False
        task = self.task_id.with_context(active_test=False)
        if self.kind == "archive":
            self.env["project.task"]._plane_archive_work_item(
                self.plane_project_id, self.work_item_id, task, project=self.project_id
            )
            return False
        if task and self.kind == "comment":
            task._plane_push_comments()
        elif task:
            task._plane_push()
        return False

    def _plane_failed(self, exc: Exception) -> str:
        message = _describe(exc)
        params = self.env["ir.config_parameter"].sudo()
        max_attempts = int(params.get_param(PARAM_MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS))
        if self.task_id:
            self.task_id._plane_mark_error(message)
        if self.attempts >= max_attempts:
            self.write({"state": "dead", "last_error": message, "done_at": fields.Datetime.now()})
            _log.error("Plane sync job %s (%s) gave up after %s attempts: %s", self.id,
                       self.kind, self.attempts, message)
            return "dead"
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, self.attempts - 1))
        if isinstance(exc, RateLimitError) and getattr(exc, "retry_after", None):
            delay = max(delay, float(exc.retry_after))
        values = {
            "last_error": message,
            "next_attempt_at": fields.Datetime.now() + dt.timedelta(seconds=delay),
        }
        if self._plane_has_pending_twin():
            # A write made while this job ran queued a fresh job: that one pushes the latest
            # values and inherits the error so the failure stays visible.
            twin = self._plane_pending_twin()
            twin.write({"last_error": message, "attempts": max(twin.attempts, self.attempts)})
            self.write({"state": "done", "last_error": f"superseded by job {twin.id}: {message}",
                        "done_at": fields.Datetime.now()})
        else:
            self.write(dict(values, state="pending"))
        _log.warning("Plane sync job %s (%s) failed (attempt %s), retry in %ss: %s", self.id,
                     self.kind, self.attempts, delay, message)
        return "retry"

    def _plane_pending_twin(self):
        if self.kind in PROJECT_KINDS:
            domain = [("project_id", "=", self.project_id.id)]
        else:
            domain = [("task_id", "=", self.task_id.id)] if self.task_id else [("id", "=", 0)]
        return self.search(domain + [("kind", "=", self.kind), ("state", "=", "pending"),
                                     ("id", "!=", self.id)], limit=1)

    def _plane_has_pending_twin(self) -> bool:
        return bool(self._plane_pending_twin())

    # -- UI

    def action_retry(self):
        """Put failed jobs back in the queue now (attempts reset)."""
        self.env["plane.connector"]._plane_check_rights(self, "write")
        for job in self.filtered(lambda j: j.state == "dead"):
            if job._plane_has_pending_twin():
                job.write({"state": "done"})
                continue
            job.write({"state": "pending", "attempts": 0,
                       "next_attempt_at": fields.Datetime.now()})
        self._plane_wake()
        return True


def cron_time_budget(default: float = DEFAULT_TIME_BUDGET) -> float:
    """Seconds one run of the job cron may go on claiming jobs on this server.

    Odoo stops a cron run that lasts longer than ``--limit-time-real-cron`` (by default
    ``--limit-time-real``, 120 s; a prefork server kills the cron worker) or uses more than
    ``--limit-time-cpu`` of CPU (60 s). After the budget, the job already started still
    runs, and it may wait a whole rate window for Plane's budget (60 s): hence a quarter of
    the real-time limit, and half the CPU limit.
    """
    from odoo.tools import config

    budget = default
    real = config.get("limit_time_real_cron")
    if real is None or real < 0:
        real = config.get("limit_time_real")
    if real and real > 0:
        budget = min(budget, real / 4)
    cpu = config.get("limit_time_cpu")
    if cpu and cpu > 0:
        budget = min(budget, cpu / 2)
    return budget


def _describe(exc: Exception) -> str:
    """A one-line reason for the job and the task, redacted."""
    if isinstance(exc, NotFoundError):
        text = f"Plane: not found ({exc})"
    elif isinstance(exc, PlaneError):
        text = f"Plane: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    # Any exception text may carry a secret (a handler quoting a key, a driver echoing a DSN):
    # it is stored on the job and the task, both readable by project users.
    return rt.redact(text)[:2000]
