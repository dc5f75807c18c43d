"""``plane.sweep.seen``: the work items the deletion check saw in Plane, per project and round.

Kept apart from ``project.task`` on purpose: the check walks a project while webhooks and
pushes write the same tasks. Marking the tasks themselves made one side fail (both run in
REPEATABLE READ: "could not serialize access due to concurrent update"); these rows are written
by the check alone, one check per project at a time.
"""

from odoo import fields, models


class PlaneSweepSeen(models.Model):
    _name = "plane.sweep.seen"
    _description = "Plane deletion check: work items seen"
    _log_access = False

    project_id = fields.Many2one("project.project", required=True, ondelete="cascade",
                                 index=True, readonly=True)
    work_item_id = fields.Char(required=True, readonly=True)
    sweep_round = fields.Integer(required=True, readonly=True)

    # Odoo 19 ignores _sql_constraints (it only warns); 18 does not know models.Constraint.
    if hasattr(models, "Constraint"):
        _item_uniq = models.Constraint(
            "UNIQUE (project_id, work_item_id)", "A work item is seen once per project.")
    else:
        _sql_constraints = [("item_uniq", "UNIQUE (project_id, work_item_id)",
                             "A work item is seen once per project.")]

    def _plane_mark(self, project, item_ids: list[str]) -> None:
        """Record that ``project``'s current round saw ``item_ids`` in Plane (plain SQL: many
        rows per page, and no ORM write to trigger anything)."""
        self.env.cr.execute(
            "INSERT INTO plane_sweep_seen (project_id, work_item_id, sweep_round) "
            "SELECT %s, item, %s FROM unnest(%s::varchar[]) AS item "
            "ON CONFLICT (project_id, work_item_id)"
            " DO UPDATE SET sweep_round = EXCLUDED.sweep_round",
            (project.id, project.plane_sweep_round, list(item_ids)))
        self.invalidate_model()

    def _plane_forget_before(self, project) -> None:
        """Drop what earlier rounds saw (items since deleted would otherwise stay forever)."""
        self.env.cr.execute(
            "DELETE FROM plane_sweep_seen WHERE project_id = %s AND sweep_round < %s",
            (project.id, project.plane_sweep_round))
        self.invalidate_model()

    def _plane_unseen_tasks(self, project) -> list[int]:
        """Ids of ``project``'s linked tasks whose work item the current round has not seen."""
        self.env["project.task"].flush_model(["project_id", "plane_work_item_id"])
        self.env.cr.execute(
            "SELECT t.id FROM project_task t WHERE t.project_id = %s"
            " AND t.plane_work_item_id IS NOT NULL AND NOT EXISTS ("
            "  SELECT 1 FROM plane_sweep_seen s WHERE s.project_id = t.project_id"
            "  AND s.work_item_id = t.plane_work_item_id AND s.sweep_round = %s)",
            (project.id, project.plane_sweep_round))
        return [row[0] for row in self.env.cr.fetchall()]
