"""Issue 21 (item 2): a filing is marked filed only by an event of its own Plane project.

Webhooks cover the whole workspace and any member can give a work item any external id (the
database uuid in it is visible to every logged-in user, filing ids are small integers)."""

import datetime as dt
import uuid

from odoo.addons.ipai_plane_connector.tests.common import (
    TEST_WEBHOOK_SECRET,
    PlaneEmulatorCase,
    WebhookSink,
)
from odoo.tests import tagged


@tagged("post_install", "-at_install")
class TestBirEventScope(PlaneEmulatorCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param(
            "plane.bir.project_id", cls.emulator.project_id)
        cls.sink = WebhookSink()
        cls.addClassCleanup(cls.sink.close)
        cls.emulator.register_webhook(cls.sink.url, TEST_WEBHOOK_SECRET)
        # A project of the same workspace that has nothing to do with BIR.
        cls.elsewhere = cls.emulator.add_project("Team chores", "CHORE")["id"]

    def _filing(self, period):
        return self.env["bir.filing"].create({
            "form_code": "2550M", "period": period, "due_date": dt.date(2026, 11, 20)})

    def _completed(self, project):
        return next(s["id"] for s in self.emulator.states(project) if s["group"] == "completed")

    def _deliver_since(self, since):
        """Send the emulator's webhooks since ``since`` through /plane/webhook, then process."""
        self.assertTrue(self.emulator.wait_webhooks_idle(timeout=20))
        for headers, body in self.sink.received[since:]:
            keep = {k: v for k, v in headers.items() if k.lower().startswith("x-plane")}
            keep["Content-Type"] = "application/json"
            self.assertEqual(self.post_webhook(body, keep).status_code, 200)
        self.connector._cron_process_deliveries()
        self.env.invalidate_all()

    def _event(self, **data):
        return self.connector._plane_handle_event(
            "issue", "updated", {"event": "issue", "action": "updated", "data": data})

    def test_a_forged_item_in_another_project_files_nothing(self):
        filing = self._filing("2026-07")  # not pushed yet: no work item
        self.assertTrue(self.emulator.wait_webhooks_idle(timeout=20))
        since = len(self.sink.received)
        forged = self.emulator.create_work_item(
            "Looks like a filing", project_id=self.elsewhere,
            state=self._completed(self.elsewhere), external_source="odoo",
            external_id=self.connector._plane_external_id(filing))
        self._deliver_since(since)
        self.assertEqual(filing.state, "draft")
        self.assertFalse(filing.plane_work_item_id)
        self.assertFalse(self.env["bir.filing"].search([("plane_work_item_id", "=", forged["id"])]))

    def test_a_linked_filing_follows_its_own_item_only(self):
        filing = self._filing("2026-08")
        filing._plane_push()
        own = filing.plane_work_item_id
        done = {"id": str(uuid.uuid4()), "group": "completed"}
        # Another item of the BIR project carrying the filing's external id takes nothing over.
        self._event(id=str(uuid.uuid4()), project=self.emulator.project_id, state=done,
                    external_source="odoo",
                    external_id=self.connector._plane_external_id(filing))
        # An event naming the filing's item but another project is not the filing's either.
        self._event(id=own, project=self.elsewhere, state=done)
        self.assertEqual((filing.state, filing.plane_work_item_id), ("draft", own))
        # Its own item, completed in its own project, files it.
        self._event(id=own, project=self.emulator.project_id, state=done)
        self.assertEqual(filing.state, "done")

    def test_an_unlinked_filing_is_linked_from_the_bir_project(self):
        # Our own create whose link was not saved: the item's event links it (and files it).
        filing = self._filing("2026-09")
        item = str(uuid.uuid4())
        self._event(id=item, project=self.emulator.project_id,
                    state={"id": str(uuid.uuid4()), "group": "completed"},
                    external_source="odoo",
                    external_id=self.connector._plane_external_id(filing))
        self.assertEqual((filing.state, filing.plane_work_item_id), ("done", item))
