"""Issue 21 (items 4-6): what a Plane member of another project, a crafted e-mail or an RPC
context can make of a linked task, and who reads the sync jobs."""

import uuid

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, tagged

from .common import ProjectSyncCase


def _groups_field(env):
    return "group_ids" if "group_ids" in env["res.users"]._fields else "groups_id"


@tagged("post_install", "-at_install")
class TestEventScope(ProjectSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.project.plane_mode_name = "plane"
        cls.project._plane_link({"id": cls.emulator.project_id, "identifier": "ERP"})
        cls.env["plane.sync.job"]._cron_run_jobs()
        cls.employee = cls.env["res.users"].create({
            "name": "Scope Employee", "login": "scope.employee@example.com",
            "email": "scope.employee@example.com",
            _groups_field(cls.env): [Command.set([cls.env.ref("base.group_user").id,
                                                  cls.env.ref("project.group_project_user").id])],
        })
        # Another Plane project of the same workspace, linked to nothing in Odoo.
        cls.elsewhere = cls.emulator.add_project("Elsewhere", "ELSE")["id"]

    def setUp(self):
        super().setUp()
        self.skip_webhooks()

    def synced_task(self, name="Scoped", **values):
        task = self.env["project.task"].create(
            {"name": name, "project_id": self.project.id, "stage_id": self.stages[0].id,
             **values})
        self.run_jobs()
        self.assertEqual(task.plane_sync_state, "synced", task.plane_sync_error)
        self.skip_webhooks()
        return task

    def item_event(self, action, **data):
        data.setdefault("updated_at", "2099-01-01T00:00:00Z")
        return self.connector._plane_handle_event("issue", action, {
            "event": "issue", "action": action, "data": data,
            "activity": {"field": None, "actor": None}})

    # -- item 5: an event applies to a task only from the task's linked Plane project

    def test_an_event_of_another_project_does_not_touch_a_linked_task(self):
        task = self.synced_task()
        item = task.plane_work_item_id
        self.item_event("updated", id=item, project=self.elsewhere, name="Renamed elsewhere")
        self.assertEqual(task.name, "Scoped")
        self.item_event("deleted", id=item, project=self.elsewhere)
        self.assertEqual((task.plane_work_item_id, task.plane_sync_state), (item, "synced"))
        # From its own project the same change applies.
        self.item_event("updated", id=item, project=self.emulator.project_id,
                        name="Renamed in Plane")
        self.assertEqual(task.name, "Renamed in Plane")

    def test_an_item_carrying_a_linked_task_s_external_id_takes_no_link_over(self):
        task = self.synced_task()
        item = task.plane_work_item_id
        forged = str(uuid.uuid4())
        # Any member of the Plane project can create an item with any external id.
        self.item_event("created", id=forged, project=self.emulator.project_id,
                        name="Hijack", external_source="odoo",
                        external_id=f"project.task,{task.id}")
        self.assertEqual(task.plane_work_item_id, item)
        self.assertEqual(task.name, "Scoped")
        self.assertFalse(self.env["project.task"].search([("plane_work_item_id", "=", forged)]))

    def comment_event(self, task, project, email):
        comment_id = str(uuid.uuid4())
        self.connector._plane_handle_event("issue_comment", "created", {
            "event": "issue_comment", "action": "created",
            "data": {"id": comment_id, "issue": task.plane_work_item_id, "project": project,
                     "comment_html": "<p>a comment</p>"},
            "activity": {"actor": {"display_name": "Someone", "email": email}}})
        return self.env["mail.message"].search([("plane_comment_id", "=", comment_id)])

    def test_a_comment_of_another_project_is_not_posted(self):
        task = self.synced_task()
        self.assertFalse(self.comment_event(task, self.elsewhere, "x@example.com"))
        self.assertTrue(self.comment_event(task, self.emulator.project_id, "x@example.com"))

    def test_plane_remote_from_an_rpc_context_skips_nothing(self):
        task = self.synced_task(user_ids=[Command.set(self.employee.ids)])
        item = task.plane_work_item_id
        Job = self.env["plane.sync.job"]
        # What RPC can send: a context key, never superuser mode.
        mine = task.with_user(self.employee).with_context(plane_remote=True)
        mine.write({"name": "Edited over RPC"})
        self.assertTrue(Job.search([("task_id", "=", task.id), ("kind", "=", "push"),
                                    ("state", "=", "pending")]), "the edit is pushed")
        mine.unlink()
        self.assertTrue(Job.search([("kind", "=", "archive"), ("work_item_id", "=", item),
                                    ("state", "=", "pending")]),
                        "the deleted task's work item is archived")

    # -- item 4: e-mails from Plane match exactly (no LIKE wildcards)

    def test_a_wildcard_email_matches_nobody(self):
        task = self.synced_task()
        wild = self.emulator.add_member("Wild", email="%@example.com")
        Task = self.env["project.task"]
        # Assigned to that Plane user: the task's assignees in Odoo become nobody.
        self.project.sudo().write({"plane_members_json": False})  # learn the new member now
        values = task._plane_odoo_values("assignees", self.project, [wild["id"]])
        self.assertIn("%@example.com", self.project._plane_cache("members").values())
        self.assertEqual(values, {"user_ids": [Command.set([])]})
        self.assertFalse(Task._plane_users_by_email({"%@example.com"}))
        self.assertFalse(Task._plane_users_by_email({"scope_employee@example.com"}))
        self.assertEqual(Task._plane_users_by_email({"Scope.Employee@Example.com"}),
                         self.employee, "case aside, an exact match still matches")
        message = self.comment_event(task, self.emulator.project_id, "%@example.com")
        self.assertTrue(message)
        self.assertNotEqual(message.author_id, self.employee.partner_id)


@tagged("post_install", "-at_install")
class TestSyncJobVisibility(TransactionCase):
    """Item 6: a project user reads the jobs of the projects they can see, no others."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.user = env["res.users"].create({
            "name": "Follower", "login": "follower@example.com",
            _groups_field(env): [Command.set([env.ref("base.group_user").id,
                                              env.ref("project.group_project_user").id])],
        })
        Project, Task = env["project.project"], env["project.task"]
        cls.followed = Project.create({"name": "Followed", "privacy_visibility": "followers"})
        cls.followed.message_subscribe(partner_ids=cls.user.partner_id.ids)
        cls.hidden = Project.create({"name": "Hidden", "privacy_visibility": "followers"})
        cls.open = Project.create({"name": "Open", "privacy_visibility": "employees"})
        Job = env["plane.sync.job"].sudo()
        cls.jobs = {}
        for project in (cls.followed, cls.hidden, cls.open):
            task = Task.create({"name": f"Secret task of {project.name}",
                                "project_id": project.id})
            cls.jobs[project.name] = Job.create({
                "task_id": task.id, "project_id": project.id, "kind": "push",
                "last_error": f"error of {project.name}"})

    def test_a_project_user_reads_the_jobs_of_visible_projects_only(self):
        Job = self.env["plane.sync.job"].with_user(self.user)
        mine = self.jobs["Followed"] | self.jobs["Open"]
        found = Job.search([("id", "in", [j.id for j in self.jobs.values()])])
        self.assertEqual(found, mine.with_user(self.user))
        for job in mine:
            job.with_user(self.user).check_access("read")
            self.assertTrue(job.with_user(self.user).last_error)
        hidden = self.jobs["Hidden"].with_user(self.user)
        with self.assertRaises(AccessError):
            hidden.check_access("read")
        with self.assertRaises(AccessError):
            hidden.read(["task_id", "last_error"])
        # A project manager sees every job.
        manager = self.env["res.users"].create({
            "name": "Manager", "login": "scope.manager@example.com",
            _groups_field(self.env): [Command.set([
                self.env.ref("base.group_user").id,
                self.env.ref("project.group_project_manager").id])],
        })
        everything = self.env["plane.sync.job"].with_user(manager).search(
            [("id", "in", [j.id for j in self.jobs.values()])])
        self.assertEqual(len(everything), 3)

    def test_a_portal_user_of_a_shared_project_reads_no_plane_caches(self):
        portal = self.env["res.users"].create({
            "name": "Customer", "login": "customer@example.com", "email": "customer@example.com",
            _groups_field(self.env): [Command.set([self.env.ref("base.group_portal").id])],
        })
        shared = self.env["project.project"].create({"name": "Shared",
                                                     "privacy_visibility": "portal"})
        shared.message_subscribe(partner_ids=portal.partner_id.ids)
        shared.sudo().write({"plane_members_json": '{"at": 0, "data": {"m": "a@corp.com"}}'})
        mine = shared.with_user(portal)
        self.assertEqual(mine.read(["name"])[0]["name"], "Shared")
        for field in ("plane_members_json", "plane_labels_json", "plane_states_json"):
            with self.assertRaises(AccessError):
                mine.read([field])
