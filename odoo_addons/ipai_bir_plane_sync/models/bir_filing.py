"""``bir.filing``: one Philippine BIR tax filing, shown in Plane as one work item.

Odoo owns the filing; Plane is a view of it. Changes are queued (``plane_dirty``) and pushed by
a cron or the "Sync to Plane" button, so a rolled-back transaction never leaves Plane ahead of
Odoo for long and a retried push is harmless: the create carries ``external_id`` and Plane
answers a repeat with the existing work item. The one thing Plane may tell Odoo is that the
work item reached a state of group ``completed``: the filing is then done.

This module never calls HTTP itself: everything goes through ``plane.connector``.
"""

import logging
import re

from odoo import api, fields, models
from odoo.addons.ipai_plane_connector.crons import wake_cron
from odoo.addons.ipai_plane_connector.exceptions import NotFoundError, PlaneError
from odoo.addons.ipai_plane_connector.paths import is_uuid
from odoo.addons.ipai_plane_connector.redaction import redact
from odoo.addons.ipai_plane_connector.sync_guard import guard_sync_fields, plane_remote
from odoo.exceptions import UserError, ValidationError

_log = logging.getLogger(__name__)


PARAM_PROJECT = "plane.bir.project_id"
FORM_CODES = [
    ("1601-C", "1601-C Monthly withholding tax on compensation"),
    ("0619-E", "0619-E Monthly remittance of expanded withholding tax"),
    ("0619-F", "0619-F Monthly remittance of final withholding tax"),
    ("1601-EQ", "1601-EQ Quarterly expanded withholding tax"),
    ("2550M", "2550M Monthly VAT declaration"),
    ("2550Q", "2550Q Quarterly VAT return"),
    ("1702Q", "1702Q Quarterly income tax return"),
    ("1702-RT", "1702-RT Annual income tax return"),
]
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$")
# Fields whose change must reach Plane.
_SYNCED = {"form_code", "period", "due_date", "state", "notes"}
# Written by the sync only: the ids become request paths (see sync_guard.guard_sync_fields).
SYNC_FIELDS = frozenset({"plane_work_item_id", "plane_project_id", "plane_dirty",
                         "plane_sync_error", "plane_synced_at"})


