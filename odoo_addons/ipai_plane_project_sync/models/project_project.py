"""``project.project`` linked to a Plane project: the mapping settings, lookups and back-fill.

Plane's states, labels and members are looked up by name/e-mail through small per-project
caches (JSON), refreshed from Plane only when a lookup misses, so a push costs one request in
the common case.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

from odoo import api, fields, models
from odoo.addons.ipai_plane_connector.exceptions import ConflictError, NotFoundError, PlaneError
from odoo.addons.ipai_plane_connector.redaction import redact
from odoo.exceptions import UserError

from ..mapping import (
    MODES,
    plane_identifier,
    plane_project_description,
    plane_project_name,
    plane_values,
    unique_project_name,
)

_log = logging.getLogger(__name__)


BACKFILL_STATES = [
    ("none", "Not started"),
    ("running", "Running"),
    ("done", "Done"),
]
BACKFILL_PAGE = 100
#: A lookup that misses reloads a cache at most this often (seconds).
CACHE_MIN_AGE = 60
#: How often each linked project is checked for work items deleted in Plane (minutes; 0: never).
#: Plane CE sends no webhook when a work item is deleted, so this check is how Odoo learns it.
PARAM_SWEEP_MINUTES = "plane.project_sync.deletion_sweep_minutes"
DEFAULT_SWEEP_MINUTES = 60
#: Work item ids per listing request of the deletion check (only ids are asked for).
SWEEP_PAGE = 500
#: Missing work items confirmed (one GET each) per job run.
SWEEP_CONFIRM_BATCH = 20
SWEEP_STATES = [
    ("idle", "Idle"),
    ("walking", "Listing Plane's work items"),
    ("confirming", "Checking the missing ones"),
]
#: Tries at a project name and identifier nobody has: Plane answers a taken name and a taken
#: identifier with the same 409 (naming the name), so each refused pair is set aside.
CREATE_ATTEMPTS = 4
#: Written by the sync only (in sudo): the project id becomes request paths.
SYNC_FIELDS = frozenset({
    "plane_project_id", "plane_project_identifier", "plane_states_json", "plane_labels_json",
    "plane_members_json", "plane_backfill_state", "plane_backfill_cursor",
    "plane_backfill_seen", "plane_backfill_imported", "plane_sweep_state", "plane_sweep_round",
    "plane_sweep_cursor", "plane_sweep_started_at", "plane_sweep_done_at", "plane_sweep_flagged",
    "plane_sweep_error",
})
#: Linking, unlinking and creating Plane projects is a project manager's decision.
MANAGER = "project.group_project_manager"


def _mode(default: str, string: str):
    return fields.Selection(MODES, string=string, default=default, required=True)


class ProjectProject(models.Model):
    _name = "project.project"
    _inherit = ["project.project", "plane.sync.guard"]
    _plane_sync_fields = SYNC_FIELDS

    plane_project_id = fields.Char(string="Plane project id", copy=False, index=True,
                                   readonly=True)
    plane_project_identifier = fields.Char(string="Plane identifier", copy=False, readonly=True)
    plane_project_url = fields.Char(string="Open in Plane", compute="_compute_plane_project_url")
    plane_mode_name = _mode("odoo", "Name sync")
    plane_mode_description = _mode("odoo", "Description sync")
    plane_mode_priority = _mode("odoo", "Priority sync")
    plane_mode_dates = _mode("odoo", "Dates sync")
    plane_mode_stage = _mode("plane", "Stage sync")
    plane_mode_tags = _mode("odoo", "Tags sync")
    plane_mode_assignees = _mode("plane", "Assignees sync")
    plane_mode_parent = _mode("odoo", "Parent task sync")
    plane_sync_comments = fields.Boolean(
        string="Chatter to Plane comments", default=True,
        help="Messages and notes typed in a linked task's chatter are added to its work item as "
             "comments. Plane comments always come into the chatter.")
    # Plane's states, labels and members' e-mails: not for the portal users a project is
    # shared with (the sync reads them in superuser mode).
    plane_states_json = fields.Text(copy=False, readonly=True, groups="base.group_user")
    plane_labels_json = fields.Text(copy=False, readonly=True, groups="base.group_user")
    plane_members_json = fields.Text(copy=False, readonly=True, groups="base.group_user")
    plane_backfill_state = fields.Selection(BACKFILL_STATES, default="none", required=True,
                                            copy=False, readonly=True)
    plane_backfill_cursor = fields.Char(copy=False, readonly=True,
                                        help="Where the walk of Plane's work items resumes")
    plane_backfill_seen = fields.Integer(copy=False, readonly=True)
    plane_backfill_imported = fields.Integer(copy=False, readonly=True)
    plane_job_pending = fields.Integer(compute="_compute_plane_progress",
                                       string="Sync jobs queued")
    plane_job_dead = fields.Integer(compute="_compute_plane_progress",
                                    string="Sync jobs failed")
    plane_task_linked = fields.Integer(compute="_compute_plane_progress",
                                       string="Tasks in Plane")
    plane_task_total = fields.Integer(compute="_compute_plane_progress", string="Active tasks")
    plane_progress = fields.Float(compute="_compute_plane_progress", string="Back-fill progress")
    plane_sweep_state = fields.Selection(SWEEP_STATES, string="Deletion check", default="idle",
                                         required=True, copy=False, readonly=True)
    plane_sweep_round = fields.Integer(copy=False, readonly=True)
    plane_sweep_cursor = fields.Char(copy=False, readonly=True)
    plane_sweep_started_at = fields.Datetime(copy=False, readonly=True)
    plane_sweep_done_at = fields.Datetime(string="Last deletion check", copy=False,
                                          readonly=True)
    plane_sweep_flagged = fields.Integer(string="Found deleted in Plane (last check)",
                                         copy=False, readonly=True)
    plane_sweep_error = fields.Char(string="Deletion check note", copy=False, readonly=True)

    def init(self):
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS project_project_plane_project_uniq "
            "ON project_project (plane_project_id) WHERE plane_project_id IS NOT NULL"
        )

    @api.depends("plane_project_id")
    def _compute_plane_project_url(self):
        web = self.env["project.task"]._plane_web_url()
        slug = self.env["plane.connector"]._plane_config()["workspace_slug"]
        for project in self:
            project.plane_project_url = (
                f"{web}/{slug}/projects/{project.plane_project_id}/issues/"
                if project.plane_project_id and slug else False
            )

    def _compute_plane_progress(self):
        Job = self.env["plane.sync.job"].sudo()
        Task = self.env["project.task"].with_context(active_test=False).sudo()
        for project in self:
            if not project.id or not project.plane_project_id:
                project.update({"plane_job_pending": 0, "plane_job_dead": 0,
                                "plane_task_linked": 0, "plane_task_total": 0,
                                "plane_progress": 0.0})
                continue
            base = [("project_id", "=", project.id)]
            total = Task.search_count(base + [("active", "=", True)])
            linked = Task.search_count(base + [("active", "=", True),
                                               ("plane_work_item_id", "!=", False)])
            project.plane_job_pending = Job.search_count(
                base + [("state", "in", ("pending", "running"))])
            project.plane_job_dead = Job.search_count(base + [("state", "=", "dead")])
            project.plane_task_linked = linked
            project.plane_task_total = total
            project.plane_progress = 100.0 * linked / total if total else 100.0

    # -- linking

    def action_plane_create_project(self):
        """Create a Plane project for this Odoo project, link it and back-fill its tasks.

        Plane refuses many ordinary characters in project names (``R&D``, ``ACME Inc.``): the
        Plane name is a readable mapping of the Odoo name, made unique in the workspace, and
        the full Odoo name goes into the Plane project's description."""
        self.ensure_one()
        connector = self.env["plane.connector"]
        connector._plane_check_rights(self, "write", MANAGER)
        if self.plane_project_id:
            raise UserError("This project is already linked to a Plane project.")
        path = connector._plane_workspace_path("projects")
        refused_names, refused_identifiers = set(), set()
        created = None
        for _attempt in range(CREATE_ATTEMPTS):
            existing = list(connector._plane_paginate(path))
            name = unique_project_name(
                plane_project_name(self.name),
                {p.get("name") for p in existing} | refused_names)
            identifier = plane_identifier(
                self.name, {p.get("identifier") for p in existing} | refused_identifiers)
            body = {"name": name, "identifier": identifier,
                    "description": plane_project_description(self.name)}
            try:
                created = connector._plane_request("POST", path, json=body)
                break
            except ConflictError:
                # Taken by a project the listing does not show (archived), or made meanwhile.
                refused_names.add(name)
                refused_identifiers.add(identifier)
            except PlaneError as exc:
                raise UserError(redact(f"Plane project not created: {exc}")) from None
        if created is None:
            raise UserError("Plane refused the project: every name and identifier tried was "
                            f"taken ({', '.join(sorted(refused_names))}).")
        self._plane_link(created)
        return True

    def write(self, vals):
        result = super().write(vals)
        if "name" in vals:
            # The Plane project follows an Odoo rename, through the job queue: no request
            # inside the user's transaction.
            Job = self.env["plane.sync.job"].sudo()
            for project in self.sudo().filtered("plane_project_id"):
                Job._plane_enqueue_project_job(project, "project")
        return result

    def _plane_push_project(self) -> None:
        """Give the Plane project this project's (mapped) name and full name (job)."""
        self.ensure_one()
        if not self.plane_project_id:
            return
        connector = self.env["plane.connector"]
        projects = connector._plane_workspace_path("projects")
        path = connector._plane_workspace_path(
            "projects", connector._plane_uuid(self.plane_project_id, "Plane project id"))
        refused = set()
        for _attempt in range(CREATE_ATTEMPTS):
            others = {p.get("name") for p in connector._plane_paginate(projects)
                      if p.get("id") != self.plane_project_id}
            name = unique_project_name(plane_project_name(self.name), others | refused)
            try:
                connector._plane_request("PATCH", path, json={
                    "name": name, "description": plane_project_description(self.name)})
                return
            except ConflictError:
                refused.add(name)
        raise UserError(redact(f"Plane refused every name tried for {self.display_name}."))

    def action_plane_pick_project(self):
        """Open the list of Plane projects to link one."""
        self.ensure_one()
        self.env["plane.connector"]._plane_check_rights(self, "write", MANAGER)
        wizard = self.env["plane.project.pick"].create({"project_id": self.id})
        wizard._plane_load()
        return {
            "type": "ir.actions.act_window", "res_model": "plane.project.pick",
            "res_id": wizard.id, "view_mode": "form", "target": "new",
            "name": "Link a Plane project",
        }

    def _plane_link(self, plane_project: dict) -> None:
        self.ensure_one()
        self.env["plane.connector"]._plane_check_rights(self, "write", MANAGER)
        self.env["plane.connector"]._plane_uuid(plane_project.get("id"), "Plane project id")
        if self.plane_project_id and self.plane_project_id != plane_project["id"]:
            # Its tasks point at work items of the other Plane project.
            raise UserError("Unlink this project from its Plane project first.")
        other = self.with_context(active_test=False).search(
            [("plane_project_id", "=", plane_project["id"]), ("id", "!=", self.id)], limit=1)
        if other:
            raise UserError(f"That Plane project is already linked to {other.display_name}.")
        self.sudo().write({
            "plane_project_id": plane_project["id"],
            "plane_project_identifier": plane_project.get("identifier") or False,
            "plane_states_json": False, "plane_labels_json": False,
            "plane_members_json": False,
        })
        # The connector's reconciliation sweep then covers this project too.
        self.env["plane.project.link"].sudo()._plane_ensure(plane_project["id"], self.name)
        self.action_plane_backfill()

    def action_plane_unlink_project(self):
        self.ensure_one()
        self.env["plane.connector"]._plane_check_rights(self, "write", MANAGER)
        self.env["plane.sync.job"].sudo().search(
            [("project_id", "=", self.id), ("state", "in", ("pending", "running"))]
        ).write({"state": "done", "last_error": "project unlinked"})
        tasks = self.env["project.task"].sudo().with_context(active_test=False).search(
            [("project_id", "=", self.id)])
        tasks.with_context(plane_remote=True).write({
            "plane_work_item_id": False, "plane_snapshot": False, "plane_sync_state": "none",
            "plane_remote_updated_at": False, "plane_sync_error": False,
        })
        self.sudo().write({"plane_project_id": False, "plane_project_identifier": False,
                           "plane_backfill_state": "none", "plane_backfill_cursor": False})
        return True

    def action_plane_backfill(self):
        """(Re)start the bulk sync: queue every unlinked task, then walk Plane's work items."""
        self.env["plane.connector"]._plane_check_rights(self, "write", MANAGER)
        for project in self.sudo().filtered("plane_project_id"):
            tasks = self.env["project.task"].search([
                ("project_id", "=", project.id), ("plane_work_item_id", "=", False),
                ("plane_sync_state", "!=", "unlinked"),
            ], order="parent_id desc, id")
            project.write({"plane_backfill_state": "running", "plane_backfill_cursor": False,
                           "plane_backfill_seen": 0, "plane_backfill_imported": 0})
            # Pushes first (jobs run in id order): the walk then finds our own work items linked.
            self.env["plane.sync.job"].sudo()._plane_enqueue(tasks.sorted("id"))
            self.env["plane.sync.job"].sudo()._plane_enqueue_backfill(project)
        return True

    def _plane_backfill_page(self) -> None:
        """Import one page of the Plane project's work items, then save the cursor."""
        self.ensure_one()
        connector = self.env["plane.connector"]
        path = connector._plane_path(
            "work_items", connector._plane_uuid(self.plane_project_id, "Plane project id"))
        pager = connector._plane_paginate(
            path, params={"expand": "state,labels,assignees"}, per_page=BACKFILL_PAGE,
            cursor=self.plane_backfill_cursor or None)
        Task = self.env["project.task"].sudo()
        seen = imported = 0
        for item in pager:
            seen += 1
            if Task._plane_import_item(self, item):
                imported += 1
            if seen >= BACKFILL_PAGE:
                break  # stop before the pager fetches the next page: that is the next job's
        next_cursor = pager.next_cursor
        values = {"plane_backfill_seen": self.plane_backfill_seen + seen,
                  "plane_backfill_imported": self.plane_backfill_imported + imported}
        if next_cursor:
            values["plane_backfill_cursor"] = next_cursor
        else:
            values.update(plane_backfill_state="done", plane_backfill_cursor=False)
        self.write(values)

    # -- noticing work items deleted in Plane (Plane CE sends no webhook for it)

    @api.model
    def _cron_plane_deletion_sweep(self) -> int:
        """Queue a deletion check for every linked project whose last one is older than the
        interval (``plane.project_sync.deletion_sweep_minutes``); returns how many."""
        params = self.env["ir.config_parameter"].sudo()
        try:
            minutes = int(params.get_param(PARAM_SWEEP_MINUTES, DEFAULT_SWEEP_MINUTES))
        except ValueError:
            minutes = DEFAULT_SWEEP_MINUTES
        if minutes <= 0:
            return 0
        due = fields.Datetime.now() - dt.timedelta(minutes=minutes)
        projects = self.sudo().search([
            ("plane_project_id", "!=", False), ("plane_sweep_state", "=", "idle"),
            "|", ("plane_sweep_done_at", "=", False), ("plane_sweep_done_at", "<", due),
        ])
        Job = self.env["plane.sync.job"].sudo()
        return sum(Job._plane_enqueue_project_job(project, "sweep") for project in projects)

    def action_plane_sweep_now(self):
        """Check now, whatever the interval, which work items were deleted in Plane."""
        self.env["plane.connector"]._plane_check_rights(self, "write", MANAGER)
        Job = self.env["plane.sync.job"].sudo()
        for project in self.filtered("plane_project_id"):
            Job._plane_enqueue_project_job(project, "sweep")
        return True

    def _plane_sweep_step(self) -> bool:
        """One resumable step of the deletion check; True while there is more to do.

        A round lists the Plane project's work item ids page by page (the cursor is saved
        after each page) and marks every linked task whose item it saw. Plane pages by offset,
        so an item deleted or created during the walk shifts the pages and another item can be
        skipped: an unseen task is therefore only a candidate, flagged "Deleted in Plane" once
        a direct GET of its work item answers 404."""
        self.ensure_one()
        if not self.plane_project_id:
            self.write({"plane_sweep_state": "idle"})
            return False
        if self.plane_sweep_state == "walking":
            return self._plane_sweep_page()
        if self.plane_sweep_state == "confirming":
            return self._plane_sweep_confirm()
        return self._plane_sweep_start()

    def _plane_sweep_start(self) -> bool:
        connector = self.env["plane.connector"]
        pid = connector._plane_uuid(self.plane_project_id, "Plane project id")
        try:
            remote = connector._plane_request(
                "GET", connector._plane_workspace_path("projects", pid))
        except NotFoundError:
            remote = None
        if not remote or remote.get("archived_at"):
            # An archived project hides its work items and a deleted one has none: that says
            # nothing about single items, so nothing is flagged.
            self.write({"plane_sweep_state": "idle", "plane_sweep_done_at": fields.Datetime.now(),
                        "plane_sweep_error": "The Plane project is archived or deleted: its "
                                             "work items were not checked."})
            return False
        self.write({
            "plane_sweep_state": "walking", "plane_sweep_round": self.plane_sweep_round + 1,
            "plane_sweep_cursor": False, "plane_sweep_started_at": fields.Datetime.now(),
            "plane_sweep_flagged": 0, "plane_sweep_error": False,
        })
        self.env["plane.sweep.seen"].sudo()._plane_forget_before(self)
        return True

    def _plane_sweep_page(self) -> bool:
        connector = self.env["plane.connector"]
        path = connector._plane_path(
            "work_items", connector._plane_uuid(self.plane_project_id, "Plane project id"))
        pager = connector._plane_paginate(path, params={"fields": "id"}, per_page=SWEEP_PAGE,
                                          cursor=self.plane_sweep_cursor or None)
        seen = []
        for item in pager:
            seen.append(str(item["id"]))
            if len(seen) >= SWEEP_PAGE:
                break  # the next page is the next step's
        if seen:
            self._plane_sweep_mark_seen(seen)
        next_cursor = pager.next_cursor
        if next_cursor:
            self.write({"plane_sweep_cursor": next_cursor})
        else:
            self.write({"plane_sweep_state": "confirming", "plane_sweep_cursor": False})
        return True

    def _plane_sweep_mark_seen(self, item_ids: list[str]) -> None:
        self.env["plane.sweep.seen"].sudo()._plane_mark(self, item_ids)

    def _plane_sweep_confirm(self) -> bool:
        Task = self.env["project.task"].sudo()
        unseen = self.env["plane.sweep.seen"].sudo()._plane_unseen_tasks(self)
        candidates = Task.search([
            ("id", "in", unseen), ("plane_sync_state", "!=", "unlinked"),
            # Pushed after the walk began: its work item existed then (times are to the
            # second, so the second the walk began still counts as before).
            "|", ("plane_synced_at", "=", False),
            ("plane_synced_at", "<=", self.plane_sweep_started_at),
        ], limit=SWEEP_CONFIRM_BATCH, order="id")
        if not candidates:
            self.write({"plane_sweep_state": "idle",
                        "plane_sweep_done_at": fields.Datetime.now()})
            if self.plane_sweep_flagged:
                _log.info("Plane project %s: %s work item(s) found deleted in Plane",
                          self.plane_project_id, self.plane_sweep_flagged)
            return False
        connector = self.env["plane.connector"]
        pid = connector._plane_uuid(self.plane_project_id, "Plane project id")
        flagged, present = 0, []
        for task in candidates:
            path = connector._plane_path(
                "work_items", pid,
                connector._plane_uuid(task.plane_work_item_id, "Plane work item id"))
            try:
                connector._plane_request("GET", path, params={"fields": "id"})
            except NotFoundError:
                task._plane_mark_deleted_in_plane()
                flagged += 1
            else:
                present.append(task.plane_work_item_id)  # skipped by a page shift
        if present:
            self._plane_sweep_mark_seen(present)
        if flagged:
            self.write({"plane_sweep_flagged": self.plane_sweep_flagged + flagged})
        return True

    # -- lookups (states, labels, members)

    def _plane_cache(self, kind: str, refresh: bool = False, force: bool = False):
        """The cached list (states) or map (labels id->name, members id->email).

        ``refresh`` reloads it from Plane unless it was loaded in the last minute (a name that
        matches nothing must not cost one request per task); ``force`` always reloads.
        """
        self.ensure_one()
        field = f"plane_{kind}_json"
        cached = json.loads(self[field]) if self[field] else None
        if isinstance(cached, dict) and "data" in cached:
            fresh = time.time() - float(cached.get("at") or 0) < CACHE_MIN_AGE
            if not force and (not refresh or fresh):
                return cached["data"]
        connector = self.env["plane.connector"]
        pid = connector._plane_uuid(self.plane_project_id, "Plane project id")
        if kind == "states":
            value = [
                {"id": s["id"], "name": s.get("name") or "", "group": s.get("group"),
                 "sequence": s.get("sequence") or 0}
                for s in connector._plane_paginate(connector._plane_workspace_path(
                    "projects", pid, "states"))
            ]
            value.sort(key=lambda s: s["sequence"])
        elif kind == "labels":
            value = {lb["id"]: lb.get("name") or "" for lb in connector._plane_paginate(
                connector._plane_workspace_path("projects", pid, "labels"))}
        else:
            members = connector._plane_request(
                "GET", connector._plane_workspace_path("projects", pid, "members"))
            value = {m["id"]: (m.get("email") or "").lower()
                     for m in members or [] if isinstance(m, dict) and m.get("id")}
        self._plane_cache_put(kind, value)
        return value

    def _plane_cache_put(self, kind: str, value, loaded_at: float | None = None) -> None:
        if loaded_at is None:
            loaded_at = time.time()
        self.sudo().write({f"plane_{kind}_json": json.dumps({"at": loaded_at, "data": value})})

    def _plane_cache_at(self, kind: str) -> float:
        raw = self[f"plane_{kind}_json"]
        cached = json.loads(raw) if raw else None
        return float(cached.get("at") or 0) if isinstance(cached, dict) else 0.0

    def _plane_learn(self, labels: dict, members: dict, states: dict) -> None:
        """Fold names learned from an expanded webhook payload into the caches."""
        self.ensure_one()
        for kind, learned in (("labels", labels), ("members", members)):
            if not learned or not self[f"plane_{kind}_json"]:
                continue
            known = self._plane_cache(kind)
            if any(known.get(k) != v for k, v in learned.items()):
                self._plane_cache_put(kind, {**known, **learned}, self._plane_cache_at(kind))
        if states and self.plane_states_json:
            known = {x["id"] for x in self._plane_cache("states")}
            if any(s not in known for s in states):
                self.sudo().write({"plane_states_json": False})  # a new state: reload

    def _plane_state(self, state_id: str | None) -> dict | None:
        if not state_id:
            return None
        for refresh in (False, True):
            for state in self._plane_cache("states", refresh=refresh):
                if state["id"] == state_id:
                    return state
        return None

    def _plane_state_for_stage(self, stage) -> str | None:
        """The Plane state id for an Odoo stage: same name first, else first of its group."""
        if not stage:
            return None
        for refresh in (False, True):
            states = self._plane_cache("states", refresh=refresh)
            by_name = [s for s in states if s["name"].strip().lower() == stage.name.strip().lower()]
            if by_name:
                return by_name[0]["id"]
            by_group = [s for s in states if s["group"] == stage.plane_state_group]
            if by_group:
                return by_group[0]["id"]
        return None

    def _plane_stage_for_state(self, state_id: str | None):
        """The Odoo stage for a Plane state: same name first, else first of its group."""
        state = self._plane_state(state_id)
        stages = self.type_ids.sorted("sequence")
        if not state:
            return stages.browse()
        name = state["name"].strip().lower()
        return (stages.filtered(lambda s: s.name.strip().lower() == name)[:1]
                or stages.filtered(lambda s: s.plane_state_group == state["group"])[:1])

    def _plane_label_names(self, label_ids: list[str]) -> set[str]:
        known = self._plane_cache("labels")
        if any(i not in known for i in label_ids):
            known = self._plane_cache("labels", refresh=True)
        return {known[i].strip().lower() for i in label_ids if known.get(i)}

    def _plane_label_ids(self, names: list[str]) -> list[str]:
        """Label ids for tag names, creating missing labels in Plane."""
        connector = self.env["plane.connector"]
        wanted = {n.strip().lower(): n.strip() for n in names if n and n.strip()}
        known = self._plane_cache("labels")
        by_name = {v.strip().lower(): k for k, v in known.items()}
        if set(wanted) - set(by_name):
            known = self._plane_cache("labels", refresh=True)
            by_name = {v.strip().lower(): k for k, v in known.items()}
        path = connector._plane_workspace_path(
            "projects", connector._plane_uuid(self.plane_project_id, "Plane project id"), "labels")
        for key, name in wanted.items():
            if key in by_name:
                continue
            try:
                label = connector._plane_request("POST", path, json={"name": name})
                label_id = label["id"]
            except ConflictError as exc:  # created meanwhile by someone else
                label_id = exc.existing_id or {
                    v.strip().lower(): k
                    for k, v in self._plane_cache("labels", force=True).items()
                }.get(key)
                if not label_id:
                    raise
            known[label_id] = name
            by_name[key] = label_id
            self._plane_cache_put("labels", known, self._plane_cache_at("labels"))
        return sorted(by_name[k] for k in wanted)

    def _plane_member_ids(self, emails: set[str]) -> tuple[list[str], set[str]]:
        """Plane member ids for e-mails, and the e-mails that match no member."""
        known = self._plane_cache("members")
        by_email = {v: k for k, v in known.items() if v}
        if emails - set(by_email):
            known = self._plane_cache("members", refresh=True)
            by_email = {v: k for k, v in known.items() if v}
        return sorted(by_email[e] for e in emails if e in by_email), emails - set(by_email)

    def _plane_member_emails(self, member_ids: list[str]) -> set[str]:
        known = self._plane_cache("members")
        if any(i not in known for i in member_ids):
            known = self._plane_cache("members", refresh=True)
        return {known[i] for i in member_ids if known.get(i)}

    @api.model
    def _plane_normalize(self, data: dict) -> dict:
        return plane_values(data)
