"""``plane.project.link``: the Plane projects this database syncs, with their sync marks.

The reconciliation sweep exists because Plane disables a webhook after its retries fail and
never replays what it missed: it walks each linked project's work items newest-first
(``order_by=-updated_at``) down to the last sync mark and feeds every change through the same
``_plane_handle_event`` the webhooks use.
"""

import datetime as dt
import logging

from odoo import api, fields, models
from odoo.tools import mute_logger
from psycopg2.errors import UniqueViolation

from .plane_connector import SILENCE_GRACE, describe_error, parse_plane_time

_log = logging.getLogger(__name__)

MARK_MARGIN = dt.timedelta(minutes=5)


class PlaneProjectLink(models.Model):
    _name = "plane.project.link"
    _inherit = ["plane.sync.guard"]
    _description = "Linked Plane project"
    _plane_sync_fields = frozenset({"plane_project_id", "sync_mark"})
    _order = "name"

    name = fields.Char(required=True)
    plane_project_id = fields.Char(required=True, readonly=True, string="Plane project id")
    active = fields.Boolean(default=True)
    sync_mark = fields.Char(
        readonly=True, help="updated_at (ISO, microseconds) of the newest work item seen"
    )
    last_sweep_at = fields.Datetime(readonly=True)
    last_sweep_changes = fields.Integer(readonly=True)
    last_webhook_at = fields.Datetime(readonly=True)
    webhook_silent_since = fields.Datetime(
        readonly=True,
        help="Set when the sweep found changes that no webhook reported: check that the "
        "webhook is still active in Plane (Plane disables it after failed retries).",
    )
    last_error = fields.Text(readonly=True)

    if hasattr(models, "Constraint"):
        _plane_project_uniq = models.Constraint(
            "UNIQUE (plane_project_id)", "This Plane project is already linked."
        )
    else:
        _sql_constraints = [
            ("plane_project_uniq", "UNIQUE (plane_project_id)",
             "This Plane project is already linked."),
        ]

    @api.model
    def _plane_ensure(self, plane_project_id: str, name: str):
        """The link for a project, created on first use with its mark a little in the past.

        Starting the mark at "now" means the sweep covers every change made after Odoo first
        wrote to the project, even one whose webhook never arrived; the margin absorbs clock
        skew between Odoo and Plane (re-feeding a change is harmless). Empty when a concurrent
        transaction created it (see ``_plane_create_link``).
        """
        link = self.with_context(active_test=False).search(
            [("plane_project_id", "=", plane_project_id)], limit=1
        )
        if link:
            return link
        return self._plane_create_link(plane_project_id, name)

    def _plane_create_link(self, plane_project_id: str, name: str):
        """Create the link; an empty recordset when another transaction just created it.

        A user's "Sync to Plane" and the push cron can link the same project at once: both miss
        it in their snapshots, one INSERT waits for the other and then breaks the unique
        constraint. That is no failure (the link exists, committed by the other), so it is
        caught without the ERROR line Odoo logs for a failed query, and the caller carries on:
        nothing in its transaction needs to read the link, which its snapshot cannot see.
        """
        start = dt.datetime.now(dt.timezone.utc) - MARK_MARGIN
        values = {
            "plane_project_id": plane_project_id, "name": name, "sync_mark": start.isoformat(),
        }
        try:
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                return self.create(values)
        except UniqueViolation:
            _log.info("Plane project %s was linked by a concurrent transaction", plane_project_id)
            return self.browse()

    @api.model
    def _plane_webhook_seen(self, plane_project_id: str) -> None:
        link = self.search([("plane_project_id", "=", plane_project_id)], limit=1)
        if link:
            link.write({"last_webhook_at": fields.Datetime.now(), "webhook_silent_since": False})

    def _plane_sweep(self, per_page: int = 100) -> int:
        """Feed changes newer than the sync mark to the event hook; returns how many.

        The first sweep only sets the mark (Odoo owns the data: there is nothing to import).
        Each item runs in a savepoint, so one bad item is logged and skipped without losing
        the others; the mark then stays where it was, so the next sweep tries again.
        """
        self.ensure_one()
        connector = self.env["plane.connector"]
        mark = parse_plane_time(self.sync_mark)
        newest_text, newest = self.sync_mark, mark
        changes, any_failed = 0, False
        last_webhook = self.env["plane.webhook.delivery"]._plane_last_received_at()
        silent = False
        try:
            path = connector._plane_workspace_path(
                "projects", connector._plane_uuid(self.plane_project_id, "Linked Plane project id"),
                "work-items")
            for item in connector._plane_paginate(
                path, params={"order_by": "-updated_at", "expand": "state"}, per_page=per_page
            ):
                updated = parse_plane_time(item.get("updated_at"))
                if updated is None:
                    continue
                if mark is not None and updated <= mark:
                    break
                if newest is None or updated > newest:
                    newest, newest_text = updated, item["updated_at"]
                if mark is None:
                    break  # first sweep: the newest item is the baseline
                if self._plane_feed(connector, item):
                    changes += 1
                else:
                    any_failed = True
                now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                if (last_webhook is None or updated > last_webhook + SILENCE_GRACE) and (
                    updated < now - SILENCE_GRACE
                ):
                    silent = True
        except Exception as exc:  # noqa: BLE001 - kept on the link, the next sweep retries
            error = describe_error(exc)
            self.write({"last_error": error, "last_sweep_at": fields.Datetime.now()})
            if connector._plane_is_outage(exc):
                connector._plane_outage_note(exc)  # logs once per outage, not per project
                return changes
            _log.warning("Plane sweep of project %s failed: %s", self.plane_project_id, error)
            return changes
        values = {
            "last_sweep_at": fields.Datetime.now(),
            "last_sweep_changes": changes,
            "last_error": False,
        }
        if not any_failed and newest_text != self.sync_mark:
            values["sync_mark"] = newest_text
        if silent and not self.webhook_silent_since:
            values["webhook_silent_since"] = fields.Datetime.now()
            _log.warning(
                "Plane project %s: the sweep found changes no webhook reported; the webhook may "
                "be disabled in Plane", self.plane_project_id,
            )
        self.write(values)
        return changes

    def _plane_feed(self, connector, item: dict) -> bool:
        payload = {"event": "issue", "action": "updated", "webhook_id": None, "data": item,
                   "activity": {"field": None}, "source": "reconcile"}
        try:
            with self.env.cr.savepoint():
                connector._plane_handle_event("issue", "updated", payload)
                self.env.flush_all()
        except Exception as exc:  # noqa: BLE001 - one bad item must not stop the sweep
            self.env.clear()
            _log.warning("Plane sweep: work item %s not applied: %s", item.get("id"),
                         describe_error(exc))
            return False
        return True
