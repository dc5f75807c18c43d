"""A change to any ``plane.*`` parameter starts the resolved-secret caches over.

This worker forgets its clients and secrets at once; the other workers see the new
``plane.secrets_generation`` (parameters are invalidated across workers by Odoo's registry
signalling) and start a fresh cache for the database on their next request.
"""

import uuid

from odoo import api, models

from ..caches import PARAM_SECRETS_GENERATION, forget_clients


class IrConfigParameter(models.Model):
    _inherit = "ir.config_parameter"

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        self._plane_settings_changed({vals.get("key") for vals in vals_list})
        return records

    def write(self, vals):
        keys = set(self.mapped("key")) | {vals.get("key")}
        result = super().write(vals)
        self._plane_settings_changed(keys)
        return result

    def unlink(self):
        keys = set(self.mapped("key"))
        result = super().unlink()
        self._plane_settings_changed(keys)
        return result

    @api.model
    def _plane_settings_changed(self, keys) -> None:
        keys = {k for k in keys if isinstance(k, str) and k.startswith("plane.")}
        if not keys or keys == {PARAM_SECRETS_GENERATION}:
            return
        forget_clients(self.env.cr.dbname)
        self.sudo().set_param(PARAM_SECRETS_GENERATION, uuid.uuid4().hex)
