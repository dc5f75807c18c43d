"""``plane.sync.guard``: fields only the Plane synchronisation may write.

Plane ids stored on records become request paths, so a model lists its link and state fields
in ``_plane_sync_fields`` and adds this mixin to its ``_inherit``: a create or write that
touches one of them is refused unless it runs in superuser mode, which the sync code enters
with ``sudo()`` and an RPC caller cannot (a context key would not do: RPC clients send their
own context).

Extending an existing model: ``_name = "project.task"`` and ``_inherit = ["project.task",
"plane.sync.guard"]``; without the ``_name``, Odoo 18 names a model with two parents after
its Python class.
"""

from odoo import api, models

from ..sync_guard import guard_sync_fields


class PlaneSyncGuard(models.AbstractModel):
    _name = "plane.sync.guard"
    _description = "Fields written by the Plane sync only"

    _plane_sync_fields: frozenset[str] = frozenset()

    @api.model_create_multi
    def create(self, vals_list):
        guard_sync_fields(self, vals_list, self._plane_sync_fields)
        return super().create(vals_list)

    def write(self, vals):
        guard_sync_fields(self, [vals], self._plane_sync_fields)
        return super().write(vals)
