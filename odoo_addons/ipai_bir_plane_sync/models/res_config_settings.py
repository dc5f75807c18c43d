"""Settings > Plane: the Plane project that holds the BIR filings."""

from odoo import api, fields, models
from odoo.addons.ipai_plane_connector.paths import is_uuid
from odoo.exceptions import ValidationError

from .bir_filing import PARAM_PROJECT


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    plane_bir_project_id = fields.Char(
        string="Plane project for BIR filings", config_parameter=PARAM_PROJECT,
        help="The Plane project (its UUID) in which each BIR filing gets one work item.",
    )

    @api.constrains("plane_bir_project_id")
    def _check_plane_bir_project_id(self):
        # It becomes part of every filing's request path.
        for settings in self:
            value = (settings.plane_bir_project_id or "").strip()
            if value and not is_uuid(value):
                raise ValidationError(
                    "Plane project for BIR filings: enter the project's id, a UUID such as "
                    "0f8fad5b-d9cb-469f-a165-70867728950e."
                )
