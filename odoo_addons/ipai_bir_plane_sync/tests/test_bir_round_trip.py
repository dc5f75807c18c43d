"""BIR filings <-> Plane work items, end to end against the Plane emulator."""

import datetime as dt
from unittest.mock import patch

from odoo.addons.ipai_plane_connector.tests.common import (
    TEST_WEBHOOK_SECRET,
    PlaneEmulatorCase,
    WebhookSink,
)
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged
from odoo.tests.common import new_test_user


@tagged("post_install", "-at_install")
class TestBirRoundTrip(PlaneEmulatorCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param(
            "plane.bir.project_id", cls.emulator.project_id
        )
        cls.sink = WebhookSink()
        cls.addClassCleanup(cls.sink.close)
        cls.emulator.register_webhook(cls.sink.url, TEST_WEBHOOK_SECRET)

    def _filing(self, **values):
        return self.env["bir.filing"].create({
            "form_code": "1601-C", "period": "2026-10", "due_date": dt.date(2026, 11, 10),
            **values,
        })

    def _state_id(self, group):
        for state in self.connector._plane_paginate(self.connector._plane_workspace_path(
                "projects", self.emulator.project_id, "states")):
            if state["group"] == group:
                return state["id"]
        raise AssertionError(f"no {group} state")

    def _replay_webhooks(self, since):
        """Send what the emulator delivered to the sink since ``since`` on to Odoo, unchanged."""
        self.assertTrue(self.emulator.wait_webhooks_idle(timeout=20))
        answers = []
        for headers, body in self.sink.received[since:]:
            keep = {k: v for k, v in headers.items() if k.lower().startswith("x-plane")}
            keep["Content-Type"] = "application/json"
            response = self.post_webhook(body, keep)
            self.assertEqual(response.status_code, 200, response.text)
            answers.append(response.json()["status"])
        return answers

    def test_round_trip_create_update_complete(self):
        filing = self._filing()
        self.assertTrue(filing.plane_dirty)
        filing._plane_push()
        self.assertFalse(filing.plane_dirty)
        self.assertFalse(filing.plane_sync_error)
        item = self.emulator.work_item(filing.plane_work_item_id)
        self.assertEqual(item["name"], "BIR 1601-C 2026-10")
        self.assertEqual(item["target_date"], "2026-11-10")
        self.assertEqual(item["external_source"], "odoo")
        self.assertEqual(item["external_id"], self.connector._plane_external_id(filing))

        # A retried create (the link was lost): Plane's 409 maps it back to the same item.
        first_id = filing.plane_work_item_id
        filing.with_context(plane_remote=True).write({"plane_work_item_id": False})
        filing.write({"due_date": dt.date(2026, 11, 12)})
        filing._plane_push()
        self.assertEqual(filing.plane_work_item_id, first_id)
        self.assertEqual(self.emulator.work_item(first_id)["target_date"], "2026-11-12")
        by_external = self.connector._plane_request(
            "GET", self.connector._plane_path("work_items", self.emulator.project_id),
            params={"external_id": item["external_id"], "external_source": "odoo"},
        )
        self.assertEqual(by_external["id"], first_id)

        # Someone completes the work item in Plane: its signed webhook marks the filing filed.
        self.assertTrue(self.emulator.wait_webhooks_idle(timeout=20))
        before = len(self.sink.received)
        self.emulator.update_work_item(first_id, state=self._state_id("completed"))
        self.assertEqual(self._replay_webhooks(before), ["accepted"])
        self.assertEqual(filing.state, "draft", "nothing happens before the cron runs")
        self.connector._cron_process_deliveries()
        filing.invalidate_recordset()
        self.assertEqual(filing.state, "done")
        self.assertFalse(filing.plane_dirty, "a change that came from Plane is not pushed back")
        # The same delivery again changes nothing.
        self.assertEqual(self._replay_webhooks(before), ["duplicate"])

    def test_cron_pushes_dirty_filings(self):
        filing = self._filing(form_code="2550M", period="2026-09")
        self.env["bir.filing"]._cron_plane_push()
        self.assertTrue(filing.plane_work_item_id)
        self.assertFalse(filing.plane_dirty)
        filing.write({"state": "done"})
        self.assertTrue(filing.plane_dirty)
        self.env["bir.filing"]._cron_plane_push()
        item = self.emulator.work_item(filing.plane_work_item_id)
        self.assertEqual(item["state"], self._state_id("completed"))

    def test_reconciliation_catches_a_missed_completion(self):
        filing = self._filing(form_code="0619-E", period="2026-10")
        filing._plane_push()
        # Completed in Plane while the webhook was failing: nothing reaches Odoo's endpoint.
        self.emulator.update_work_item(filing.plane_work_item_id,
                                       state=self._state_id("completed"))
        self.assertEqual(filing.state, "draft")
        self.connector._cron_reconcile()
        self.assertEqual(filing.state, "done")

    def test_push_errors_are_kept_and_raised_by_the_button(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "plane.bir.project_id", "00000000-0000-4000-8000-000000000000"
        )
        filing = self._filing(form_code="1601-EQ", period="2026-Q3")
        filing._plane_push()
        self.assertTrue(filing.plane_sync_error)
        self.assertTrue(filing.plane_dirty)
        self.assertNotIn(self.emulator.api_key, filing.plane_sync_error)
        with self.assertRaises(UserError):
            filing.action_plane_sync()

    def test_plain_state_id_is_looked_up(self):
        # API reads (not webhooks) carry the state as a bare id: its group is fetched.
        filing = self._filing(form_code="1702Q", period="2026-Q3")
        filing._plane_push()
        data = {"id": filing.plane_work_item_id, "project": self.emulator.project_id,
                "state": self._state_id("started")}
        self.assertTrue(self.connector._plane_handle_event("issue", "updated", {"data": data}))
        self.assertEqual(filing.state, "draft")
        data["state"] = self._state_id("completed")
        self.connector._plane_handle_event("issue", "updated", {"data": data})
        self.assertEqual(filing.state, "done")
        self.connector._plane_handle_event("issue", "deleted", {"data": {"id": data["id"]}})
        self.assertFalse(filing.plane_work_item_id)
        other = {"id": "not-ours", "state": {"group": "completed"}}
        self.assertFalse(self.connector._plane_handle_event("issue", "updated", {"data": other}))

    def test_a_plain_user_files_and_syncs(self):
        user = new_test_user(self.env, login="bir_clerk", groups="base.group_user")
        filing = self._filing(form_code="0619-F", period="2026-10").with_user(user)
        filing.action_plane_sync()
        self.assertTrue(filing.plane_work_item_id)
        with self.assertRaises(AccessError):
            self.env["plane.webhook.delivery"].with_user(user).search([])
        with self.assertRaises(AccessError):
            self.env["ir.config_parameter"].with_user(user).get_param("plane.api_key_ref")

    def test_project_is_a_setting(self):
        project = "0f8fad5b-d9cb-469f-a165-70867728950e"
        settings = self.env["res.config.settings"].create({"plane_bir_project_id": project})
        settings.execute()
        self.assertEqual(
            self.env["ir.config_parameter"].sudo().get_param("plane.bir.project_id"), project
        )
        # It becomes part of every filing's request path: a UUID only.
        with self.assertRaises(ValidationError):
            self.env["res.config.settings"].create({"plane_bir_project_id": "p-123/../x"})
        arch = self.env["res.config.settings"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("plane_bir_project_id", arch)

    def test_sync_fields_are_the_sync_s_alone(self):
        clerk = new_test_user(self.env, login="bir_clerk2", groups="base.group_user")
        filing = self._filing(form_code="2550M", period="2026-09")
        mine = filing.with_user(clerk)
        for values in ({"plane_work_item_id": "../../../other"},
                       {"plane_project_id": "0f8fad5b-d9cb-469f-a165-70867728950e"},
                       {"plane_dirty": False}, {"plane_sync_error": False}):
            with self.assertRaises(AccessError):
                mine.write(values)
            with self.assertRaises(AccessError):
                mine.with_context(plane_remote=True).write(values)
        with self.assertRaises(AccessError):
            self.env["bir.filing"].with_user(clerk).create({
                "form_code": "2550M", "period": "2026-08", "due_date": dt.date(2026, 9, 20),
                "plane_work_item_id": "../x"})
        mine.write({"notes": "edited by the clerk"})  # their own fields still work
        self.assertTrue(filing.plane_dirty)

    def test_stored_ids_are_checked_before_any_request(self):
        filing = self._filing(form_code="0619-E", period="2026-09")
        # A value stored before this check existed, or by SQL.
        filing.sudo().write({"plane_work_item_id": "../../../../workspaces/other/projects/x"})
        sent = len(self.emulator.requests)
        with self.assertRaisesRegex(UserError, "not a Plane id"):
            filing.action_plane_sync()
        self.assertEqual(len(self.emulator.requests), sent, "nothing was sent")
        self.env["ir.config_parameter"].sudo().set_param("plane.bir.project_id", "../../x")
        filing.sudo().write({"plane_work_item_id": False})
        with self.assertRaisesRegex(UserError, "not a Plane id"):
            filing.action_plane_sync()
        self.assertEqual(len(self.emulator.requests), sent)

    def test_push_errors_are_redacted(self):
        fake = "plane_api_" + "c0ffee" * 5 + "ab"
        filing = self._filing(form_code="2550Q", period="2026-Q2")
        model = type(self.env["plane.connector"])
        with patch.object(model, "_plane_create_idempotent", autospec=True,
                          side_effect=UserError(f"Plane rejected the key {fake}")):
            filing._plane_push()
        self.assertIn("plane_api_***", filing.plane_sync_error)
        self.assertNotIn(fake[10:], filing.plane_sync_error)

    def test_period_is_validated(self):
        with self.assertRaisesRegex(ValidationError, "must look like 2026-10"):
            self._filing(period="October")


@tagged("post_install", "-at_install")
class TestBirRoundTripOnPlane100(TestBirRoundTrip):
    """The same round trip against Plane 1.0.0, which has only the /issues/ routes."""

    emulator_version = "1.0.0"
    allow_inherited_tests_method = True  # Odoo's loader runs only a class's own tests otherwise

    def test_no_call_used_the_routes_plane_1_0_lacks(self):
        self._filing(form_code="2550Q", period="2026-Q3")._plane_push()
        self.assertTrue([r for r in self.emulator.requests if "/issues/" in r.path])
        self.assertFalse([r for r in self.emulator.requests if "/work-items/" in r.path])
