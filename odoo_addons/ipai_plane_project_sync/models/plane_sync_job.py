"""``plane.sync.job``: the durable outbound queue (Odoo -> Plane) and the back-fill steps.

A task write inserts (or coalesces into) one *pending* job in the user's own transaction, so the
job commits and rolls back with the write, and nothing talks to Plane inside that transaction.
The cron claims ONE due job at a time: a short committed READ COMMITTED transaction marks it
*running*, after the worker's own job connection has taken a session advisory lock on it. The
job then runs in that connection's transaction, and the lock is released once its outcome is
committed. While a job runs, a new write makes a new pending job (the partial unique index only
covers pending rows), so no write is ever folded into a push that read the task before it.

A worker killed at any instruction, or whose database connection is cut, loses its session and
so its lock at once: a *running* row whose lock nobody holds is claimed again by the next run,
without counting an attempt, and the push is safe to repeat (PATCH is idempotent, and a create
carries ``external_id`` so Plane answers a repeat with the existing work item). No lease to wait
out, and nothing else claimed with it: the cost of a kill is the job that was running.

When Plane is unreachable (502/503/504, refused or reset connections) the queue pauses as a
whole (``plane.connector._plane_outage_*``): the failing job goes back without using an attempt,
its task shows "Waiting for Plane", and the next job is tried only at the next probe time.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from odoo import api, fields, models
from odoo.addons.ipai_plane_connector.crons import wake_cron
from odoo.tools import config

_log = logging.getLogger(__name__)


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
DEFAULT_MAX_ATTEMPTS = 8
#: First key of the session advisory locks "a live worker runs job <id>" (the second is the id).
LOCK_SPACE = 0x706C6A62  # "pljb"
#: A run with nothing due waits in place for work due within this many seconds (a backoff, an
#: outage probe) rather than leaving it to Odoo's next cron poll, up to a minute later.
NAP_HORIZON = 30.0
#: What a job acts on: set by the queue (SQL or sudo) only, never by a user's write, since a
#: job runs as superuser and its ids become request paths.
SYNC_FIELDS = frozenset({"task_id", "project_id", "kind", "plane_project_id", "work_item_id"})
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
        try:
            # In a REPEATABLE READ transaction (a cron run, a request) a pending twin committed
            # by another transaction after this one's snapshot (a user's "Check now" while the
            # cron's sweep step queues its next step) is a serialization failure, not a
            # conflict DO NOTHING absorbs. Either way one is queued: the other transaction's.
            with self.env.cr.savepoint(), _quiet_sql():
                # kind is one of PROJECT_KINDS (checked above): the index predicate is literal.
                self.env.cr.execute(
                    f"""
                    INSERT INTO plane_sync_job (project_id, kind, plane_project_id, state,
                                                attempts, writes, next_attempt_at, create_uid,
                                                create_date, write_uid, write_date)
                    VALUES (%s, %s, %s, 'pending', 0, 1, %s, %s, %s, %s, %s)
                    ON CONFLICT (project_id) WHERE state = 'pending' AND kind = '{kind}'
                    DO NOTHING
                    """,  # noqa: S608
                    (project.id, kind, project.plane_project_id, now, self.env.uid, now,
                     self.env.uid, now),
                )
                queued = self.env.cr.rowcount == 1
        except (_errors().SerializationFailure, _errors().UniqueViolation):
            queued = False
        self.invalidate_model()
        self._plane_wake()
        return queued

    @api.model
    def _plane_wake(self, after: float = 0.0) -> None:
        """Run the job cron as soon as a worker is free (or ``after`` seconds from now), once
        this transaction commits."""
        wake_cron(self.env, "ipai_plane_project_sync.ir_cron_plane_sync_jobs", after=after)

    # -- the worker

    @api.model
    def _cron_run_jobs(self, limit: int | None = None, batch: int = 1,
                       time_budget: float | None = None, nap: bool | None = None) -> dict:
        """Claim and run due jobs, one at a time, until none is due, ``limit`` ran, or the
        time is up.

        ``time_budget`` (seconds) defaults to :func:`cron_time_budget`: a run must end well
        inside the time Odoo allows a cron run, or Odoo kills the worker in the middle of a job.
        When the time is up with work left, the cron wakes itself to go on at once in a fresh
        run. ``nap`` (default: outside of tests) lets a run with nothing due wait in place for
        work due within :data:`NAP_HORIZON` (a backoff ending, the next probe of a Plane that is
        down), chaining fresh runs past its budget; work due later is left to a cron trigger at
        its due time. ``batch`` is ignored (jobs are claimed one by one, so no job waits behind
        a dead worker's claim).
        """
        self.env.flush_all()
        connector = self.env["plane.connector"].sudo()
        if time_budget is None:
            time_budget = cron_time_budget()
        if nap is None:
            nap = not config["test_enable"]
        started = time.monotonic()
        report = {"done": 0, "retry": 0, "dead": 0}
        ran = 0
        skip: list[int] = []
        while limit is None or ran < limit:
            left = time_budget - (time.monotonic() - started)
            if left <= 0:
                self._plane_wake()  # more may be due: come back right away, in a fresh run
                break
            wait = connector._plane_outage_wait()
            if wait is None or wait <= 0:
                # With an outage recorded, this job is the probe: one request, not one per job.
                outcome = self._plane_claim_and_run(report, skip)
                if outcome:
                    ran += 1
                    if wait is not None and outcome != "paused":
                        connector._plane_outage_clear()  # Plane answered: drain at full speed
                    continue
                wait = self._plane_next_due()
                if wait is None:
                    break  # nothing queued at all
            if not (nap and wait <= NAP_HORIZON):
                self._plane_wake(after=wait)
                break
            if wait > left:
                # Due soon, but after this run's budget: a fresh run at once goes on napping.
                # A future trigger would wait for the cron workers' next poll (up to 70 s);
                # each run in the chain lets the worker ping its watchdog.
                self._plane_wake()
                break
            # Short steps: a job queued meanwhile (or the outage cleared by a health check)
            # is taken up within a second.
            time.sleep(min(1.0, max(0.05, wait)))
        self.env.invalidate_all()
        if ran:
            _log.info("Plane sync jobs: %s", report)
        return report

    def _plane_claim_and_run(self, report: dict, skip: list[int]) -> str | None:
        """Claim one due job, run it, record its outcome in ``report``; the outcome (done,
        retry, dead, paused), or None when no job was due."""
        registry = self.env.registry
        # The job's own connection: it holds the advisory lock from before the claim commits
        # until after the outcome does, so a claimed job is never without a live holder.
        with registry.cursor() as cr:
            env = self.env(cr=cr)
            job_id = self.with_env(env)._plane_claim_one(skip)
            if job_id is None:
                return None
            try:
                outcome = self._plane_run_claimed(env, job_id)
            finally:
                _unlock(cr, job_id)
        _log.debug("Plane sync job %s: %s", job_id, outcome)
        report[outcome] = report.get(outcome, 0) + 1
        return outcome

    def _plane_run_claimed(self, env, job_id: int) -> str:
        cr = env.cr
        try:
            outcome = self.with_env(env).browse(job_id)._plane_run()
            # Odoo's test cursors do not flush on commit: be explicit everywhere.
            env.flush_all()
            cr.commit()
        except Exception as exc:
            if _connection_lost(cr):
                raise  # the database went away: the lock went with it, the job is claimable
            # The outcome could not be written (a serialization failure at commit, a bug in
            # the error path): roll back and record a plain retry, counting the attempt, so a
            # job that always breaks here still ends as dead rather than loop.
            cr.rollback()
            env.invalidate_all()
            _log.warning("Plane sync job %s: its outcome could not be saved (%s): retried later",
                         job_id, type(exc).__name__)
            outcome = self.with_env(env)._plane_fallback_retry(job_id, exc)
            cr.commit()
        return outcome

    @api.model
    def _plane_fallback_retry(self, job_id: int, exc: Exception) -> str:
        connector = self.env["plane.connector"]
        params = self.env["ir.config_parameter"].sudo()
        max_attempts = int(params.get_param(PARAM_MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS))
        # A pending twin queued meanwhile takes over (one pending per task or project and kind).
        self.env.cr.execute(
            "WITH o AS (SELECT j.id, CASE WHEN j.attempts >= %(max)s THEN 'dead'"
            "   WHEN EXISTS (SELECT 1 FROM plane_sync_job t WHERE t.state = 'pending'"
            "     AND t.kind = j.kind AND t.id <> j.id AND ((j.task_id IS NOT NULL"
            "     AND t.task_id = j.task_id) OR (j.task_id IS NULL AND t.task_id IS NULL"
            "     AND t.project_id = j.project_id))) THEN 'done'"
            "   ELSE 'pending' END AS state FROM plane_sync_job j WHERE j.id = %(id)s)"
            " UPDATE plane_sync_job j SET state = o.state, next_attempt_at = %(at)s,"
            " last_error = CASE WHEN o.state = 'done'"
            "   THEN 'superseded by a pending job: ' || %(err)s ELSE %(err)s END"
            " FROM o WHERE j.id = o.id AND j.state = 'running' RETURNING j.state",
            {"max": max_attempts, "err": connector._plane_describe_error(exc), "id": job_id,
             "at": fields.Datetime.now() + dt.timedelta(seconds=connector._plane_retry_delay(1))},
        )
        row = self.env.cr.fetchone()
        return "dead" if row and row[0] == "dead" else "retry"

    @api.model
    def _plane_claim_one(self, skip: list[int]) -> int | None:
        """Claim the next due job for this cursor's connection, or None.

        The candidate is row-locked in a short READ COMMITTED transaction of its own; this
        cursor's session then takes the job's advisory lock and ends its transaction (the lock
        stays: it is the session's), and only then is the claim committed. The caller runs the
        job in this cursor's next transaction, whose snapshot sees the claim.
        """
        lock_cr = self.env.cr
        registry = self.env.registry
        while True:
            with registry.cursor() as claim_cr:
                if type(claim_cr).__name__ != "TestCursor":  # a test cursor is a savepoint
                    claim_cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                row = self.with_env(self.env(cr=claim_cr))._plane_pick(skip)
                if row is None:
                    return None
                job_id, state = row
                lock_cr.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, job_id))
                if not lock_cr.fetchone()[0]:
                    # Its last worker is between committing its outcome and unlocking: not ours.
                    lock_cr.rollback()
                    skip.append(job_id)
                    continue
                lock_cr.commit()
                _mark_claimed(claim_cr, job_id, state)
                if state == "running":
                    _log.info("Plane sync job %s: its worker is gone, taken up again", job_id)
            return job_id

    @api.model
    def _plane_pick(self, skip: list[int]):
        """(id, state) of the next claimable job, row-locked in this cursor's transaction."""
        self.env.cr.execute(
            """
            SELECT j.id, j.state FROM plane_sync_job j
             WHERE ((j.state = 'pending' AND j.next_attempt_at <= %(now)s)
                    OR (j.state = 'running' AND NOT EXISTS (
                        SELECT 1 FROM pg_locks l
                         WHERE l.locktype = 'advisory' AND l.granted
                           AND l.database = (SELECT oid FROM pg_database
                                              WHERE datname = current_database())
                           AND l.classid = %(space)s::oid AND l.objid = j.id::oid
                           AND l.objsubid = 2)))
               AND j.id <> ALL(%(skip)s)
             ORDER BY j.next_attempt_at, j.id
             LIMIT 1
               FOR UPDATE SKIP LOCKED
            """,
            {"now": _now(), "space": LOCK_SPACE, "skip": list(skip)},
        )
        return self.env.cr.fetchone()

    @api.model
    def _plane_claim(self, size: int) -> list[int]:
        """Claim up to ``size`` due jobs in this transaction (tests and tools; the cron claims
        one at a time with :meth:`_plane_claim_one`). Running jobs whose worker is gone count
        as due, without using an attempt."""
        ids = []
        for _ in range(size):
            row = self._plane_pick(ids)
            if row is None:
                break
            _mark_claimed(self.env.cr, *row)
            ids.append(row[0])
        return sorted(ids)

    @api.model
    def _plane_next_due(self) -> float | None:
        """Seconds until the next pending job is due (0 if one is); None when none is queued."""
        self.env.cr.execute(
            "SELECT min(next_attempt_at) FROM plane_sync_job WHERE state = 'pending'")
        due = self.env.cr.fetchone()[0]
        if due is None:
            return None
        return max(0.0, (due - _now()).total_seconds())

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
        connector = self.env["plane.connector"]
        message = connector._plane_describe_error(exc)
        if connector._plane_is_outage(exc):
            return self._plane_paused(exc, message, connector._plane_outage_note(exc))
        if _database_fault(exc):
            # A connection the job used (the rate budget's, say) was cut: nothing is wrong with
            # the job, so, as for a dead worker, the retry uses no attempt; soon, not at once.
            self._plane_requeue({"attempts": max(0, self.attempts - 1), "last_error": message,
                                 "next_attempt_at": fields.Datetime.now()
                                 + dt.timedelta(seconds=2)})
            return "retry"
        params = self.env["ir.config_parameter"].sudo()
        max_attempts = int(params.get_param(PARAM_MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS))
        if self.task_id:
            self.task_id._plane_mark_error(message)
        if self.attempts >= max_attempts:
            self.write({"state": "dead", "last_error": message, "done_at": fields.Datetime.now()})
            _log.error("Plane sync job %s (%s) gave up after %s attempts: %s", self.id,
                       self.kind, self.attempts, message)
            return "dead"
        delay = connector._plane_retry_delay(self.attempts, exc)
        values = {
            "last_error": message,
            "next_attempt_at": fields.Datetime.now() + dt.timedelta(seconds=delay),
        }
        # A write made while this job ran may have queued a fresh job: that one pushes the
        # latest values and inherits the error so the failure stays visible.
        self._plane_requeue(values)
        _log.warning("Plane sync job %s (%s) failed (attempt %s), retry in %ss: %s", self.id,
                     self.kind, self.attempts, delay, message)
        return "retry"

    def _plane_requeue(self, values: dict) -> None:
        """Back to *pending* with ``values``, unless a pending twin was queued meanwhile (one
        pending job per task or project and kind): then the twin does the work and this one
        ends as superseded. A twin another transaction committed after this one's snapshot is
        invisible to the search and shows as a unique violation of the write."""
        twin = self._plane_pending_twin()
        if not twin:
            try:
                with self.env.cr.savepoint(), _quiet_sql():
                    self.write(dict(values, state="pending"))
                    self.flush_recordset()
                return
            except (_errors().UniqueViolation, _errors().SerializationFailure):
                self.invalidate_recordset()
        if twin:
            twin.write({"last_error": values.get("last_error"),
                        "attempts": max(twin.attempts, values.get("attempts", self.attempts))})
        self.write({"state": "done", "done_at": fields.Datetime.now(),
                    "last_error": f"superseded by job {twin.id if twin else 'queued meanwhile'}:"
                                  f" {values.get('last_error') or ''}"[:2000]})

    def _plane_paused(self, exc: Exception, message: str, probe_in: float) -> str:
        """Plane is down: back to the queue as it was (no attempt used), the task waiting."""
        # Its place in the queue is kept (next_attempt_at untouched): the same job probes next.
        self._plane_requeue({
            "attempts": max(0, self.attempts - 1),
            "last_error": f"Waiting for Plane: {message}"[:2000],
        })
        if self.task_id:
            self.task_id._plane_mark_waiting(message)
        _log.debug("Plane sync job %s (%s) waits for Plane (probe in %.0f s): %s", self.id,
                   self.kind, probe_in, message)
        return "paused"

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
    ``--limit-time-cpu`` of CPU (60 s). That limit is not ours alone: a prefork cron worker
    pings its watchdog, then sleeps until woken or for its poll interval (60-70 s), then runs
    every ready cron, and the whole of it must fit. A fresh worker (after a kill or a database
    restart) sleeps its full interval first, so about 50 s are left for every cron due then.
    Hence an eighth of the real-time limit and a quarter of the CPU limit (15 s by default);
    the cron chains short runs anyway (measured: a PostgreSQL restart under a quarter, 30 s,
    had the watchdog kill the cron worker).
    """
    from odoo.tools import config

    budget = default
    real = config.get("limit_time_real_cron")
    if real is None or real < 0:
        real = config.get("limit_time_real")
    if real and real > 0:
        budget = min(budget, real / 8)
    cpu = config.get("limit_time_cpu")
    if cpu and cpu > 0:
        budget = min(budget, cpu / 4)
    return budget


def _mark_claimed(cr, job_id: int, state: str) -> None:
    """Mark a picked job running; a reclaimed one (its worker died) uses no further attempt."""
    cr.execute(
        "UPDATE plane_sync_job SET state = 'running', lease_until = NULL,"
        " attempts = attempts + %s, write_date = %s WHERE id = %s",
        (1 if state == "pending" else 0, _now(), job_id),
    )


def _now() -> dt.datetime:
    # With microseconds: fields.Datetime.now() truncates, which would leave a job due "now"
    # waiting for the next second.
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _unlock(cr, job_id: int) -> None:
    """Release the job's advisory lock; a dead connection released it already."""
    if _connection_lost(cr):
        return
    try:
        cr.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, job_id))
    except Exception:  # noqa: BLE001 - the connection died meanwhile: its locks went with it
        _log.debug("advisory unlock of job %s failed", job_id, exc_info=True)


def _errors():
    import psycopg2.errors

    return psycopg2.errors


def _quiet_sql():
    """Odoo's cursor logs a failing statement at ERROR ("bad query"); one the caller expects
    and handles is not an error."""
    from odoo.tools import mute_logger

    return mute_logger("odoo.sql_db")


def _database_fault(exc: BaseException) -> bool:
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - Odoo requires it
        return False
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))


def _connection_lost(cr) -> bool:
    cnx = getattr(cr, "_cnx", None)
    return bool(cnx is not None and getattr(cnx, "closed", 0))
