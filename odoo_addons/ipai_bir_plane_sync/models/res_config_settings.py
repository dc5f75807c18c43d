"""Settings > Plane: the Plane project that holds the BIR filings."""

from odoo import fields, models

from .bir_filing import PARAM_PROJECT


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    plane_bir_project_id = fields.Char(
        string="Plane project for BIR filings", config_parameter=PARAM_PROJECT,
        help="The Plane project (its UUID) in which each BIR filing gets one work item.",
    )
