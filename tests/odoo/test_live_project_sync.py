"""Project sync end to end: a real prefork Odoo, a Plane, and Plane's webhooks back to Odoo.

By default the Plane is the emulator (CE edition). In live mode (PLANE_LIVE_BASE_URL …,
PLANE_LIVE_SET_WEBHOOK and PLANE_LIVE_WEBHOOK_SECRET) it is the real Plane: its workspace
webhook is pointed at this Odoo's /plane/webhook, and Odoo talks to it with
PLANE_LIVE_API_KEY_2 when set (its own rate bucket; the test's own reads use the first key).

The scenario is the one that found issue 13: an ordinary Odoo project name, five tasks, renames
both ways with "Odoo wins", comments both ways, a work item deleted in Plane (which sends no
webhook), a project rename, and no 429.
"""

from __future__ import annotations

import os
import secrets
import string
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from odoo_server import OdooServer, plane_settings, series_params, wait_until
from plane_connector.testing import PlaneEmulator
from plane_live import LIVE_BUDGET, LiveConfig, PacedHttp

LIVE = LiveConfig.from_env()
MODULES = ("ipai_plane_project_sync",)
pytestmark = pytest.mark.odoo_templates(MODULES)  # built before the first test (conftest.py)
#: Seconds to wait for one hop of the scenario (a push, a webhook, a cron run).
HOP = 150.0 if LIVE else 60.0


