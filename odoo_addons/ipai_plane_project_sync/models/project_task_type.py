"""Stages carry the Plane state group they stand for (guessed from the name, editable)."""

from odoo import api, fields, models

from ..mapping import STATE_GROUPS, guess_state_group


class ProjectTaskType(models.Model):
    _inherit = "project.task.type"

    plane_state_group = fields.Selection(
        STATE_GROUPS, string="Plane state group", compute="_compute_plane_state_group",
        store=True, readonly=False,
        help="The Plane state group this stage maps to. A task in this stage goes to the Plane "
        "state of the same name, else to the first state of this group; a work item moved to "
        "a state comes back to the stage of the same name, else the first stage of its group.",
    )

    @api.depends("name", "fold")
    def _compute_plane_state_group(self):
        for stage in self:
            if not stage.plane_state_group:
                stage.plane_state_group = guess_state_group(stage.name, stage.fold)
