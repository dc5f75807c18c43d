"""``project.task`` <-> Plane work item: queueing, the push, and applying Plane's changes.

Odoo owns the task. Every linked task keeps a *snapshot*: the mapped fields as Plane last had
them (from our push's response, or from an event we applied). Comparing against it is how
  * a push sends only what changed (one PATCH with the latest values, however many writes);
  * an incoming event is recognised as the echo of our own push (same ``updated_at`` or same
    values: dropped, nothing written in Odoo);
  * a field changed on both sides is detected: an Odoo change not yet pushed wins;
  * a Plane edit of an "Odoo wins" field is pushed back over.
A field counts as unchanged when Plane's value maps to the Odoo value (lossy mappings such as
Odoo 18's two priorities against Plane's five never ping-pong).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

from markupsafe import Markup
from odoo import Command, api, fields, models
from odoo.addons.ipai_plane_connector.exceptions import NotFoundError
from odoo.addons.ipai_plane_connector.sync_guard import plane_remote
from odoo.tools import html_sanitize
from odoo.tools.sql import escape_psql

from ..mapping import (
    MODE_FIELDS,
    ODOO_TRIGGERS,
    SYNC_KEYS,
    date_string,
    html_is_empty,
    html_key,
    learned_names,
    parse_date,
    plane_values,
    priority_to_odoo,
    priority_to_plane,
    ref_id,
)

_log = logging.getLogger(__name__)

try:
    import pytz
except ImportError:  # pragma: no cover - Odoo requires pytz
    pytz = None


SYNC_STATES = [
    ("none", "Not in Plane"),
    ("pending", "Queued"),
    ("synced", "Synced"),
    ("error", "Failing"),
    ("waiting", "Waiting for Plane"),
    ("unlinked", "Deleted in Plane"),
    ("archived", "Archived in Plane"),
]
EXTERNAL_SOURCE = "odoo"
_EXTERNAL_ID = re.compile(r"^project\.task,(\d+)$")
_MESSAGE_EXTERNAL_ID = re.compile(r"^mail\.message,(\d+)$")
# Written by the sync only (in sudo): the ids become request paths.
SYNC_FIELDS = frozenset({"plane_work_item_id", "plane_sync_state", "plane_synced_at",
                         "plane_sync_error", "plane_snapshot", "plane_remote_updated_at"})
_FIELD_LABELS = {
    "name": "name", "description_html": "description", "priority": "priority",
    "target_date": "deadline", "start_date": "start date", "state": "stage",
    "labels": "tags", "assignees": "assignees", "parent": "parent task",
}  # fmt: skip


def _parse_time(value):
    from odoo.addons.ipai_plane_connector.models.plane_connector import parse_plane_time

    return parse_plane_time(value)


class ProjectTask(models.Model):
    _name = "project.task"
    _inherit = ["project.task", "plane.sync.guard"]
    _plane_sync_fields = SYNC_FIELDS

    plane_work_item_id = fields.Char(string="Plane work item", copy=False, index=True,
                                     readonly=True)
    plane_sync_state = fields.Selection(SYNC_STATES, string="Plane sync", default="none",
                                        required=True, copy=False, readonly=True)
    plane_synced_at = fields.Datetime(string="Last sync", copy=False, readonly=True)
    plane_sync_error = fields.Text(string="Last sync error", copy=False, readonly=True)
    plane_snapshot = fields.Text(copy=False, readonly=True,
                                 help="The mapped fields as Plane last had them (JSON)")
    plane_remote_updated_at = fields.Char(copy=False, readonly=True,
                                          help="updated_at of the work item we last saw")
    plane_url = fields.Char(string="Open in Plane", compute="_compute_plane_url")
    plane_start_date = fields.Date(string="Start date", copy=False,
                                   help="Synced with the Plane work item's start date")

    @api.depends("plane_work_item_id", "project_id.plane_project_id")
    def _compute_plane_url(self):
        web = self._plane_web_url()
        slug = self.env["plane.connector"]._plane_config()["workspace_slug"]
        for task in self:
            pid = task.project_id.plane_project_id
            task.plane_url = (
                f"{web}/{slug}/projects/{pid}/issues/{task.plane_work_item_id}/"
                if task.plane_work_item_id and pid and slug else False
            )

    @api.model
    def _plane_web_url(self) -> str:
        """Plane's web app: ``plane.web_url``, else the API host (app.plane.so for Cloud)."""
        config = self.env["plane.connector"]._plane_config()
        web = config["web_url"]
        if not web:
            base = config["base_url"]
            web = base.replace("://api.plane.so", "://app.plane.so")
        return web.rstrip("/")

    # -- Odoo -> queue (inside the user's transaction: SQL inserts only)

    @api.model_create_multi
    def create(self, vals_list):
        tasks = super().create(vals_list)
        if not plane_remote(self.env):
            tasks._plane_queue_push()
        return tasks

    def write(self, vals):
        if plane_remote(self.env):
            return super().write(vals)
        was_active = {t.id: t.active for t in self} if "active" in vals else {}
        links = {
            t.id: (t.project_id, t.project_id.plane_project_id, t.plane_work_item_id)
            for t in self.sudo() if t.plane_work_item_id and t.project_id.plane_project_id
        } if "project_id" in vals else {}
        result = super().write(vals)
        if links:
            self._plane_after_move(links)
        if was_active:
            archived = self.filtered(lambda t: was_active.get(t.id) and not t.active)
            restored = self.filtered(lambda t: not was_active.get(t.id) and t.active)
            archived._plane_queue_archive()
            restored.sudo().filtered(lambda t: t.plane_sync_state == "archived").with_context(
                plane_remote=True).write({"plane_sync_state": "synced"})
            (self - archived)._plane_queue_push()
        elif ODOO_TRIGGERS & set(vals):
            self._plane_queue_push()
        return result

    def unlink(self):
        if not plane_remote(self.env):
            self.with_context(active_test=False)._plane_queue_archive()
        return super().unlink()

    def _plane_after_move(self, links: dict) -> None:
        """Tasks moved to a project linked to another Plane project, or to none.

        A work item cannot change project through Plane's API (the project is part of its
        path), so the old item is cancelled and the task, no longer linked, is pushed as a new
        item of its new project. The old item's webhooks then find no task in that project and
        bring nothing back (see ``_plane_import_item``)."""
        Job = self.env["plane.sync.job"].sudo()
        for task in self.sudo().with_context(active_test=False):
            old_project, old_plane_id, item_id = links.get(task.id, (None, None, None))
            if not item_id or task.project_id.plane_project_id == old_plane_id:
                continue
            Job._plane_enqueue_retire(old_project, old_plane_id, item_id)
            values = {"plane_work_item_id": False, "plane_snapshot": False,
                      "plane_remote_updated_at": False, "plane_sync_error": False}
            if task.plane_sync_state != "archived":
                values["plane_sync_state"] = "none"
            task.with_context(plane_remote=True).write(values)
            where = ("a new one is created in the Plane project of "
                     f"{task.project_id.display_name}" if task.project_id.plane_project_id
                     else "this project is not linked to Plane")
            task.message_post(body=Markup("<p>%s</p>") % (
                f"Moved from {old_project.display_name}: its work item there is cancelled, and "
                f"{where}."), subtype_xmlid="mail.mt_note")

    # -- chatter -> Plane comments (queued in the poster's transaction, sent by a job)

    def message_post(self, **kwargs):
        message = super().message_post(**kwargs)
        # "comment" is what a person types in the chatter (message or note); e-mails and the
        # notes this module posts itself are other types, and Plane's comments come in with
        # plane_remote set.
        if (len(self) == 1 and message.message_type == "comment"
                and not plane_remote(self.env)):
            self._plane_queue_comment(message)
        return message

    def _plane_queue_comment(self, message) -> None:
        task = self.sudo()
        if (message.sudo().plane_comment_id or not task.project_id.plane_sync_comments
                or not task._plane_syncable()):
            return
        message.sudo().plane_comment_pending = True
        self.env["plane.sync.job"].sudo()._plane_enqueue(task, kind="comment")

    def _plane_push_comments(self) -> None:
        """Send this task's pending chatter messages to its work item, oldest first.

        Each comment carries the message's external id, so a job that dies after Plane took a
        comment but before Odoo committed finds it again (409) instead of posting it twice."""
        self.ensure_one()
        pending = self.env["mail.message"].sudo().search([
            ("model", "=", "project.task"), ("res_id", "=", self.id),
            ("plane_comment_pending", "=", True),
        ], order="id")
        if not pending:
            return
        if self._plane_syncable() and not self.plane_work_item_id:
            self._plane_push()  # a comment needs its work item: create it now
        if not (self._plane_syncable() and self.plane_work_item_id
                and self.project_id.plane_sync_comments):
            pending.write({"plane_comment_pending": False})
            return
        connector = self.env["plane.connector"]
        path = connector._plane_path(
            "comments", connector._plane_uuid(self.project_id.plane_project_id, "Plane project id"),
            connector._plane_uuid(self.plane_work_item_id, "Plane work item id"))
        for message in pending:
            try:
                comment = connector._plane_create_idempotent(
                    path, {"comment_html": self._plane_comment_html(message)},
                    external_id=f"mail.message,{message.id}", external_source=EXTERNAL_SOURCE)
            except NotFoundError:
                self._plane_mark_deleted_in_plane()
                pending.write({"plane_comment_pending": False})
                return
            message.write({"plane_comment_id": str(comment["id"]),
                           "plane_comment_pending": False})

    @api.model
    def _plane_comment_html(self, message) -> str:
        author = message.author_id.display_name or "Odoo"
        # Sanitized again: the chatter stores sanitized HTML, but Plane renders what it gets.
        body = Markup("<p><em>From Odoo, by %s:</em></p>%s") % (
            author, Markup(html_sanitize(message.body or "")))  # noqa: S704
        return str(body)

    def _plane_syncable(self):
        return self.filtered(
            lambda t: t.project_id.plane_project_id and t.active
            and t.plane_sync_state not in ("unlinked", "archived")
        )

    def _plane_queue_push(self):
        # sudo: the sync fields are bookkeeping, not the user's edit; a portal user editing a
        # shared task may write only the project-sharing fields.
        tasks = self.sudo()._plane_syncable()
        if not tasks:
            return
        self.env["plane.sync.job"].sudo()._plane_enqueue(tasks)
        tasks.with_context(plane_remote=True).write({"plane_sync_state": "pending"})

    def _plane_queue_archive(self):
        Job = self.env["plane.sync.job"].sudo()
        for task in self.sudo().filtered(
            lambda t: t.plane_work_item_id and t.project_id.plane_project_id
        ):
            Job._plane_enqueue(task, kind="archive", work_item_id=task.plane_work_item_id)

    def action_plane_push(self):
        """Queue these tasks for Plane now; a task deleted in Plane gets a new work item."""
        self.env["plane.connector"]._plane_check_rights(self, "write")
        self.sudo().filtered(lambda t: t.plane_sync_state == "unlinked").with_context(
            plane_remote=True).write({"plane_sync_state": "none", "plane_sync_error": False})
        self._plane_queue_push()
        return True

    # -- the push (runs in a job's transaction)

    def _plane_push(self, _depth: int = 0) -> None:
        """Create or update this task's work item with the latest Odoo values."""
        self.ensure_one()
        project = self.project_id
        if not project.plane_project_id or not self.active or self.plane_sync_state in (
            "unlinked", "archived"
        ):
            return
        connector = self.env["plane.connector"]
        items = connector._plane_path(
            "work_items", connector._plane_uuid(project.plane_project_id, "Plane project id"))
        if self.parent_id and not self.parent_id.plane_work_item_id and _depth < 10 and (
            self.parent_id.project_id == project
        ):
            self.parent_id._plane_push(_depth + 1)  # the parent must exist in Plane first
        snapshot = self._plane_get_snapshot()
        item = None
        if self.plane_work_item_id:
            diff = self._plane_diff(project, snapshot)
            if not diff:
                self._plane_store(None)
                return
            item_path = f"{items}{connector._plane_uuid(self.plane_work_item_id, 'Work item id')}/"
            try:
                item = connector._plane_request("PATCH", item_path, json=diff)
            except NotFoundError:
                # Deleted in Plane, or archived there (Plane's API hides archived work items and
                # has no route to unarchive one): either way out of this API's reach.
                self._plane_mark_deleted_in_plane()
                return
        else:
            desired = self._plane_desired(project, {})
            body = {k: v for k, v in desired.items() if v not in (None, [], "")}
            item = connector._plane_create_idempotent(
                items, body, external_id=f"project.task,{self.id}",
                external_source=EXTERNAL_SOURCE,
            )
            # A repeated create (an interrupted first sync) answers with the work item as it
            # was first created: bring it up to date.
            got = plane_values(item)
            diff = {
                k: v for k, v in desired.items()
                if got.get(k) != v and (got.get(k) or v) not in (None, [], "")
            } if got else body
            if diff:
                item = connector._plane_request("PATCH", f"{items}{item['id']}/", json=diff)
        self._plane_store(item)

    def _plane_diff(self, project, snapshot: dict) -> dict:
        desired = self._plane_desired(project, snapshot)
        return {k: v for k, v in desired.items() if k not in snapshot or snapshot[k] != v}

    def _plane_desired(self, project, snapshot: dict) -> dict:
        """Plane values for the enabled fields; a field Plane already has equivalently is kept."""
        out = {}
        for key in SYNC_KEYS:
            if project[MODE_FIELDS[key]] == "off":
                continue
            if key in snapshot and self._plane_same(key, project, snapshot[key]):
                out[key] = snapshot[key]
            else:
                out[key] = self._plane_to_plane(key, project)
        return out

    def _plane_store(self, item: dict | None) -> None:
        """Record a successful push: the work item's id, its values and ``updated_at``."""
        values = {"plane_synced_at": fields.Datetime.now(), "plane_sync_error": False}
        if item:
            values.update(
                plane_work_item_id=item["id"],
                plane_snapshot=json.dumps({**self._plane_get_snapshot(), **plane_values(item)}),
                plane_remote_updated_at=item.get("updated_at") or self.plane_remote_updated_at,
            )
        pending = self.env["plane.sync.job"].sudo().search_count(
            [("task_id", "=", self.id), ("state", "=", "pending")])
        values["plane_sync_state"] = "pending" if pending else "synced"
        self.with_context(plane_remote=True).write(values)

    def _plane_mark_error(self, message: str) -> None:
        self.with_context(plane_remote=True).write(
            {"plane_sync_state": "error", "plane_sync_error": message})

    def _plane_mark_waiting(self, message: str) -> None:
        """Plane is unreachable: the task's change is queued, not failing."""
        self.with_context(plane_remote=True).write(
            {"plane_sync_state": "waiting", "plane_sync_error": f"Waiting for Plane: {message}"})

    def _plane_mark_deleted_in_plane(self) -> None:
        """The work item is gone from Plane: unlink and flag the task, never delete it."""
        self.ensure_one()
        if self.plane_sync_state == "unlinked":
            return
        self.env["plane.sync.job"].sudo().search(
            [("task_id", "=", self.id), ("state", "=", "pending")]
        ).write({"state": "done", "last_error": "work item deleted in Plane"})
        self.with_context(plane_remote=True).write({
            "plane_work_item_id": False, "plane_snapshot": False,
            "plane_remote_updated_at": False, "plane_sync_state": "unlinked",
            "plane_sync_error": "The work item was deleted in Plane. Use \"Push to Plane\" to "
            "create it again.",
        })
        self.message_post(body=Markup(
            "<p>The Plane work item of this task was deleted in Plane: the task is no longer "
            "linked (it was kept in Odoo).</p>"), subtype_xmlid="mail.mt_note")

    @api.model
    def _plane_archive_work_item(self, plane_project_id: str, work_item_id: str, task,
                                 project=None) -> None:
        """Close a work item (cancelled state) whose task was archived or deleted.

        Plane's public API (v1) has no work-item archive route, only the project one, so the
        cancelled state is how an API client retires an item; Plane's own auto-archive setting
        then archives it like any other closed item."""
        if not work_item_id or (task and task.active):
            return
        connector = self.env["plane.connector"]
        project = project or task.project_id
        item_path = connector._plane_path(
            "work_items", connector._plane_uuid(plane_project_id, "Plane project id"),
            connector._plane_uuid(work_item_id, "Work item id"))
        try:
            item = connector._plane_request("GET", item_path)
        except NotFoundError:
            item = None
        if item:
            state = project._plane_state(ref_id(item.get("state"))) if project else None
            if project and (state or {}).get("group") not in ("completed", "cancelled"):
                cancelled = [s for s in project._plane_cache("states")
                             if s["group"] == "cancelled"]
                if cancelled:
                    item = connector._plane_request("PATCH", item_path,
                                                    json={"state": cancelled[0]["id"]})
        if task:
            values = {"plane_sync_state": "archived", "plane_synced_at": fields.Datetime.now(),
                      "plane_sync_error": False}
            if item:
                values.update(
                    plane_snapshot=json.dumps({**task._plane_get_snapshot(),
                                               **plane_values(item)}),
                    plane_remote_updated_at=item.get("updated_at"))
            task.with_context(plane_remote=True).write(values)

    # -- Plane -> Odoo (runs in the connector's delivery processing, exactly once per event)

    @api.model
    def _plane_apply_item_event(self, action: str, payload: dict) -> bool:
        data = payload.get("data")
        if not isinstance(data, dict) or not data.get("id"):
            return False
        Task = self.with_context(active_test=False)
        task = Task.search([("plane_work_item_id", "=", str(data["id"]))], limit=1)
        if task and not self.env["plane.connector"]._plane_event_in_scope(
                payload, task.project_id.plane_project_id, linked=True):
            # Not the linked project's event (see plane.connector._plane_event_in_scope).
            _log.warning("Plane work item %s: event from another project ignored", data["id"])
            return False
        if action == "deleted":
            if task:
                task._plane_mark_deleted_in_plane()
            return bool(task)
        project = self.env["project.project"].search(
            [("plane_project_id", "=", ref_id(data.get("project")) or "")], limit=1)
        if not task:
            # Not linked yet: our own create whose link is not committed, or an item made in
            # Plane. Both take Plane's item as the baseline (Odoo's values are pushed over it).
            # The project is the event's own, so an item is only ever linked within it.
            return bool(project) and (self._plane_import_item(project, data) or bool(
                Task._plane_task_from_external(data, project)))
        if not task.active or task.plane_sync_state == "archived":
            return True  # Plane edits of an archived task's work item are not taken in
        task._plane_apply_remote(data)
        return True

    @api.model
    def _plane_task_from_external(self, data: dict, project):
        match = _EXTERNAL_ID.match(str(data.get("external_id") or ""))
        if data.get("external_source") != EXTERNAL_SOURCE or not match or not project:
            return self.browse()
        task = self.with_context(active_test=False).browse(int(match.group(1))).exists()
        return task if task.project_id == project else self.browse()

    def _plane_apply_remote(self, data: dict) -> None:
        """Apply one work item state from Plane to this task (echoes and stale events dropped)."""
        self.ensure_one()
        project = self.project_id
        project._plane_learn(*learned_names(data))
        remote_at = _parse_time(data.get("updated_at"))
        known_at = _parse_time(self.plane_remote_updated_at)
        if remote_at and known_at and remote_at <= known_at:
            return  # the echo of our own push, or older than what we already have
        incoming = plane_values(data)
        snapshot = self._plane_get_snapshot()
        changed = [k for k in SYNC_KEYS if k in incoming and incoming[k] != snapshot.get(k)]
        if not changed and self.plane_work_item_id:
            return
        to_write, reverted, conflicts = {}, [], []
        for key in changed:
            mode = project[MODE_FIELDS[key]]
            if mode == "off":
                continue
            if key in snapshot and not self._plane_same(key, project, snapshot[key]):
                conflicts.append(key)  # Odoo changed it too and has not pushed yet: Odoo wins
            elif self._plane_same(key, project, incoming[key]):
                continue
            elif mode == "plane":
                to_write.update(self._plane_odoo_values(key, project, incoming[key]))
            else:
                reverted.append(key)
        values = dict(
            to_write,
            plane_work_item_id=str(data["id"]),
            plane_snapshot=json.dumps({**snapshot, **incoming}),
            plane_remote_updated_at=data.get("updated_at") or self.plane_remote_updated_at,
        )
        self.with_context(plane_remote=True).write(values)
        if reverted or conflicts:
            self._plane_queue_push()
            notes = []
            if reverted:
                names = ", ".join(_FIELD_LABELS[k] for k in reverted)
                notes.append(f"Plane edit of {names} overwritten: Odoo owns these fields.")
            if conflicts:
                names = ", ".join(_FIELD_LABELS[k] for k in conflicts)
                notes.append(f"Changed in Plane while an Odoo change of {names} was waiting "
                             "to be pushed: the Odoo value is kept.")
            _log.info("Plane work item %s: %s", data["id"], " ".join(notes))
            self.message_post(body=Markup("<p>%s</p>") % " ".join(notes),
                              subtype_xmlid="mail.mt_note")

    @api.model
    def _plane_import_item(self, project, item: dict) -> bool:
        """Link or create the task for a Plane work item (back-fill, or made in Plane)."""
        Task = self.with_context(active_test=False)
        if Task.search_count([("plane_work_item_id", "=", str(item["id"]))]):
            return False
        task = Task._plane_task_from_external(item, project)
        if task and task.plane_work_item_id:
            # Linked already: an item carrying its external id (anyone in the Plane project can
            # write one) must not take the link over; the task's own item stays.
            return False
        if task and self.env["plane.sync.job"].sudo().search_count(
            [("task_id", "=", task.id), ("kind", "=", "push"), ("state", "=", "running")]
        ):
            # Our own create with its push still running (the webhook outran the push's
            # commit): that push links the task. Linking it here too would write the same row
            # from a second transaction, a serialization failure for one of the two.
            return False
        ours = item.get("external_source") == EXTERNAL_SOURCE and _EXTERNAL_ID.match(
            str(item.get("external_id") or ""))
        if not task and (ours or item.get("archived_at")):
            return False  # the work item of a deleted task, or archived: nothing to bring back
        project._plane_learn(*learned_names(item))
        meta = {
            "plane_work_item_id": str(item["id"]),
            "plane_snapshot": json.dumps(plane_values(item)),
            "plane_remote_updated_at": item.get("updated_at") or False,
            "plane_synced_at": fields.Datetime.now(),
        }
        if task:
            # Our own create whose link was not saved (interrupted): link, then let a push
            # bring Plane up to the Odoo values.
            task.with_context(plane_remote=True).write(dict(meta, plane_sync_error=False))
            task._plane_queue_push()
            return False
        values = {"project_id": project.id, "name": item.get("name") or "(no name)",
                  "plane_sync_state": "synced", **meta}
        for key, value in plane_values(item).items():
            if key != "name" and project[MODE_FIELDS[key]] != "off":
                values.update(self._plane_odoo_values(key, project, value))
        self.with_context(plane_remote=True, mail_create_nolog=True,
                          mail_notrack=True).create(values)
        return True

    @api.model
    def _plane_apply_comment_event(self, action: str, payload: dict) -> bool:
        """A Plane comment becomes a note in the task's chatter (once per comment)."""
        data = payload.get("data")
        if action != "created" or not isinstance(data, dict) or not data.get("id"):
            return False
        if data.get("external_source") == EXTERNAL_SOURCE and _MESSAGE_EXTERNAL_ID.match(
                str(data.get("external_id") or "")):
            return True  # a chatter message of ours coming back: it is in the chatter already
        task = self.with_context(active_test=False).search(
            [("plane_work_item_id", "=", ref_id(data.get("issue")) or "")], limit=1)
        if not task or not self.env["plane.connector"]._plane_event_in_scope(
                payload, task.project_id.plane_project_id, linked=True):
            return False
        Message = self.env["mail.message"].sudo()
        if Message.search_count([("plane_comment_id", "=", str(data["id"]))]):
            return True
        actor = (payload.get("activity") or {}).get("actor") or {}
        name = actor.get("display_name") or actor.get("first_name") or "a Plane user"
        author = self._plane_users_by_email({(actor.get("email") or "").lower()})[:1]
        body = Markup("<p><em>Comment from Plane by %s:</em></p>%s") % (
            # html_sanitize strips scripts, handlers and unsafe URLs: its output is safe HTML.
            name, Markup(html_sanitize(data.get("comment_html") or "")))  # noqa: S704
        message = task.with_context(plane_remote=True).message_post(
            body=body, message_type="comment", subtype_xmlid="mail.mt_note",
            author_id=author.partner_id.id if author else None,
        )
        message.sudo().plane_comment_id = str(data["id"])
        return True

    # -- the mapping, field by field

    def _plane_get_snapshot(self) -> dict:
        try:
            snapshot = json.loads(self.plane_snapshot or "{}")
        except ValueError:
            return {}
        return snapshot if isinstance(snapshot, dict) else {}

    def _plane_tz(self, project=None):
        project = project or self.project_id
        name = project.user_id.tz or self.env.user.tz or "UTC"
        try:
            return pytz.timezone(name)
        except pytz.UnknownTimeZoneError:
            return pytz.utc

    def _plane_deadline_date(self):
        if not self.date_deadline:
            return None
        return pytz.utc.localize(self.date_deadline).astimezone(self._plane_tz()).date()

    def _plane_odoo_value(self, key: str):
        """The task's value of one mapped field, in a comparable form."""
        if key == "name":
            return self.name or ""
        if key == "description_html":
            return html_key(self.description)
        if key == "priority":
            return self.priority or "0"
        if key == "target_date":
            return self._plane_deadline_date()
        if key == "start_date":
            return self.plane_start_date or None
        if key == "state":
            return self.stage_id.id or False
        if key == "labels":
            return frozenset(n.strip().lower() for n in self.tag_ids.mapped("name"))
        if key == "assignees":
            return frozenset(self.user_ids.ids)
        if key == "parent":
            return self.parent_id.id or False
        raise KeyError(key)

    def _plane_from_plane(self, key: str, project, value):
        """A Plane value of one mapped field, in the comparable form of ``_plane_odoo_value``."""
        if key == "name":
            return value or ""
        if key == "description_html":
            return "" if html_is_empty(value) else html_key(html_sanitize(value))
        if key == "priority":
            return priority_to_odoo(value, self._plane_priority_keys())
        if key in ("target_date", "start_date"):
            return parse_date(value)
        if key == "state":
            return project._plane_stage_for_state(value).id or False
        if key == "labels":
            return frozenset(project._plane_label_names(value or []))
        if key == "assignees":
            emails = project._plane_member_emails(value or [])
            return frozenset(self._plane_users_by_email(emails).ids)
        if key == "parent":
            return self._plane_task_by_item(value).id or False
        raise KeyError(key)

    def _plane_same(self, key: str, project, plane_value) -> bool:
        return self._plane_from_plane(key, project, plane_value) == self._plane_odoo_value(key)

    def _plane_to_plane(self, key: str, project):
        """The Plane value to send for one mapped field (may create labels)."""
        if key == "name":
            return self.name or ""
        if key == "description_html":
            return "<p></p>" if html_is_empty(self.description) else str(self.description)
        if key == "priority":
            return priority_to_plane(self.priority, self._plane_priority_keys())
        if key == "target_date":
            return date_string(self._plane_deadline_date())
        if key == "start_date":
            return date_string(self.plane_start_date or None)
        if key == "state":
            return project._plane_state_for_stage(self.stage_id)
        if key == "labels":
            return project._plane_label_ids(self.tag_ids.mapped("name"))
        if key == "assignees":
            emails = {(u.email or u.login or "").strip().lower() for u in self.user_ids}
            ids, missing = project._plane_member_ids({e for e in emails if e})
            if missing:
                _log.debug("task %s: no Plane member for %s", self.id, ", ".join(sorted(missing)))
            return ids
        if key == "parent":
            return self.parent_id.plane_work_item_id or None
        raise KeyError(key)

    def _plane_odoo_values(self, key: str, project, value) -> dict:
        """The ``write`` values that take one Plane field value into the task."""
        if key == "name":
            return {"name": value} if value else {}
        if key == "description_html":
            return {"description": value or False}
        if key == "priority":
            return {"priority": priority_to_odoo(value, self._plane_priority_keys())}
        if key == "target_date":
            day = parse_date(value)
            if not day:
                return {"date_deadline": False}
            tz = self._plane_tz(project)
            noon = tz.localize(dt.datetime.combine(day, dt.time(12, 0)))
            return {"date_deadline": noon.astimezone(pytz.utc).replace(tzinfo=None)}
        if key == "start_date":
            return {"plane_start_date": parse_date(value) or False}
        if key == "state":
            stage = project._plane_stage_for_state(value)
            return {"stage_id": stage.id} if stage else {}
        if key == "labels":
            return {"tag_ids": [Command.set(self._plane_tags(
                project._plane_label_names(value or [])).ids)]}
        if key == "assignees":
            emails = project._plane_member_emails(value or [])
            return {"user_ids": [Command.set(self._plane_users_by_email(emails).ids)]}
        if key == "parent":
            parent = self._plane_task_by_item(value)
            if parent and self and (parent == self or parent in self._get_all_subtasks()):
                return {}
            return {"parent_id": parent.id or False}
        raise KeyError(key)

    @api.model
    def _plane_priority_keys(self) -> tuple[str, ...]:
        return tuple(k for k, _label in self._fields["priority"].selection)

    @api.model
    def _plane_users_by_email(self, emails: set[str]):
        """Internal users whose e-mail or login is one of ``emails`` (case aside, exactly).

        The e-mails come from Plane, where anyone can name themselves ``%@corp.com``: in a
        LIKE pattern ``%`` and ``_`` are wildcards, so they are escaped, and the matches are
        checked again exactly."""
        emails = {e.strip().lower() for e in emails if e and e.strip()}
        if not emails:
            return self.env["res.users"]
        leaves = [(f, "=ilike", escape_psql(e)) for e in sorted(emails) for f in ("email", "login")]
        domain = ["|"] * (len(leaves) - 1) + leaves
        users = self.env["res.users"].sudo().search([("share", "=", False)] + domain)
        return users.filtered(lambda u: (u.email or "").strip().lower() in emails
                              or (u.login or "").strip().lower() in emails)

    @api.model
    def _plane_tags(self, names: set[str]):
        Tag = self.env["project.tags"].sudo()
        tags = Tag.browse()
        for name in sorted(names):
            # A Plane label named "%" is that tag, not any tag.
            tag = (Tag.search([("name", "=ilike", escape_psql(name))], limit=1)
                   or Tag.create({"name": name}))
            tags |= tag
        return tags

    @api.model
    def _plane_task_by_item(self, item_id):
        if not item_id:
            return self.browse()
        return self.with_context(active_test=False).search(
            [("plane_work_item_id", "=", str(item_id))], limit=1)
