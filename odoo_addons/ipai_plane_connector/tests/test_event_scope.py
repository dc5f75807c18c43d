"""The event-scope rule domain modules follow (issue 21): which Plane project an event is
about, read from what Plane sends (CE v1 and Cloud v2 webhooks, from the emulator)."""

import json
import uuid

from odoo.tests import TransactionCase, tagged

from .common import WebhookSink


@tagged("post_install", "-at_install")
class TestEventScope(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from plane_connector.testing import PlaneEmulator

        cls.emulator = PlaneEmulator("cloud", seed=5).start()
        cls.addClassCleanup(cls.emulator.stop)
        cls.sinks = {}
        for version in ("v1", "v2"):
            sink = cls.sinks[version] = WebhookSink()
            cls.addClassCleanup(sink.close)
            cls.emulator.register_webhook(sink.url, version=version)
        cls.connector = cls.env["plane.connector"]

    def bodies(self, version):
        self.assertTrue(self.emulator.wait_webhooks_idle(20))
        return [json.loads(body) for _headers, body in self.sinks[version].received]

    def test_the_project_of_each_event_as_plane_sends_it(self):
        pid = self.emulator.project_id
        item = self.emulator.create_work_item("Scope probe")
        self.emulator.update_work_item(item["id"], name="Scope probe renamed")
        self.emulator.add_comment(item["id"], "<p>hello</p>")
        self.emulator.delete_work_item(item["id"])
        seen = {}
        for version in ("v1", "v2"):
            for body in self.bodies(version):
                key = (version, body["event"], body.get("action"))
                seen[key] = self.connector._plane_event_project(body)
        self.assertEqual(seen[("v1", "issue", "created")], pid)
        self.assertEqual(seen[("v1", "issue", "updated")], pid)
        self.assertEqual(seen[("v1", "issue_comment", "created")], pid)
        self.assertEqual(seen[("v2", "workitem.created", None)], pid)
        self.assertEqual(seen[("v2", "workitem.updated", None)], pid)
        # A v2 deletion carries the item as it was in previous_attributes.
        self.assertEqual(seen[("v2", "workitem.deleted", None)], pid)
        # A v2 comment names only its work item.
        self.assertIsNone(seen[("v2", "workitem.comment.created", None)])

    def test_in_scope(self):
        pid, other = str(uuid.uuid4()), str(uuid.uuid4())
        scope = self.connector._plane_event_in_scope
        event = {"event": "issue", "data": {"id": "x", "project": {"id": pid.upper()}}}
        self.assertTrue(scope(event, pid))
        self.assertFalse(scope(event, other))
        self.assertFalse(scope(event, None), "a record bound to no project takes nothing")
        self.assertFalse(scope(event, "../../x"))
        bare = {"event": "issue", "action": "deleted", "data": {"id": "x"}}
        self.assertTrue(scope(bare, pid, linked=True), "names no project: by its own item only")
        self.assertFalse(scope(bare, pid), "an external-id match must name the project")
        v2 = {"version": "v2", "event": "project.updated", "data": {"id": pid}}
        self.assertEqual(self.connector._plane_event_project(v2), pid)
