"""The BIR module's part of the event hook: Plane work item events for filings."""

from odoo import api, models


class PlaneConnector(models.AbstractModel):
    _inherit = "plane.connector"

    @api.model
    def _plane_handle_event(self, event, action, payload):
        handled = super()._plane_handle_event(event, action, payload)
        if event != "issue":
            return handled
        data = payload.get("data")
        if not isinstance(data, dict):
            return handled
        filing = self.env["bir.filing"].sudo()._plane_find(data, payload)
        if not filing:
            return handled
        filing._plane_apply_remote(action, data)
        return True

    @api.model
    def _plane_outage_resumed(self):
        super()._plane_outage_resumed()
        self.env["bir.filing"]._plane_schedule_push()
