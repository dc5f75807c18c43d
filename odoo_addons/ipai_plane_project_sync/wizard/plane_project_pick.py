"""Pick an existing Plane project (listed through the cursor pager) to link to a project."""

from odoo import api, fields, models
from odoo.exceptions import UserError


class PlaneProjectPick(models.TransientModel):
    _name = "plane.project.pick"
    _description = "Link an Odoo project to an existing Plane project"

    project_id = fields.Many2one("project.project", required=True, ondelete="cascade")
    line_ids = fields.One2many("plane.project.pick.line", "wizard_id", string="Plane projects")
    choice_id = fields.Many2one("plane.project.pick.line", string="Plane project",
                                domain="[('wizard_id', '=', id), ('linked_to', '=', False)]")

    def _plane_load(self):
        """Fetch the workspace's projects (every page) into the wizard."""
        connector = self.env["plane.connector"]
        linked = {
            p.plane_project_id: p.display_name
            for p in self.env["project.project"].with_context(active_test=False).search(
                [("plane_project_id", "!=", False)])
        }
        lines = [
            (0, 0, {"plane_id": p["id"], "name": p.get("name") or p["id"],
                    "identifier": p.get("identifier") or "",
                    "linked_to": linked.get(p["id"], False)})
            for p in connector._plane_paginate(connector._plane_workspace_path("projects"))
        ]
        self.write({"line_ids": [(5, 0, 0)] + lines})

    def action_link(self):
        self.ensure_one()
        if not self.choice_id:
            raise UserError("Choose a Plane project.")
        if self.choice_id.linked_to:
            raise UserError(f"That Plane project is linked to {self.choice_id.linked_to}.")
        self.project_id._plane_link(
            {"id": self.choice_id.plane_id, "identifier": self.choice_id.identifier})
        return {"type": "ir.actions.act_window_close"}


class PlaneProjectPickLine(models.TransientModel):
    _name = "plane.project.pick.line"
    _description = "Plane project (choice)"
    _rec_name = "name"

    wizard_id = fields.Many2one("plane.project.pick", required=True, ondelete="cascade")
    plane_id = fields.Char(required=True)
    name = fields.Char(required=True)
    identifier = fields.Char()
    linked_to = fields.Char(string="Already linked to")

    @api.depends("name", "identifier")
    def _compute_display_name(self):
        for line in self:
            line.display_name = f"[{line.identifier}] {line.name}" if line.identifier else line.name
