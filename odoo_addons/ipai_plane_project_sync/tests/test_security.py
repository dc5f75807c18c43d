"""Issue 12 on project sync: plane_* link fields are the sync's alone, every Plane button checks
the caller's rights before its first request, ids are UUIDs before they become paths, and error
texts stored where project users read them are redacted."""

import uuid
from unittest.mock import patch

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import ProjectSyncCase


def _groups_field(env):
    return "group_ids" if "group_ids" in env["res.users"]._fields else "groups_id"


@tagged("post_install", "-at_install")
class TestProjectSyncSecurity(ProjectSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.employee = cls.env["res.users"].create({
            "name": "Plain Employee", "login": "plain.employee@example.com",
            _groups_field(cls.env): [Command.set([cls.env.ref("base.group_user").id,
                                                  cls.env.ref("project.group_project_user").id])],
        })
        cls.project._plane_link({"id": cls.emulator.project_id, "identifier": "ERP"})
        cls.env["plane.sync.job"]._cron_run_jobs()
        cls.other = cls.env["project.project"].create({"name": "Not in Plane yet"})

    def setUp(self):
        super().setUp()
        self.skip_webhooks()

    def task(self, **values):
        task = self.env["project.task"].create({
            "name": "Guarded", "project_id": self.project.id,
            "user_ids": [Command.set(self.employee.ids)], **values})
        self.run_jobs()
        return task

    def test_link_fields_cannot_be_written_by_users(self):
        task = self.task()
        self.assertTrue(task.plane_work_item_id)
        mine = task.with_user(self.employee)
        for values in ({"plane_work_item_id": "../../other"},
                       {"plane_sync_state": "none"},
                       {"plane_snapshot": "{}", "name": "also renamed"}):
            with self.assertRaises(AccessError):
                mine.write(values)
            # A context key is client-controlled in RPC: it opens nothing.
            with self.assertRaises(AccessError):
                mine.with_context(plane_remote=True).write(values)
        with self.assertRaises(AccessError):
            self.env["project.task"].with_user(self.employee).create({
                "name": "x", "project_id": self.project.id, "plane_work_item_id": "../../x"})
        admin = self.env.ref("base.user_admin")
        with self.assertRaises(AccessError):
            self.project.with_user(admin).write({"plane_project_id": str(uuid.uuid4())})
        message = task.message_ids[:1]
        with self.assertRaises(AccessError):
            message.with_user(admin).write({"plane_comment_id": "x"})
        job = self.env["plane.sync.job"].search([("task_id", "=", task.id)], limit=1)
        with self.assertRaises(AccessError):
            job.with_user(admin).write({"work_item_id": "../../x"})
        self.assertNotEqual(task.plane_work_item_id, "../../other")
        # Their own fields still work, and reach Plane through the queue.
        mine.write({"name": "Renamed by the employee"})
        self.run_jobs()
        self.assertEqual(self.item(task)["name"], "Renamed by the employee")

    def test_plane_buttons_check_rights_before_any_request(self):
        sent = len(self.emulator.requests)
        other = self.other.with_user(self.employee)
        linked = self.project.with_user(self.employee)
        for call in (other.action_plane_create_project, other.action_plane_pick_project,
                     linked.action_plane_unlink_project, linked.action_plane_backfill):
            with self.assertRaises(AccessError):
                call()
        self.assertEqual(len(self.emulator.requests), sent, "no request reached Plane")
        self.assertFalse(self.other.plane_project_id)
        self.assertEqual(self.project.plane_project_id, self.emulator.project_id)
        # A task's push is a project user's: it only queues.
        task = self.task()
        task.with_user(self.employee).action_plane_push()

    def test_stored_ids_are_checked_before_they_become_paths(self):
        task = self.task()
        # A value stored before this check existed, or by SQL.
        task.sudo().with_context(plane_remote=True).write({"plane_work_item_id": "../../x"})
        task.write({"name": "Pushed to a bad id"})
        patches = len(self.requests("PATCH"))
        self.run_jobs()
        self.assertEqual(len(self.requests("PATCH")), patches, "nothing sent")
        self.assertEqual(task.plane_sync_state, "error")
        self.assertIn("not a Plane id", task.plane_sync_error)

    def test_job_errors_are_redacted(self):
        task = self.task()
        fake = "plane_api_" + uuid.uuid4().hex
        task.write({"name": "Fails with a key in the message"})
        model = type(self.env["project.task"])
        with patch.object(model, "_plane_push", autospec=True,
                          side_effect=RuntimeError(f"upstream said: bad key {fake}")):
            self.run_jobs()
        job = self.env["plane.sync.job"].search([("task_id", "=", task.id)], limit=1)
        for text in (job.last_error, task.plane_sync_error):
            self.assertIn("plane_api_***", text)
            self.assertNotIn(fake[10:], text)

    def test_picked_project_id_must_be_a_uuid(self):
        sent = len(self.emulator.requests)
        with self.assertRaisesRegex(UserError, "not a Plane id"):
            self.other._plane_link({"id": "../../workspaces/other/projects/x", "identifier": "X"})
        self.assertEqual(len(self.emulator.requests), sent)
        self.assertFalse(self.other.plane_project_id)
