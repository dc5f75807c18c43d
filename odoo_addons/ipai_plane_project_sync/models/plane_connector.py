"""This module's part of the connector's event hook: work items and their comments."""

from odoo import api, models


class PlaneConnector(models.AbstractModel):
    _inherit = "plane.connector"

    @api.model
    def _plane_handle_event(self, event, action, payload):
        handled = super()._plane_handle_event(event, action, payload)
        Task = self.env["project.task"].sudo()
        if event == "issue":
            return Task._plane_apply_item_event(action, payload) or handled
        if event == "issue_comment":
            return Task._plane_apply_comment_event(action, payload) or handled
        return handled

    @api.model
    def _plane_outage_resumed(self):
        super()._plane_outage_resumed()
        self.env["plane.sync.job"]._plane_wake()