class BirFiling(models.Model):
    _name = "bir.filing"
    _description = "BIR tax filing"
    _order = "due_date desc, id desc"

    name = fields.Char(compute="_compute_name", store=True)
    form_code = fields.Selection(FORM_CODES, required=True, string="BIR form")
    period = fields.Char(required=True, help="YYYY-MM for monthly forms, YYYY-Qn for quarterly")
    due_date = fields.Date(required=True)
    state = fields.Selection(
        [("draft", "Draft"), ("in_progress", "In progress"), ("done", "Filed"),
         ("cancelled", "Cancelled")],
        required=True, default="draft",
    )
    notes = fields.Text()
    plane_work_item_id = fields.Char(readonly=True, copy=False, index=True)
    plane_project_id = fields.Char(readonly=True, copy=False)
    plane_dirty = fields.Boolean(default=True, copy=False, readonly=True,
                                 help="Changed since the last push to Plane")
    plane_sync_error = fields.Text(readonly=True, copy=False)
    plane_synced_at = fields.Datetime(readonly=True, copy=False)

    if hasattr(models, "Constraint"):
        _form_period_uniq = models.Constraint(
            "UNIQUE (form_code, period)", "There is already a filing for this form and period."
        )
    else:
        _sql_constraints = [
            ("form_period_uniq", "UNIQUE (form_code, period)",
             "There is already a filing for this form and period."),
        ]

    @api.depends("form_code", "period")
    def _compute_name(self):
        for filing in self:
            filing.name = f"BIR {filing.form_code or '?'} {filing.period or ''}".strip()

    @api.constrains("period")
    def _check_period(self):
        for filing in self:
            if filing.period and not _PERIOD.match(filing.period):
                raise ValidationError(
                    f"Period {filing.period!r} must look like 2026-10 (monthly) or 2026-Q3."
                )

    @api.model_create_multi
    def create(self, vals_list):
        guard_sync_fields(self, vals_list, SYNC_FIELDS)
        filings = super().create(vals_list)
        filings._plane_schedule_push()
        return filings

    def write(self, vals):
        guard_sync_fields(self, [vals], SYNC_FIELDS)
        if not plane_remote(self.env) and _SYNCED & set(vals):
            vals = dict(vals, plane_dirty=True)
        result = super().write(vals)
        if vals.get("plane_dirty"):
            self._plane_schedule_push()
        return result

    # -- Odoo -> Plane

    def action_plane_sync(self):
        """Push these filings to Plane now (the button): the caller must be allowed to edit
        them, checked before the first request; the push then writes the sync fields."""
        self.env["plane.connector"]._plane_check_rights(self, "write")
        self.sudo()._plane_push(raise_errors=True)
        return True

    @api.model
    def _cron_plane_push(self, limit: int = 100):
        wait = self.env["plane.connector"]._plane_outage_wait()
        if wait:
            # Plane is down: come back at the next probe time rather than fail every filing.
            self._plane_schedule_push(after=wait)
            return
        self.search([("plane_dirty", "=", True)], limit=limit)._plane_push()

    def _plane_schedule_push(self, after: float = 0.0):
        wake_cron(self.env, "ipai_bir_plane_sync.ir_cron_bir_plane_push", after=after)

    def _plane_push(self, raise_errors: bool = False):
        """Create or update each filing's work item; errors are kept on the filing."""
        connector = self.env["plane.connector"]
        for filing in self:
            # One push of a filing at a time: the button (raise_errors) and the push cron that
            # the same save woke would otherwise both push it.
            if not connector._plane_lock_for_push(filing, from_button=raise_errors):
                continue  # another transaction is pushing it, or has since this one began
            try:
                filing._plane_push_one(connector)
            except (PlaneError, UserError) as exc:
                message = redact(exc)
                if not raise_errors and connector._plane_is_outage(exc):
                    # The filings stay dirty: pushed when Plane answers again (the outage's
                    # end wakes this cron), without a failure per filing meanwhile.
                    self._plane_schedule_push(after=connector._plane_outage_note(exc))
                    filing.with_context(plane_remote=True).write(
                        {"plane_sync_error": f"Waiting for Plane: {message}"})
                    break
                filing.with_context(plane_remote=True).write({"plane_sync_error": message})
                _log.warning("BIR filing %s not pushed to Plane: %s", filing.id, message)
                if raise_errors:
                    raise UserError(f"{filing.name}: {message}") from None

    def _plane_push_one(self, connector):
        project = self._plane_project()
        if not project:
            raise UserError(f"Set the Plane project for BIR filings ({PARAM_PROJECT}).")
        project = connector._plane_uuid(project, "The Plane project of BIR filings")
        self.env["plane.project.link"].sudo()._plane_ensure(project, "BIR filings")
        values = self._plane_values(connector, project)
        items = connector._plane_path("work_items", project)
        item = None
        if self.plane_work_item_id:
            item_id = connector._plane_uuid(self.plane_work_item_id, "The filing's work item id")
            try:
                item = connector._plane_request("PATCH", f"{items}{item_id}/", json=values)
            except NotFoundError:
                _log.info("Plane work item of filing %s is gone: creating it again", self.id)
        if item is None:
            item = connector._plane_create_idempotent(
                items, values, external_id=connector._plane_external_id(self)
            )
            # A retried create returns the item as first created: bring it up to date.
            if any(item.get(k) != v for k, v in values.items() if k != "description_html"):
                item = connector._plane_request("PATCH", f"{items}{item['id']}/", json=values)
        self.with_context(plane_remote=True).write({
            "plane_work_item_id": item["id"],
            "plane_project_id": project,
            "plane_dirty": False,
            "plane_sync_error": False,
            "plane_synced_at": fields.Datetime.now(),
        })

    def _plane_values(self, connector, project: str) -> dict:
        form = dict(FORM_CODES).get(self.form_code, self.form_code)
        values = {
            "name": f"BIR {self.form_code} {self.period}",
            "description_html": (
                f"<p>{form}, period {self.period}, due {self.due_date}.</p>"
                + (f"<p>{_escape(self.notes)}</p>" if self.notes else "")
            ),
            "target_date": fields.Date.to_string(self.due_date),
            "priority": "high" if self.state != "done" else "none",
        }
        group = {"done": "completed", "cancelled": "cancelled"}.get(self.state)
        if group:
            state_id = self._plane_state_of_group(connector, project, group)
            if state_id:
                values["state"] = state_id
        return values

    @api.model
    def _plane_state_of_group(self, connector, project: str, group: str):
        path = connector._plane_workspace_path("projects", project, "states")
        for state in connector._plane_paginate(path):
            if state.get("group") == group:
                return state["id"]
        return None

    # -- Plane -> Odoo

    @api.model
    def _plane_find(self, data: dict, payload: dict | None = None):
        """The filing a work item event may touch (empty when none).

        By work item id when the event is in the filing's Plane project; else, for a filing
        not linked yet (our own create whose link is not saved), by our external id, only when
        the event comes from the BIR project: any workspace member can write an external id,
        and a filing must not be marked filed from another project (see
        ``plane.connector._plane_event_in_scope``).
        """
        connector = self.env["plane.connector"]
        payload = {"data": data} if payload is None else payload
        item_id = data.get("id")
        filing = self.search([("plane_work_item_id", "=", item_id)], limit=1) if item_id else None
        if filing:
            in_scope = connector._plane_event_in_scope(payload, filing._plane_project(),
                                                       linked=True)
            return filing if in_scope else self.browse()
        filing = connector._plane_record_from_external(self._name, data).sudo()
        if not filing or filing.plane_work_item_id:
            return self.browse()
        in_scope = connector._plane_event_in_scope(payload, filing._plane_project())
        return filing if in_scope else self.browse()

    def _plane_project(self) -> str:
        """The Plane project of this filing: its own once pushed, else the BIR setting."""
        self.ensure_one()
        return self.plane_project_id or (
            self.env["ir.config_parameter"].sudo().get_param(PARAM_PROJECT) or "").strip()

    def _plane_apply_remote(self, action: str, data: dict):
        """Apply a Plane event: only deletion and completion mean something to Odoo."""
        self.ensure_one()
        remote = self.with_context(plane_remote=True)
        if action == "deleted":
            remote.write({"plane_work_item_id": False})
            return
        if is_uuid(data.get("id")) and not self.plane_work_item_id:
            remote.write({"plane_work_item_id": data["id"]})
        group = self.env["plane.connector"]._plane_state_group(
            self.plane_project_id or data.get("project"), data.get("state")
        )
        if group == "completed" and self.state != "done":
            remote.write({"state": "done"})
            _log.info("BIR filing %s marked filed: its Plane work item was completed", self.id)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
