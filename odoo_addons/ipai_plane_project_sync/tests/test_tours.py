"""A project's and a task's Plane tab in a real browser (headless Chromium): Odoo tours.

The tours live in static/tests/tours. The sync jobs they queue are run between tours, as the
cron would, and the result is checked in the next tour and here.
"""

from odoo.addons.ipai_plane_connector.tests.common import TOUR_TAG
from odoo.tests import tagged

from ..mapping import plane_identifier
from .common import ProjectSyncCase

WEB_URL = "https://plane.example.test"
PROJECT_FORM = "/odoo/action-project.open_view_project_all_config/{}"
TASK_FORM = "/odoo/action-project.action_view_all_task/{}"


@tagged("post_install", "-at_install", TOUR_TAG)
class TestPlaneProjectTours(ProjectSyncCase):
    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param("plane.web_url", WEB_URL)
        self.slug = self.emulator.workspace_slug

    def _project_with_tasks(self, name, count=2):
        project = self.env["project.project"].create({
            "name": name, "type_ids": [(6, 0, self.stages.ids)],
        })
        self.env["project.task"].create([
            {"name": f"{name} task {n}", "project_id": project.id} for n in range(count)
        ])
        return project

    def _taken_identifiers(self):
        return {p.data["identifier"] for p in self.emulator.store.projects.values()}

    def test_project_tab_create_then_backfill_progress(self):
        project = self._project_with_tasks("Tour Garden")
        identifier = plane_identifier(project.name, self._taken_identifiers())
        url = PROJECT_FORM.format(project.id)
        prefix = f"{WEB_URL}/{self.slug}/projects/"
        self.start_plane_tour(url, "plane_project_create_tour", identifier=identifier,
                              tasks=2, project_url_prefix=prefix)
        project.invalidate_recordset()
        self.assertEqual(project.plane_project_identifier, identifier)
        self.assertIn(project.plane_project_id, self.emulator.store.projects)
        self.run_jobs()  # what the cron does in the background
        self.start_plane_tour(url, "plane_project_progress_tour", tasks=2)
        tasks = project.task_ids
        self.assertTrue(all(tasks.mapped("plane_work_item_id")), tasks.mapped("plane_sync_state"))

    def test_project_tab_link_existing(self):
        project = self._project_with_tasks("Tour Orchard", count=1)
        self.start_plane_tour(
            PROJECT_FORM.format(project.id), "plane_project_link_tour",
            identifier="ERP", plane_name="ERP Sync Lab", tasks=1,
            project_url_prefix=f"{WEB_URL}/{self.slug}/projects/{self.emulator.project_id}/",
        )  # fmt: skip
        project.invalidate_recordset()
        self.assertEqual(project.plane_project_id, self.emulator.project_id)

    def test_task_tab_status_link_and_push(self):
        self.link()
        synced, failing = self.env["project.task"].create([
            {"name": "Synced in Plane", "project_id": self.project.id},
            {"name": "Refused by Plane", "project_id": self.project.id},
        ])
        self.run_jobs()
        self.assertEqual(synced.plane_sync_state, "synced")
        error = "Plane answered 400: name is too long"
        failing.with_context(plane_remote=True).write(
            {"plane_sync_state": "error", "plane_sync_error": error})
        item_url = (f"{WEB_URL}/{self.slug}/projects/{self.emulator.project_id}/issues/"
                    f"{synced.plane_work_item_id}/")
        self.start_plane_tour(TASK_FORM.format(synced.id), "plane_task_tour",
                              item_url=item_url, failing_task_url=TASK_FORM.format(failing.id),
                              error=error)
        failing.invalidate_recordset()
        self.assertEqual(failing.plane_sync_state, "pending")
        self.run_jobs()
        self.assertEqual(failing.plane_sync_state, "synced")
        self.assertTrue(self.items_of(failing))