class ScenarioPlane:
    """The Plane of the scenario: where Odoo points, and the test's own hands on it."""

    def __init__(self) -> None:
        self.emulator: PlaneEmulator | None = None
        self._family: str | None = None
        if LIVE is None:
            self.emulator = PlaneEmulator(rate_limit=600, seed=13).start()
            self.base_url = self.emulator.base_url
            self.workspace = self.emulator.workspace_slug
            self.odoo_key = self.emulator.api_key
            # Not a real secret: a per-run value for the emulator's webhook.
            self.webhook_secret = "plane_wh_" + uuid.uuid4().hex
            self.http = PacedHttp(self.base_url, self.emulator.api_key)
            self.rate = 600
        else:
            if not LIVE.can_point_webhook:
                pytest.skip("live scenario: PLANE_LIVE_SET_WEBHOOK and "
                            "PLANE_LIVE_WEBHOOK_SECRET are needed")
            self.base_url, self.workspace = LIVE.base_url, LIVE.workspace
            self.odoo_key = (os.environ.get("PLANE_LIVE_API_KEY_2") or "").strip() or (
                LIVE.api_key)
            self.webhook_secret = LIVE.webhook_secret or ""
            self.http = PacedHttp(LIVE.base_url, LIVE.api_key, budget=LIVE_BUDGET)
            self.rate = 58

    def point_webhook(self, url: str) -> None:
        if self.emulator is not None:
            self.emulator.register_webhook(url, self.webhook_secret)
        else:
            assert LIVE is not None
            LIVE.point_webhook(url)

    def stop(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
        elif LIVE is not None:
            LIVE.unpoint_webhook()

    def items(self, project: str, *ids: str, comments: bool = False) -> str:
        """A work-item path under the workspace on this server's route family (``/issues/`` on
        Plane <= 1.0), from the wheel's route map."""
        from plane_connector import PlaneClient, server

        if self._family is None:
            self._family = server.detect(PlaneClient(self.base_url, api_key=self.odoo_key)).family
        resource = "comments" if comments else "work_items"
        return "/".join(server.segments(self._family, resource, project, *ids)) + "/"

    def api_edits_send_webhooks(self) -> bool:
        """Whether a work item changed through API v1 sends an ``updated`` webhook: not on
        Plane 1.0 (the ``/issues/`` family), whose API view never calls model_activity."""
        self.items("x")  # detects the family once
        return self._family == "work-items"

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        answer = self.http.call(method, f"/api/v1/workspaces/{self.workspace}/{path}", body)
        return answer.status, answer.json()


@pytest.fixture(scope="module", params=series_params())
def scenario(request, tmp_path_factory) -> Iterator[dict]:
    series = request.param
    plane = ScenarioPlane()
    env = {"PLANE_SCENARIO_KEY": plane.odoo_key, "PLANE_SCENARIO_WH": plane.webhook_secret}
    server = OdooServer(series, ",".join(MODULES), env,
                        tmp_path_factory.mktemp("odoo") / "odoo.log", db_prefix="plane_sync")
    try:
        server.start()
        server.set_params(plane_settings(
            plane.base_url, plane.workspace, "PLANE_SCENARIO_KEY", "PLANE_SCENARIO_WH",
            requests_per_minute=str(plane.rate)))
        plane.point_webhook(f"{server.url}/plane/webhook?db={server.db}")
        yield {"server": server, "plane": plane}
    finally:
        plane.stop()  # the webhook off first: Plane retries deliveries to a stopped server
        server.stop()


def test_project_sync_end_to_end(scenario) -> None:
    server: OdooServer = scenario["server"]
    plane: ScenarioPlane = scenario["plane"]
    call = server.call
    uniq = "".join(secrets.choice(string.ascii_uppercase) for _ in range(4))

    def task(task_id: int, *names: str) -> dict:
        return call("project.task", "read", [task_id],
                    ["name", "plane_work_item_id", "plane_sync_state", *names])[0]

    def item(item_id: str) -> dict:
        status, body = plane.api("GET", plane.items(plane_project, item_id))
        return body if status == 200 else {}

    stages = [call("project.task.type", "create", {"name": name, "sequence": n})
              for n, name in enumerate(("New", "In Progress", "Done", "Cancelled"), 1)]
    full_name = f"R&D: Website (Phase 2) - ACME Inc. {uniq}"
    project = call("project.project", "create",
                   {"name": full_name, "type_ids": [(6, 0, stages)]})
    plane_project = None
    try:
        # 1. "Create in Plane" with a name Plane refuses as it is.
        call("project.project", "action_plane_create_project", [project])
        plane_project = call("project.project", "read", [project],
                             ["plane_project_id"])[0]["plane_project_id"]
        status, remote = plane.api("GET", f"projects/{plane_project}/")
        assert status == 200
        assert remote["name"] == f"R and D Website Phase 2 ACME Inc {uniq}"
        assert full_name in remote["description"]

        # 2. Five tasks become five work items carrying our external_id.
        tasks = call("project.task", "create", [
            {"name": f"Task {n} {uniq}", "project_id": project, "stage_id": stages[0]}
            for n in range(1, 6)])
        wait_until(lambda: all(task(t)["plane_sync_state"] == "synced" for t in tasks), HOP,
                   "five tasks pushed")
        status, page = plane.api("GET", plane.items(plane_project) + "?per_page=100")
        assert sorted(i["external_id"] for i in page["results"]) == sorted(
            f"project.task,{t}" for t in tasks)
        ids = {t: task(t)["plane_work_item_id"] for t in tasks}

        # 3. An Odoo rename reaches Plane.
        call("project.task", "write", [tasks[0]], {"name": f"Renamed in Odoo {uniq}"})
        wait_until(lambda: item(ids[tasks[0]]).get("name") == f"Renamed in Odoo {uniq}", HOP,
                   "the Odoo rename in Plane")

        # 4. A Plane rename of an "Odoo wins" field is reverted, once, and it goes quiet.
        plane.api("PATCH", plane.items(plane_project, ids[tasks[1]]),
                  {"name": "Renamed in Plane"})
        if plane.api_edits_send_webhooks():
            wait_until(lambda: item(ids[tasks[1]]).get("name") == f"Task 2 {uniq}", HOP,
                       "Odoo to revert the Plane rename")
        else:
            # Plane 1.0.0's API v1 work-item PATCH sends no webhook (recorded live; its web
            # app's edits do): nothing tells Odoo, so this step cannot be driven with an API
            # key there. Put the name back and go on with the rest of the scenario.
            assert item(ids[tasks[1]]).get("name") == "Renamed in Plane"
            plane.api("PATCH", plane.items(plane_project, ids[tasks[1]]),
                      {"name": f"Task 2 {uniq}"})
        assert task(tasks[1])["name"] == f"Task 2 {uniq}"

        # 5. Comments cross once each way.
        plane.api("POST", plane.items(plane_project, ids[tasks[2]], comments=True),
                  {"comment_html": "<p>Hello from Plane</p>"})
        # A note typed in the task's chatter, posted the way the web client posts it.
        server.web("/mail/message/post", {
            "thread_model": "project.task", "thread_id": tasks[2],
            "post_data": {"body": "Hello from Odoo", "message_type": "comment",
                          "subtype_xmlid": "mail.mt_note"}})

        def from_plane() -> int:
            return call("mail.message", "search_count", [
                ("model", "=", "project.task"), ("res_id", "=", tasks[2]),
                ("body", "ilike", "Hello from Plane")])

        def plane_comments() -> list[str]:
            status, body = plane.api(
                "GET", plane.items(plane_project, ids[tasks[2]], comments=True))
            return [c["comment_html"] for c in body["results"]] if status == 200 else []

        wait_until(lambda: from_plane() == 1, HOP, "the Plane comment in the chatter")
        wait_until(lambda: any("Hello from Odoo" in c for c in plane_comments()), HOP,
                   "the chatter note in Plane")

        # 6. A work item deleted in Plane: no webhook in CE; the deletion check finds it.
        status, _ = plane.api("DELETE", plane.items(plane_project, ids[tasks[3]]))
        assert status == 204
        # The check runs every plane.project_sync.deletion_sweep_minutes; the button asks now.
        call("project.project", "action_plane_sweep_now", [project])
        try:
            wait_until(lambda: task(tasks[3])["plane_sync_state"] == "unlinked", HOP,
                       "the deletion check to flag the task")
        except AssertionError as exc:
            jobs = call("plane.sync.job", "search_read", [("project_id", "=", project)],
                        ["kind", "state", "attempts", "last_error"])
            sweep = call("project.project", "read", [project],
                         ["plane_sweep_state", "plane_sweep_done_at", "plane_sweep_error"])
            raise AssertionError(f"{exc}; jobs {jobs}; project {sweep}") from None
        assert [task(t)["plane_sync_state"] for t in tasks if t != tasks[3]] == ["synced"] * 4

        # 7. An Odoo project rename renames the Plane project (mapped).
        call("project.project", "write", [project], {"name": f"Ops & Support (EU) {uniq}"})
        wait_until(lambda: plane.api("GET", f"projects/{plane_project}/")[1].get("name")
                   == f"Ops and Support EU {uniq}", HOP, "the Plane project renamed")

        # Settled: the revert happened once (none where Plane sent no webhook for the rename),
        # and every comment arrived once.
        assert call("mail.message", "search_count", [
            ("model", "=", "project.task"), ("res_id", "=", tasks[1]),
            ("body", "ilike", "overwritten")]) == (1 if plane.api_edits_send_webhooks() else 0)
        assert from_plane() == 1
        assert sum("Hello from Odoo" in c for c in plane_comments()) == 1
        log = server.log_text()
        assert " ERROR " not in log and " CRITICAL " not in log, log[-3000:]
        # A 429 the client retried leaves no trace in Odoo's log; one it gave up on does.
        assert "Too Many Requests" not in log and "RATE_LIMIT_EXCEEDED" not in log
        assert plane.odoo_key not in log and plane.webhook_secret not in log
        if plane.emulator is not None:
            assert not [r for r in plane.emulator.requests if r.status == 429]
    finally:
        if LIVE is not None and plane_project:
            plane.api("DELETE", f"projects/{plane_project}/")
