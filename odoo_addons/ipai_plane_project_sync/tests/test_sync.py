"""Tasks <-> work items against the Plane emulator through the wheel's real client."""

import datetime as dt
from unittest.mock import patch

from markupsafe import Markup
from odoo import Command, fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import ProjectSyncCase

JOB_LOGGER = "odoo.addons.ipai_plane_project_sync.models.plane_sync_job"


@tagged("post_install", "-at_install")
class TestProjectSync(ProjectSyncCase):
    #: Whether Plane sends an ``updated`` webhook for a work item changed through API v1.
    api_edits_send_webhooks = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.jane_member = cls.emulator.add_member("Jane", "Doe", email="jane@example.com")
        cls.jane = cls.env["res.users"].create({
            "name": "Jane Doe", "login": "jane@example.com", "email": "jane@example.com",
            "group_ids" if "group_ids" in cls.env["res.users"]._fields else "groups_id":
                [Command.link(cls.env.ref("project.group_project_user").id)],
        })
        cls.project._plane_link({"id": cls.emulator.project_id, "identifier": "ERP"})
        cls.env["plane.sync.job"]._cron_run_jobs()

    def setUp(self):
        super().setUp()
        self.skip_webhooks()

    def new_task(self, name="Write the spec", **values):
        task = self.env["project.task"].create(
            {"name": name, "project_id": self.project.id, "stage_id": self.stages[0].id,
             **values})
        return task

    def synced_task(self, name="Write the spec", **values):
        task = self.new_task(name, **values)
        self.run_jobs()
        self.assertEqual(task.plane_sync_state, "synced", task.plane_sync_error)
        self.skip_webhooks()
        return task

    # -- Odoo -> Plane

    def test_create_queues_then_pushes_with_external_id(self):
        before = len(self.emulator.requests)
        task = self.new_task(description="<p>The <b>spec</b></p>", priority="1")
        job = self.env["plane.sync.job"].search([("task_id", "=", task.id)])
        self.assertEqual((job.state, job.kind), ("pending", "push"))
        self.assertEqual(task.plane_sync_state, "pending")
        self.assertEqual(len(self.emulator.requests), before, "no HTTP in the user's write")

        self.run_jobs()
        self.assertEqual(job.state, "done")
        self.assertEqual(task.plane_sync_state, "synced")
        self.assertTrue(task.plane_synced_at)
        item = self.item(task)
        self.assertEqual(item["external_source"], "odoo")
        self.assertEqual(item["external_id"], f"project.task,{task.id}")
        self.assertEqual(item["name"], "Write the spec")
        self.assertIn("<b>spec</b>", item["description_html"])
        self.assertEqual(item["priority"], "high" if len(task._plane_priority_keys()) == 2
                         else "medium")
        self.assertEqual(self.state_group(item), "backlog")
        self.assertIn(f"/issues/{item['id']}/", task.plane_url)

    def test_ten_writes_make_one_patch_with_the_latest_values(self):
        task = self.synced_task()
        patches = len(self.requests("PATCH", self.work_items_route))
        for i in range(10):
            task.write({"name": f"Spec v{i}"})
        jobs = self.env["plane.sync.job"].search([("task_id", "=", task.id),
                                                  ("state", "=", "pending")])
        self.assertEqual(len(jobs), 1)
        self.assertEqual(jobs.writes, 10)
        self.run_jobs()
        self.assertEqual(len(self.requests("PATCH", self.work_items_route)), patches + 1)
        self.assertEqual(self.item(task)["name"], "Spec v9")

    def test_a_project_user_edit_is_queued_and_pushed(self):
        task = self.synced_task(user_ids=[Command.set(self.jane.ids)])
        task.with_user(self.jane).write({"name": "Edited by Jane"})
        self.assertEqual(task.plane_sync_state, "pending")
        self.run_jobs()
        self.assertEqual(self.item(task)["name"], "Edited by Jane")
        self.assertEqual(task.plane_sync_state, "synced")

    def test_interrupted_first_sync_resumes_without_duplicate(self):
        task = self.new_task("Half pushed")
        # The first push reached Plane, then the worker died before committing the link.
        self.create_as_if_pushed(task)
        task.write({"name": "Half pushed, renamed"})
        self.run_jobs()
        matching = self.items_of(task)
        self.assertEqual(len(matching), 1)
        self.assertEqual(task.plane_work_item_id, matching[0].id)
        self.assertEqual(matching[0].data["name"], "Half pushed, renamed")

    def test_stage_to_state_and_back(self):
        task = self.synced_task()
        task.write({"stage_id": self.stages[2].id})  # Done
        self.run_jobs()
        self.assertEqual(self.state_group(self.item(task)), "completed")
        self.skip_webhooks()
        # In Plane, moved to the "In Progress" state: stages are accepted from Plane.
        states = self.emulator.store.states[self.emulator.project_id]
        started = next(s.id for s in states.values() if s.data["group"] == "started")
        self.emulator.update_work_item(task.plane_work_item_id, state=started)
        self.deliver_webhooks()
        self.assertEqual(task.stage_id, self.stages[1])
        self.assertFalse(self.env["plane.sync.job"].search(
            [("task_id", "=", task.id), ("state", "=", "pending")]), "nothing to push back")

    def test_tags_become_labels_created_on_demand(self):
        tag = self.env["project.tags"].create({"name": "Needs Review"})
        task = self.synced_task(tag_ids=[Command.set(tag.ids)])
        labels = self.emulator.store.labels[self.emulator.project_id]
        names = {labels[i].data["name"] for i in self.item(task)["labels"]}
        self.assertEqual(names, {"Needs Review"})
        # A second task with the same tag reuses the label.
        other = self.synced_task("Other", tag_ids=[Command.set(tag.ids)])
        self.assertEqual(self.item(other)["labels"], self.item(task)["labels"])
        self.assertEqual(sum(1 for x in labels.values() if x.data["name"] == "Needs Review"), 1)

    def test_labels_accepted_from_plane_when_configured(self):
        self.project.plane_mode_tags = "plane"
        task = self.synced_task()
        labels = self.emulator.store.labels[self.emulator.project_id]
        feature = next(i for i, x in labels.items() if x.data["name"] == "feature")
        self.emulator.update_work_item(task.plane_work_item_id, labels=[feature])
        self.deliver_webhooks()
        self.assertEqual(task.tag_ids.mapped("name"), ["feature"])

    def test_assignees_matched_by_email_both_ways(self):
        task = self.synced_task(user_ids=[Command.set(self.jane.ids)])
        self.assertEqual(self.item(task)["assignees"], [self.jane_member["id"]])
        # Unassigned in Plane: assignees are accepted from Plane by default.
        self.emulator.update_work_item(task.plane_work_item_id, assignees=[])
        self.deliver_webhooks()
        self.assertFalse(task.user_ids)
        self.emulator.update_work_item(task.plane_work_item_id,
                                       assignees=[self.jane_member["id"]])
        self.deliver_webhooks()
        self.assertEqual(task.user_ids, self.jane)

    def test_parent_pushed_first_and_linked(self):
        parent = self.new_task("Epic")
        child = self.new_task("Story", parent_id=parent.id)
        self.run_jobs()
        self.assertTrue(parent.plane_work_item_id)
        self.assertEqual(self.item(child)["parent"], parent.plane_work_item_id)
        self.assertEqual(len(self.items_of(parent)), 1)

    def test_plane_comment_lands_in_chatter_once(self):
        task = self.synced_task()
        comment = self.emulator.add_comment(task.plane_work_item_id,
                                            "<p>Looks <b>good</b> to me</p>")
        self.deliver_webhooks()
        messages = self.env["mail.message"].search([("plane_comment_id", "=", comment["id"])])
        self.assertEqual(len(messages), 1)
        self.assertEqual((messages.model, messages.res_id), ("project.task", task.id))
        self.assertIn("Looks <b>good</b> to me", str(messages.body))
        # The same comment fed again (e.g. a replayed event) adds nothing.
        self.env["project.task"]._plane_apply_comment_event(
            "created", {"data": comment, "activity": {}})
        self.assertEqual(
            self.env["mail.message"].search_count([("plane_comment_id", "=", comment["id"])]), 1)

    def plane_comments(self, task):
        comments = self.emulator.store.comments[self.emulator.project_id].values()
        return sorted((c.data for c in comments if c.data["issue"] == task.plane_work_item_id),
                      key=lambda c: c["created_at"])

    def test_chatter_messages_become_plane_comments_once(self):
        task = self.synced_task()
        before = len(self.emulator.requests)
        first = task.with_user(self.jane).message_post(
            body=Markup("<p>Needs a <b>review</b><script>x()</script></p>"), message_type="comment",
            subtype_xmlid="mail.mt_note")
        second = task.message_post(body=Markup("<p>Customer agreed</p>"), message_type="comment",
                                   subtype_xmlid="mail.mt_comment")
        task.message_post(body="<p>A system note</p>")  # a notification: stays in Odoo
        self.assertEqual(len(self.emulator.requests), before, "no HTTP in the user's post")
        jobs = self.env["plane.sync.job"].search([("task_id", "=", task.id),
                                                  ("kind", "=", "comment")])
        self.assertEqual((len(jobs), jobs.state, jobs.writes), (1, "pending", 2))

        self.run_jobs()
        comments = self.plane_comments(task)
        self.assertEqual([c["external_id"] for c in comments],
                         [f"mail.message,{first.id}", f"mail.message,{second.id}"])
        self.assertIn("Needs a <b>review</b>", comments[0]["comment_html"])
        self.assertIn("Jane Doe", comments[0]["comment_html"])
        self.assertNotIn("script", comments[0]["comment_html"])
        self.assertEqual(first.plane_comment_id, comments[0]["id"])
        self.assertFalse(first.plane_comment_pending or second.plane_comment_pending)

        # Their webhooks come back: nothing new in the chatter, nothing sent again.
        count = len(task.message_ids)
        self.deliver_webhooks()
        self.run_jobs()
        self.assertEqual(len(task.message_ids), count)
        self.assertEqual(len(self.plane_comments(task)), 2)

        # A Plane comment lands in the chatter and is not sent back.
        self.emulator.add_comment(task.plane_work_item_id, "<p>From Plane</p>")
        self.deliver_webhooks()
        self.run_jobs()
        self.assertEqual(len(task.message_ids), count + 1)
        self.assertEqual(len(self.plane_comments(task)), 3)
        self.assertFalse(self.env["plane.sync.job"].search(
            [("kind", "=", "comment"), ("state", "!=", "done")]))

    def test_a_comment_job_that_died_after_plane_took_the_comment_does_not_repeat_it(self):
        task = self.synced_task()
        message = task.message_post(body=Markup("<p>Once</p>"), message_type="comment")
        # Plane took it, then the job's transaction was lost before Odoo recorded the id.
        path = self.connector._plane_path(
            "comments", self.emulator.project_id, task.plane_work_item_id)
        taken = self.client.create_idempotent(path, {
            "comment_html": "<p>Once</p>", "external_id": f"mail.message,{message.id}",
            "external_source": "odoo"})
        self.run_jobs()
        self.assertEqual([c["id"] for c in self.plane_comments(task)], [taken["id"]])
        self.assertEqual(message.plane_comment_id, taken["id"])

    def test_chatter_stays_in_odoo_when_the_project_says_so(self):
        task = self.synced_task()
        self.project.plane_sync_comments = False
        task.message_post(body=Markup("<p>Internal only</p>"), message_type="comment")
        self.run_jobs()
        self.assertEqual(self.plane_comments(task), [])
        self.assertFalse(self.env["plane.sync.job"].search(
            [("task_id", "=", task.id), ("kind", "=", "comment")]))

    def test_a_comment_on_a_task_not_yet_in_plane_creates_its_work_item_first(self):
        task = self.new_task("Fresh")
        message = task.message_post(body=Markup("<p>Early word</p>"), message_type="comment")
        # The comment job runs before the push job (its own order in the queue).
        self.env["plane.sync.job"].search(
            [("task_id", "=", task.id), ("kind", "=", "comment")])._plane_execute()
        self.assertTrue(task.plane_work_item_id)
        self.assertEqual([c["id"] for c in self.plane_comments(task)],
                         [message.plane_comment_id])
        self.run_jobs()
        self.assertEqual(len(self.items_of(task)), 1)

    def sweep(self, steps=None):
        """Queue this project's deletion check as the cron does, then run it."""
        self.project.plane_sweep_done_at = False
        self.env["project.project"]._cron_plane_deletion_sweep()
        return self.run_jobs(limit=steps) if steps else self.run_jobs()

    def seen_this_round(self, task) -> bool:
        return bool(self.env["plane.sweep.seen"].search_count([
            ("project_id", "=", self.project.id), ("work_item_id", "=", task.plane_work_item_id),
            ("sweep_round", "=", self.project.plane_sweep_round)]))

    def test_the_deletion_check_writes_no_task_row(self):
        # Webhooks and pushes write the same tasks while the check walks the project; both
        # sides run in REPEATABLE READ, so a task row the check updated made one of them fail
        # with "could not serialize access due to concurrent update" (seen against real Plane).
        tasks = [self.synced_task(f"Busy {n}") for n in range(3)]
        self.emulator.delete_work_item(tasks[0].plane_work_item_id)
        kept = tasks[1:]

        def row_versions():
            # An UPDATE always writes a new row version, at a new ctid.
            self.env.flush_all()
            self.env.cr.execute(
                "SELECT id, ctid::text FROM project_task WHERE id IN %s ORDER BY id",
                (tuple(t.id for t in kept),))
            return self.env.cr.fetchall()

        before = row_versions()
        self.sweep()
        self.assertEqual(tasks[0].plane_sync_state, "unlinked")
        self.assertEqual([t.plane_sync_state for t in kept], ["synced"] * 2)
        self.assertTrue(all(self.seen_this_round(t) for t in kept))
        self.assertEqual(row_versions(), before, "the check wrote the rows of tasks it only saw")

    def test_deleted_in_plane_unlinks_and_flags_never_deletes(self):
        task = self.synced_task()
        kept = self.synced_task("Kept")
        self.emulator.delete_work_item(task.plane_work_item_id)
        # Plane CE sends no webhook for a deleted work item: only the check notices it.
        self.assertEqual(self.deliver_webhooks(), 0)
        self.assertEqual(task.plane_sync_state, "synced")
        self.sweep()
        self.assertTrue(task.exists())
        self.assertFalse(task.plane_work_item_id)
        self.assertEqual(task.plane_sync_state, "unlinked")
        self.assertIn("deleted in Plane", task.plane_sync_error)
        self.assertEqual(kept.plane_sync_state, "synced")
        self.assertEqual(self.project.plane_sweep_state, "idle")
        self.assertEqual(self.project.plane_sweep_flagged, 1)
        task.write({"name": "Still here"})
        self.assertFalse(self.env["plane.sync.job"].search(
            [("task_id", "=", task.id), ("state", "=", "pending")]), "not re-created silently")
        task.action_plane_push()
        self.run_jobs()
        self.assertEqual(self.item(task)["name"], "Still here")

    def test_a_deleted_event_still_unlinks_where_plane_sends_one(self):
        # Plane Cloud's v2 webhooks do report deletions: that path is kept.
        task = self.synced_task()
        self.connector._plane_handle_event(
            "issue", "deleted", {"data": {"id": task.plane_work_item_id}})
        self.assertEqual(task.plane_sync_state, "unlinked")

    def test_the_deletion_check_does_not_flag_items_a_page_shift_skipped(self):
        tasks = [self.synced_task(f"Shift {n}") for n in range(5)]
        newest, skipped = tasks[-1], tasks[-3]

        def item_gets(since):
            return [r for r in self.emulator.requests[since:] if r.method == "GET"
                    and self.work_items_route in r.path
                    and not r.path.endswith(self.work_items_route)]

        with patch("odoo.addons.ipai_plane_project_sync.models.project_project.SWEEP_PAGE", 2):
            self.sweep(steps=2)  # the project check, then the first page (newest first)
            self.assertEqual(self.project.plane_sweep_state, "walking")
            self.assertTrue(self.project.plane_sweep_cursor, "resumable: the cursor is saved")
            self.assertTrue(self.seen_this_round(newest))
            # Deleted in Plane during the walk: every later row moves up one place, and the
            # item that was first on page 2 is now last on page 1: the walk never lists it.
            self.emulator.delete_work_item(newest.plane_work_item_id)
            before = len(self.emulator.requests)
            self.run_jobs()
            self.assertTrue(self.seen_this_round(skipped), "confirmed by its own GET")
            self.assertEqual(len(item_gets(before)), 1, "the skipped item is looked up once")
            self.assertEqual([t.plane_sync_state for t in tasks], ["synced"] * 5,
                             "skipped is not deleted; the deleted one was seen before")
            before = len(self.emulator.requests)
            self.sweep()  # the next round notices the deletion
            self.assertEqual(len(item_gets(before)), 1)
        self.assertEqual(newest.plane_sync_state, "unlinked")
        self.assertEqual([t.plane_sync_state for t in tasks[:-1]], ["synced"] * 4)
        self.assertEqual(self.project.plane_sweep_state, "idle")

    def test_the_deletion_check_resumes_after_a_kill(self):
        tasks = [self.synced_task(f"Resume {n}") for n in range(3)]
        self.emulator.delete_work_item(tasks[0].plane_work_item_id)
        with patch("odoo.addons.ipai_plane_project_sync.models.project_project.SWEEP_PAGE", 2):
            self.sweep(steps=2)
            cursor = self.project.plane_sweep_cursor
            # The next page's job is claimed and its worker dies: the lease runs out.
            Job = self.env["plane.sync.job"]
            with self.env.registry.cursor() as cr:
                claimed = Job.with_env(self.env(cr=cr))._plane_claim(1)
            victim = Job.browse(claimed)
            self.assertEqual(victim.kind, "sweep")
            victim.lease_until = victim.create_date
            self.env.flush_all()
            self.assertEqual(self.project.plane_sweep_cursor, cursor)
            self.run_jobs()
        self.assertEqual(tasks[0].plane_sync_state, "unlinked")
        self.assertEqual([t.plane_sync_state for t in tasks[1:]], ["synced", "synced"])
        self.assertFalse(self.env["plane.sync.job"].search([("state", "!=", "done")]))

    def test_the_deletion_check_runs_at_the_configured_interval(self):
        params = self.env["ir.config_parameter"].sudo()
        Project = self.env["project.project"]
        params.set_param("plane.project_sync.deletion_sweep_minutes", "0")
        self.project.plane_sweep_done_at = False
        self.assertEqual(Project._cron_plane_deletion_sweep(), 0, "0 switches it off")
        params.set_param("plane.project_sync.deletion_sweep_minutes", "30")
        self.assertEqual(Project._cron_plane_deletion_sweep(), 1)
        self.assertEqual(Project._cron_plane_deletion_sweep(), 0, "one pending check at most")
        self.run_jobs()
        self.assertTrue(self.project.plane_sweep_done_at)
        self.assertEqual(Project._cron_plane_deletion_sweep(), 0, "not due yet")
        self.project.plane_sweep_done_at = fields.Datetime.now() - dt.timedelta(minutes=31)
        self.assertEqual(Project._cron_plane_deletion_sweep(), 1, "due again")
        self.run_jobs()
        # "Check for deleted work items" does not wait for the interval.
        self.project.action_plane_sweep_now()
        self.assertEqual(self.env["plane.sync.job"].search_count(
            [("kind", "=", "sweep"), ("state", "=", "pending")]), 1)
        self.run_jobs()

    def test_an_archived_plane_project_is_not_swept(self):
        task = self.synced_task()
        # Archived as in Plane's UI (no API call: other tests count the archive requests).
        remote = self.emulator.store.projects[self.emulator.project_id].data
        remote["archived_at"] = remote["updated_at"]
        try:
            self.sweep()
        finally:
            remote["archived_at"] = None
        self.assertEqual(task.plane_sync_state, "synced", "hidden is not deleted")
        self.assertIn("archived", self.project.plane_sweep_error)

    def test_a_task_moved_to_another_plane_project_gets_a_new_work_item_there(self):
        plane_other = self.emulator.add_project("Other lab", "OTH")
        other = self.env["project.project"].create(
            {"name": "Other lab", "type_ids": [Command.set(self.stages.ids)]})
        other._plane_link(plane_other)
        outside = self.env["project.project"].create(
            {"name": "Not in Plane", "type_ids": [Command.set(self.stages.ids)]})
        self.run_jobs()
        task = self.synced_task("Travels")
        first = task.plane_work_item_id

        task.write({"project_id": other.id})
        self.run_jobs()
        self.assertEqual(task.plane_sync_state, "synced", task.plane_sync_error)
        second = task.plane_work_item_id
        self.assertNotEqual(second, first)
        moved = self.emulator.work_item(second)
        self.assertEqual((moved["project"], moved["name"]), (plane_other["id"], "Travels"))
        self.assertEqual(self.state_group(self.emulator.work_item(first)), "cancelled")
        self.assertEqual(len(self.items_of(task)), 1, "no second item in the old project")
        left = self.env["plane.sync.job"].search([("state", "!=", "done")])
        self.assertFalse(left, left.read(["kind", "state", "last_error", "work_item_id"]))
        # The webhooks of both changes: the old item's cancellation brings nothing back.
        self.deliver_webhooks()
        Task = self.env["project.task"].with_context(active_test=False)
        self.assertEqual(Task.search([("name", "=", "Travels")]), task)
        self.assertEqual((task.project_id, task.plane_work_item_id), (other, second))
        self.assertNotEqual(self.state_group(self.emulator.work_item(second)), "cancelled")

        # To a project without Plane: the item is cancelled and the task unlinked, kept.
        task.write({"project_id": outside.id})
        self.run_jobs()
        self.deliver_webhooks()
        self.assertEqual((task.plane_work_item_id, task.plane_sync_state), (False, "none"))
        self.assertEqual(self.state_group(self.emulator.work_item(second)), "cancelled")
        self.assertEqual(Task.search([("name", "=", "Travels")]), task)
        notes = task.message_ids.filtered(lambda m: "Moved from" in (m.body or ""))
        self.assertEqual(len(notes), 2)
        self.assertIn("Moved from Other lab", notes[0].body)  # newest first
        self.assertIn("not linked to Plane", notes[0].body)

    def test_archived_or_deleted_task_cancels_the_work_item(self):
        task = self.synced_task()
        gone = self.synced_task("To delete")
        item_of_gone = gone.plane_work_item_id
        task.write({"active": False})
        gone.unlink()
        self.run_jobs()
        self.assertEqual(task.plane_sync_state, "archived")
        self.assertEqual(self.state_group(self.item(task)), "cancelled")
        self.assertEqual(self.state_group(self.emulator.work_item(item_of_gone)), "cancelled")
        left = self.env["plane.sync.job"].search(
            [("kind", "=", "archive"), ("state", "!=", "done")])
        self.assertFalse(left, left.read(["task_id", "state", "attempts", "last_error",
                                          "next_attempt_at", "lease_until", "work_item_id"]))
        # Plane's API v1 has no work-item archive route: none is spent from the rate budget.
        self.assertFalse(self.requests(contains="/archive/"))
        # The cancellations' own webhooks bring neither task back.
        self.deliver_webhooks()
        self.assertFalse(self.env["project.task"].with_context(active_test=False).search(
            [("plane_work_item_id", "=", item_of_gone)]))
        self.assertFalse(task.active)

    def test_our_pushes_do_not_echo_back(self):
        task = self.synced_task()
        patches = len(self.requests("PATCH", self.work_items_route))
        n = 5
        for i in range(n):
            task.write({"name": f"Round {i}", "priority": "1" if i % 2 else "0"})
            self.run_jobs()
        self.assertEqual(len(self.requests("PATCH", self.work_items_route)), patches + n)
        Task = type(self.env["project.task"])
        writes = []
        original = Task.write

        def counting_write(records, vals):
            writes.append(vals)
            return original(records, vals)

        requests_before = len(self.emulator.requests)
        with patch.object(Task, "write", counting_write):
            delivered = self.deliver_webhooks()
        if self.api_edits_send_webhooks:
            self.assertGreaterEqual(delivered, n)
        else:  # Plane 1.0: no webhook at all for a work item changed through API v1
            self.assertEqual(delivered, 0)
        self.assertEqual(writes, [], "an echo of our own push wrote to Odoo")
        self.assertFalse(self.env["plane.sync.job"].search(
            [("task_id", "=", task.id), ("state", "=", "pending")]))
        self.run_jobs()
        self.assertEqual(len(self.emulator.requests), requests_before, "an echo was pushed back")

    def test_odoo_wins_reverts_a_plane_edit(self):
        task = self.synced_task("Owned by Odoo")
        self.emulator.update_work_item(task.plane_work_item_id, name="Renamed in Plane")
        self.deliver_webhooks()
        self.assertEqual(task.name, "Owned by Odoo")
        self.run_jobs()
        self.assertEqual(self.item(task)["name"], "Owned by Odoo")
        self.assertTrue(any("overwritten" in str(m.body) for m in task.message_ids))
        # The revert's own webhook does not start another round.
        self.deliver_webhooks()
        self.assertFalse(self.env["plane.sync.job"].search(
            [("task_id", "=", task.id), ("state", "=", "pending")]))

    def test_conflict_while_a_push_is_queued_keeps_the_odoo_change(self):
        task = self.synced_task()
        task.write({"stage_id": self.stages[2].id})  # Done, queued, not pushed yet
        states = self.emulator.store.states[self.emulator.project_id]
        started = next(s.id for s in states.values() if s.data["group"] == "started")
        self.emulator.update_work_item(task.plane_work_item_id, state=started)
        self.deliver_webhooks()
        self.assertEqual(task.stage_id, self.stages[2], "the queued Odoo change wins")
        self.run_jobs()
        self.assertEqual(self.state_group(self.item(task)), "completed")
        self.assertTrue(any("waiting to be pushed" in str(m.body) for m in task.message_ids))

    def test_failed_push_is_retried_and_visible(self):
        task = self.synced_task()
        fault = self.emulator.faults.add(route_regex=self.work_items_route, method="PATCH",
                                         kind="status", status=400, count=None)
        task.write({"name": "Will fail first"})
        self.run_jobs()
        job = self.env["plane.sync.job"].search([("task_id", "=", task.id)], limit=1)
        self.assertEqual(job.state, "pending")
        self.assertTrue(job.last_error)
        self.assertGreater(job.next_attempt_at, job.write_date)
        self.assertEqual(task.plane_sync_state, "error")
        self.assertTrue(task.plane_sync_error)
        self.emulator.faults.remove(fault)
        job.next_attempt_at = job.write_date  # the backoff has passed
        self.run_jobs()
        self.assertEqual(job.state, "done")
        self.assertEqual(task.plane_sync_state, "synced")
        self.assertEqual(self.item(task)["name"], "Will fail first")

    def test_work_item_made_in_plane_becomes_a_task(self):
        item = self.emulator.create_work_item("Filed in Plane", priority="urgent")
        self.deliver_webhooks()
        task = self.env["project.task"].search([("plane_work_item_id", "=", item["id"])])
        self.assertEqual(task.project_id, self.project)
        self.assertEqual(task.name, "Filed in Plane")
        self.assertEqual(task.priority, task._plane_priority_keys()[-1])
        self.assertFalse(self.env["plane.sync.job"].search([("task_id", "=", task.id)]))

    def test_description_and_dates_accepted_from_plane_sanitized(self):
        self.project.write({"plane_mode_description": "plane", "plane_mode_dates": "plane"})
        task = self.synced_task(date_deadline="2026-12-24 12:00:00")
        self.assertEqual(self.item(task)["target_date"], "2026-12-24")
        hostile = '<p>Plan <img src="x" onerror="alert(1)"></p><script>alert(2)</script>'
        self.emulator.update_work_item(
            task.plane_work_item_id, start_date="2026-12-01", target_date="2026-12-31",
            description_html=hostile)
        self.deliver_webhooks()
        self.assertEqual(str(task.plane_start_date), "2026-12-01")
        self.assertEqual(task._plane_deadline_date().isoformat(), "2026-12-31")
        self.assertIn("Plan", str(task.description))
        self.assertNotIn("<script", str(task.description))
        self.assertNotIn("onerror", str(task.description))
        # Taking Plane's values in is not an Odoo change: nothing goes back.
        self.assertFalse(self.env["plane.sync.job"].search(
            [("task_id", "=", task.id), ("state", "=", "pending")]))

    def test_create_the_plane_project_from_odoo(self):
        project = self.env["project.project"].create({
            "name": "Marketing Launch", "type_ids": [Command.set(self.stages.ids)]})
        task = self.env["project.task"].create({"name": "Brief", "project_id": project.id})
        project.action_plane_create_project()
        created = self.emulator.store.projects[project.plane_project_id].data
        self.assertEqual((created["name"], created["identifier"]), ("Marketing Launch", "ML"))
        self.assertEqual(project.plane_project_identifier, "ML")
        self.run_jobs()
        self.assertEqual(self.emulator.work_item(task.plane_work_item_id)["project"],
                         project.plane_project_id)
        self.assertEqual(project.plane_backfill_state, "done")
        self.assertEqual(project.plane_progress, 100.0)
        link = self.env["plane.project.link"].search(
            [("plane_project_id", "=", project.plane_project_id)])
        self.assertTrue(link, "the connector's reconciliation sweep covers the project")

    def test_an_ordinary_odoo_name_plane_refuses_is_mapped(self):
        full = "R&D: Website (Phase 2) - ACME Inc."
        project = self.env["project.project"].create({"name": full})
        project.action_plane_create_project()
        created = self.emulator.store.projects[project.plane_project_id].data
        self.assertEqual(created["name"], "R and D Website Phase 2 ACME Inc")
        self.assertEqual(created["identifier"], "RDWP2AI")
        self.assertIn(full, created["description"], "the full Odoo name is kept")
        self.assertEqual(project.name, full, "the Odoo name is untouched")

    def test_a_taken_plane_name_or_identifier_gets_a_number(self):
        path = self.connector._plane_workspace_path("projects")
        self.client.post(path, json={"name": "Ops and Support", "identifier": "OS"})
        project = self.env["project.project"].create({"name": "Ops & Support"})
        project.action_plane_create_project()
        created = self.emulator.store.projects[project.plane_project_id].data
        self.assertEqual((created["name"], created["identifier"]), ("Ops and Support 2", "OS2"))
        # A clash the listing did not show (a private project, or one made meanwhile): Plane
        # answers 409 naming the name either way; the next name and identifier are tried.
        other = self.env["project.project"].create({"name": "Field Service"})
        real_paginate = type(self.connector)._plane_paginate
        made = []

        def paginate(connector, path, **kw):
            rows = list(real_paginate(connector, path, **kw))
            if path.endswith("/projects/") and not made:
                made.append(self.emulator.add_project("Field Service", "FS"))
            return iter(rows)

        with patch.object(type(self.connector), "_plane_paginate", paginate):
            other.action_plane_create_project()
        created = self.emulator.store.projects[other.plane_project_id].data
        self.assertEqual((created["name"], created["identifier"]), ("Field Service 2", "FS2"))

    def test_an_odoo_rename_renames_the_plane_project_through_a_job(self):
        project = self.env["project.project"].create({"name": "Renamed Later"})
        project.action_plane_create_project()
        self.run_jobs()
        before = len(self.emulator.requests)
        project.write({"name": "Ops & Support (EU)"})
        self.assertEqual(len(self.emulator.requests), before, "no request in the user's write")
        self.run_jobs()
        created = self.emulator.store.projects[project.plane_project_id].data
        self.assertEqual(created["name"], "Ops and Support EU")
        self.assertIn("Ops & Support (EU)", created["description"])

    def test_pick_an_existing_plane_project(self):
        path = self.connector._plane_workspace_path("projects")
        other = self.client.post(path, json={"name": "Support Desk", "identifier": "SUP"})
        project = self.env["project.project"].create({"name": "Support"})
        action = project.action_plane_pick_project()
        wizard = self.env["plane.project.pick"].browse(action["res_id"])
        by_id = {line.plane_id: line for line in wizard.line_ids}
        self.assertIn(other["id"], by_id)
        self.assertEqual(by_id[self.emulator.project_id].linked_to, self.project.display_name)
        wizard.choice_id = by_id[self.emulator.project_id]
        with self.assertRaises(UserError):
            wizard.action_link()
        wizard.choice_id = by_id[other["id"]]
        wizard.action_link()
        self.assertEqual(project.plane_project_id, other["id"])

    def test_own_create_echo_before_the_link_is_saved_changes_nothing_in_odoo(self):
        task = self.new_task("Raced")
        # The worker's create reached Plane (its webhook is on its way) but the link is not
        # committed yet; meanwhile the user moves the task on.
        self.create_as_if_pushed(task)
        task.write({"stage_id": self.stages[1].id})
        self.deliver_webhooks()
        self.assertTrue(task.plane_work_item_id, "linked through its external_id")
        self.assertEqual(task.stage_id, self.stages[1], "Plane's older stage not taken in")
        self.run_jobs()
        self.assertEqual(self.state_group(self.item(task)), "started")
        self.assertEqual(len(self.items_of(task)), 1)

    def test_own_create_echo_while_its_push_runs_leaves_the_link_to_the_push(self):
        task = self.new_task("In flight")
        job = self.env["plane.sync.job"].search([("task_id", "=", task.id)])
        # A worker claimed the push and its create reached Plane; the created event comes in
        # before the push commits (in production: a serialization failure, logged as an ERROR,
        # when both transactions wrote the link).
        job.write({"state": "running"})
        self.create_as_if_pushed(task)
        self.deliver_webhooks()
        self.assertFalse(task.plane_work_item_id, "the event wrote the task the push is writing")
        self.assertFalse(self.deliveries().filtered(lambda d: d.state != "done"))
        # The push (here: run again, as after a crash) links the one work item.
        job.write({"state": "pending"})
        self.run_jobs()
        self.assertEqual(len(self.items_of(task)), 1)
        self.assertEqual(task.plane_work_item_id, self.items_of(task)[0].id)

    def test_a_job_gives_up_after_max_attempts_and_can_be_retried(self):
        self.env["ir.config_parameter"].sudo().set_param("plane.project_sync.max_attempts", "2")
        task = self.synced_task()
        fault = self.emulator.faults.add(route_regex=self.work_items_route, method="PATCH",
                                         kind="status", status=400, count=None)
        task.write({"name": "Never accepted"})
        job = self.env["plane.sync.job"].search([("task_id", "=", task.id)], limit=1)
        job.next_attempt_at = job.create_date
        self.run_jobs()
        job.next_attempt_at = job.create_date  # the backoff has passed
        with self.assertLogs(JOB_LOGGER, "ERROR") as logged:
            self.run_jobs()
        self.assertIn("gave up after 2 attempts", logged.output[0])
        self.assertEqual((job.state, job.attempts), ("dead", 2))
        self.assertIn("400", job.last_error)
        self.assertEqual(task.plane_sync_state, "error")
        self.run_jobs()
        self.assertEqual(job.attempts, 2, "a dead job is not tried again by itself")
        self.emulator.faults.remove(fault)
        job.action_retry()
        self.assertEqual((job.state, job.attempts), ("pending", 0))
        self.run_jobs()
        self.assertEqual(job.state, "done")
        self.assertEqual(self.item(task)["name"], "Never accepted")

    def test_a_change_whose_webhook_was_lost_arrives_through_the_sweep(self):
        task = self.synced_task()
        states = self.emulator.store.states[self.emulator.project_id]
        done = next(s.id for s in states.values() if s.data["group"] == "completed")
        self.emulator.update_work_item(task.plane_work_item_id, state=done)
        self.skip_webhooks()  # Plane gave up on the webhook: nothing reaches /plane/webhook
        requests = len(self.emulator.requests)
        self.connector._cron_reconcile()
        self.env.invalidate_all()
        self.assertEqual(task.stage_id, self.stages[2])
        self.assertFalse(self.env["plane.sync.job"].search(
            [("task_id", "=", task.id), ("state", "=", "pending")]), "nothing to push back")
        # Fed again (the next sweep overlaps), the same change is a no-op.
        self.connector._cron_reconcile()
        self.env.invalidate_all()
        self.assertEqual(task.stage_id, self.stages[2])
        self.assertGreater(len(self.emulator.requests), requests)

    def test_every_call_uses_the_route_family_of_the_server(self):
        start = len(self.emulator.requests)
        task = self.synced_task()
        task.message_post(body=Markup("<p>Via the right route</p>"), message_type="comment")
        self.run_jobs()
        self.connector._cron_reconcile()
        profile = self.connector._plane_server()
        self.assertEqual(profile.version, self.emulator.version)
        mine = self.emulator.requests[start:]
        used = {r.path for r in mine if "/projects/" in r.path}
        other = "/issues/" if self.work_items_route == "/work-items/" else "/work-items/"
        self.assertTrue(any(self.work_items_route in p for p in used))
        self.assertFalse([p for p in used if other in p])
        self.assertFalse([r for r in mine if r.status == 404], "no call met a missing route")


@tagged("post_install", "-at_install")
class TestProjectSyncOnPlane100(TestProjectSync):
    """The same sync against the oldest Plane users run: 1.0.0 has only the /issues/ routes."""

    emulator_version = "1.0.0"
    api_edits_send_webhooks = False  # seen live on Plane CE 1.0.0 (docs/live-plane.md)
    allow_inherited_tests_method = True  # Odoo's loader runs only a class's own tests otherwise
