"""Issue 21 (items 2, 4, 5 and 6) on a real prefork Odoo 18 and 19 against the Plane emulator.

The addon tests (``test_event_scope.py`` of each module) call the handlers in one process. Here
each event is a signed webhook (the emulator's own, or one built from the emulator's webhook
serializer and signed with the database's secret, as a Plane member's edit would arrive) sent
over HTTP to ``/plane/webhook`` of a ``--workers 2`` server, and processed by its cron worker;
the users are real logins over XML-RPC. A "not applied" is asserted only once the delivery's
row is *done*, and each test also shows the same thing applied where it should be, so that a
test fails when its guard is gone.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import urllib.request
import uuid
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest
from odoo_server import OdooServer, plane_settings, series_params, wait_until
from plane_connector import sign_body
from plane_connector.testing import PlaneEmulator

#: Not a real secret: a per-run value the emulator and our own deliveries sign with.
WEBHOOK_SECRET = "plane_wh_" + uuid.uuid4().hex
#: Seconds for one hop (a push, a delivery processed by the cron worker).
HOP = 60.0
#: Odoo's XML-RPC fault code for an AccessError.
ACCESS_ERROR = 4


#: test_live_server.py's modules in its order: both share one template database per series
#: (project_sync's, with bir_plane_sync added), built before the first test (conftest.py).
MODULES = ("ipai_plane_project_sync", "ipai_bir_plane_sync")
pytestmark = pytest.mark.odoo_templates(MODULES)


class Live:
    """One prefork Odoo (both sync modules) and the emulator it talks to, for a module."""

    def __init__(self, server: OdooServer, emulator: PlaneEmulator) -> None:
        self.server = server
        self.emulator = emulator
        self.call = server.call
        self._models = xmlrpc.client.ServerProxy(f"{server.url}/xmlrpc/2/object",
                                                 allow_none=True)
        self._stage = 0

    # -- users

    def user(self, name: str, groups: list[str], email: str | None = None) -> tuple[int, str]:
        """A user with these groups (``module.xmlid``); returns (uid, password)."""
        call = self.call
        field = "group_ids" if "group_ids" in call(
            "res.users", "fields_get", ["group_ids"], attributes=["type"]) else "groups_id"
        ids = []
        for ref in groups:
            module, xmlid = ref.split(".")
            ids += [r["res_id"] for r in call("ir.model.data", "search_read",
                                              [("module", "=", module), ("name", "=", xmlid)],
                                              ["res_id"])]
        password = "pw-" + uuid.uuid4().hex[:12]
        login = email or f"{name.lower().replace(' ', '.')}.{uuid.uuid4().hex[:6]}@example.com"
        uid = call("res.users", "create", {"name": name, "login": login, "email": login,
                                           "password": password, field: [(6, 0, ids)]})
        return uid, password

    def as_user(self, who: tuple[int, str], model: str, method: str, *args: Any,
                **kw: Any) -> Any:
        uid, password = who
        return self._models.execute_kw(self.server.db, uid, password, model, method,
                                       list(args), kw)

    # -- projects and tasks linked to Plane (each its own Plane project)

    def linked_project(self, name: str, **values: Any) -> tuple[int, str]:
        self._stage += 1
        stage = self.call("project.task.type", "create", {"name": "New", "sequence": 1})
        project = self.call("project.project", "create", {
            "name": f"{name} {self._stage}", "type_ids": [(6, 0, [stage])], **values})
        self.call("project.project", "action_plane_create_project", [project])
        plane = self.call("project.project", "read", [project],
                          ["plane_project_id"])[0]["plane_project_id"]
        assert plane
        return project, plane

    def task(self, task_id: int, *fields: str) -> dict:
        found = self.call("project.task", "search_read", [("id", "=", task_id)],
                          ["name", "plane_work_item_id", "plane_sync_state", *fields],
                          context={"active_test": False})
        return found[0] if found else {}

    def synced_task(self, project: int, name: str, **values: Any) -> tuple[int, str]:
        return self.synced_tasks([{"name": name, "project_id": project, **values}])[0]

    def synced_tasks(self, vals_list: list[dict]) -> list[tuple[int, str]]:
        """Tasks created and pushed (all at once: one pass of the cron worker), with the
        push's own webhooks (the echoes) processed; returns (task, work item) pairs."""
        def push() -> list[int]:
            tasks = self.call("project.task", "create", vals_list)
            wait_until(lambda: all(self.task(t)["plane_sync_state"] == "synced" for t in tasks),
                       HOP, f"tasks {tasks} pushed to Plane")
            return tasks

        return [(t, self.task(t)["plane_work_item_id"]) for t in self.settle(push)]

    # -- webhooks

    def processed(self, delivery_ids: list[str]) -> None:
        """Wait until Odoo's cron worker processed these deliveries (every row *done*)."""
        def done() -> bool:
            rows = self.call("plane.webhook.delivery", "search_read",
                             [("delivery_id", "in", delivery_ids)],
                             ["delivery_id", "state", "last_error"])
            stuck = [r for r in rows if r["state"] in ("failed", "dead")]
            assert not stuck, stuck
            return len(rows) == len(set(delivery_ids)) and all(
                r["state"] == "done" for r in rows)

        wait_until(done, HOP, f"the cron worker to process deliveries {delivery_ids}")

    def settle(self, act) -> Any:
        """Do ``act()`` (an edit in the emulator, or a push), then wait until every webhook it sent
        was answered 200 and processed by the cron worker; returns what ``act`` returned."""
        since = len(self.emulator.deliveries)
        result = act()
        assert self.emulator.wait_webhooks_idle(timeout=HOP)
        attempts = self.emulator.deliveries[since:]
        assert all(a.status == 200 for a in attempts), attempts
        self.processed([a.delivery_id for a in attempts])
        return result

    def deliver(self, payload: dict) -> str:
        """Sign ``payload`` with the database's webhook secret and POST it to
        ``/plane/webhook`` over HTTP; returns its delivery id once processed."""
        body = json.dumps(payload).encode()
        delivery = str(uuid.uuid4())
        request = urllib.request.Request(  # noqa: S310 - the loopback server
            f"{self.server.url}/plane/webhook?db={self.server.db}", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-Plane-Delivery": delivery,
                     "X-Plane-Event": payload["event"],
                     "X-Plane-Signature": sign_body(WEBHOOK_SECRET, body)})
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            assert json.loads(response.read())["status"] == "accepted"
        self.processed([delivery])
        return delivery

    def item_payload(self, item_id: str, action: str = "updated", **data: Any) -> dict:
        """A CE v1 work item event as the emulator (Plane's serializer) writes it, changed by
        ``data``."""
        emulator = self.emulator
        with emulator._lock:  # noqa: SLF001 - the serializer of the emulator's webhooks
            current = copy.deepcopy(emulator.store.webhook_work_item(
                emulator.store.find_work_item(item_id)))
        return {"event": "issue", "action": action, "webhook_id": str(uuid.uuid4()),
                "workspace_id": emulator.workspace_id, "data": {**current, **data},
                "activity": {"field": None, "new_value": None, "old_value": None,
                             "actor": emulator.user, "old_identifier": None,
                             "new_identifier": None}}

    def comment_payload(self, item_id: str, project: str, email: str) -> dict:
        """A CE v1 comment on ``item_id`` by a Plane user whose e-mail is ``email``."""
        actor = dict(self.emulator.user, id=str(uuid.uuid4()), display_name="someone",
                     email=email)
        return {"event": "issue_comment", "action": "created",
                "webhook_id": str(uuid.uuid4()), "workspace_id": self.emulator.workspace_id,
                "data": {"id": str(uuid.uuid4()), "issue": item_id, "project": project,
                         "workspace": self.emulator.workspace_id, "actor": actor["id"],
                         "comment_html": "<p>hardening comment</p>"},
                "activity": {"field": None, "new_value": None, "old_value": None,
                             "actor": actor, "old_identifier": None, "new_identifier": None}}


@pytest.fixture(scope="module", params=series_params())
def live(request, tmp_path_factory) -> Iterator[Live]:
    series = request.param
    emulator = PlaneEmulator(rate_limit=600, seed=21).start()
    env = {"PLANE_H21_KEY": emulator.api_key, "PLANE_H21_WH": WEBHOOK_SECRET}
    server = OdooServer(series, ",".join(MODULES), env,
                        tmp_path_factory.mktemp("odoo") / "odoo.log", db_prefix="plane_h21_")
    try:
        server.start()
        server.set_params(plane_settings(
            emulator.base_url, emulator.workspace_slug, "PLANE_H21_KEY", "PLANE_H21_WH",
            **{"bir.project_id": emulator.project_id}))
        emulator.register_webhook(f"{server.url}/plane/webhook?db={server.db}", WEBHOOK_SECRET)
        yield Live(server, emulator)
        log = server.log_text()
        assert " CRITICAL " not in log, log[-3000:]
        assert emulator.api_key not in log and WEBHOOK_SECRET not in log
    finally:
        emulator.stop()  # no more deliveries to a stopped server
        server.stop()


def _completed(emulator: PlaneEmulator, project: str) -> str:
    return next(s["id"] for s in emulator.states(project) if s["group"] == "completed")


def set_cron_active(live: Live, cron_id: int, active: bool) -> None:
    """Odoo refuses to write a cron record while its worker runs that cron ("This cron task is
    currently being executed"): a fresh server's cron worker runs every cron once at start,
    so the write is retried until the run is over."""
    def write() -> bool:
        try:
            live.call("ir.cron", "write", [cron_id], {"active": active})
        except xmlrpc.client.Fault as fault:
            if "currently being executed" not in fault.faultString:
                raise
            return False
        return True

    wait_until(write, HOP, f"cron {cron_id} to be free to write")


def test_item2_a_filing_is_filed_only_from_the_bir_project(live):
    """A member of another Plane project forges a completed work item carrying an unlinked
    filing's external id: nothing happens. The same item in the BIR project links and files it."""
    call, emulator = live.call, live.emulator
    # The filing must stay unlinked (our own create whose link is not saved): the BIR push
    # cron is paused for this test, so only Plane's events can link it.
    (cron,) = call("ir.model.data", "search_read", [("module", "=", "ipai_bir_plane_sync"),
                                                    ("name", "=", "ir_cron_bir_plane_push")],
                   ["res_id"])
    set_cron_active(live, cron["res_id"], False)
    try:
        filing = call("bir.filing", "create", {"form_code": "2550M", "period": "2026-09",
                                               "due_date": "2026-10-20"})
        dbuuid = call("ir.config_parameter", "get_param", "database.uuid")
        forged = {"external_source": "odoo",
                  "external_id": f"{dbuuid}:bir.filing:{filing}"}
        elsewhere = emulator.add_project("Team chores", "CHORE")["id"]
        item = live.settle(lambda: emulator.create_work_item(
            "Looks like a filing", project_id=elsewhere,
            state=_completed(emulator, elsewhere), **forged))

        def filing_row() -> dict:
            return call("bir.filing", "read", [filing],
                        ["state", "plane_work_item_id", "plane_project_id"])[0]

        assert filing_row() == {"id": filing, "state": "draft", "plane_work_item_id": False,
                                "plane_project_id": False}, "filed from another project"

        # The same from the BIR project (the filing's own create, seen before its link was
        # saved) is applied: the guard does not simply drop every event.
        own = live.settle(lambda: emulator.create_work_item(
            "BIR 2550M 2026-09", project_id=emulator.project_id,
            state=_completed(emulator, emulator.project_id), **forged))
        row = filing_row()
        assert (row["state"], row["plane_work_item_id"]) == ("done", own["id"]), row
        assert item["id"] != own["id"]
    finally:
        set_cron_active(live, cron["res_id"], True)


def assignees_of(live: Live, task: int) -> list[int]:
    return live.task(task, "user_ids")["user_ids"]


def test_item4_plane_emails_match_users_exactly(live):
    """A Plane user named ``%@corp.com`` (or ``_``) is nobody in Odoo, as an assignee and as a
    comment's author; an exact e-mail still maps."""
    call, emulator = live.call, live.emulator
    victim, _ = live.user("Victim", ["base.group_user"], email="victim@corp.com")
    exact, _ = live.user("Exact", ["base.group_user"], email="exact.user@corp.com")
    partner = {uid: call("res.users", "read", [uid], ["partner_id"])[0]["partner_id"][0]
               for uid in (victim, exact)}
    project, plane_project = live.linked_project("Emails")
    # Members of the new Plane project, before Odoo first reads its member list.
    wild = emulator.add_member("Wild", email="%@corp.com")
    one_char = emulator.add_member("Underscore", email="_ictim@corp.com")
    exact_member = emulator.add_member("Exact", email="Exact.User@corp.com")
    # Nobody assigned in Odoo (a task made over RPC is its creator's by default): Plane's
    # assignees are then taken in, not a conflict that Odoo wins.
    task, item = live.synced_task(project, "Assigned from Plane", user_ids=[(6, 0, [])])
    assert assignees_of(live, task) == []

    live.settle(lambda: emulator.update_work_item(item, assignees=[wild["id"], one_char["id"]]))
    assert assignees_of(live, task) == [], "a wildcard Plane e-mail was mapped onto Odoo users"
    live.settle(lambda: emulator.update_work_item(item, assignees=[exact_member["id"]]))
    assert assignees_of(live, task) == [exact]

    def author(email: str) -> int | bool:
        payload = live.comment_payload(item, plane_project, email)
        live.deliver(payload)
        (message,) = call("mail.message", "search_read",
                          [("plane_comment_id", "=", payload["data"]["id"])], ["author_id"])
        return message["author_id"] and message["author_id"][0]

    for email in ("%@corp.com", "_ictim@corp.com", "exact_user@corp.com"):
        assert author(email) not in partner.values(), email
    assert author("EXACT.USER@corp.com") == partner[exact]


def test_item5_events_of_another_project_and_link_takeover(live):
    """Signed events naming the task's work item but another Plane project change nothing (the
    same from the task's project do); an item carrying a linked task's external id takes no link
    over; a comment from another project is not posted."""
    call, emulator = live.call, live.emulator
    project, plane_project = live.linked_project("Scope", plane_mode_name="plane")
    elsewhere = emulator.add_project("Elsewhere", "ELSE")["id"]
    task, item = live.synced_task(project, "Scoped")
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")

    live.deliver(live.item_payload(item, project=elsewhere, name="Renamed elsewhere",
                                   updated_at=later))
    assert live.task(task)["name"] == "Scoped"
    live.deliver(live.item_payload(item, "deleted", project=elsewhere))
    row = live.task(task)
    assert (row["plane_work_item_id"], row["plane_sync_state"]) == (item, "synced"), row
    comment = live.comment_payload(item, elsewhere, "someone@plane.local")
    live.deliver(comment)
    assert not call("mail.message", "search_count",
                    [("plane_comment_id", "=", comment["data"]["id"])])

    # An item of the task's own project carrying its external id: the link stays.
    forged = str(uuid.uuid4())
    live.deliver(live.item_payload(item, "created", id=forged, name="Hijack",
                                   external_source="odoo", external_id=f"project.task,{task}",
                                   sequence_id=999, updated_at=later))
    row = live.task(task)
    assert (row["name"], row["plane_work_item_id"]) == ("Scoped", item), row
    assert not call("project.task", "search_count", [("plane_work_item_id", "=", forged)],
                    context={"active_test": False})

    # From the task's own project the same events apply.
    comment = live.comment_payload(item, plane_project, "someone@plane.local")
    live.deliver(comment)
    assert call("mail.message", "search_count",
                [("plane_comment_id", "=", comment["data"]["id"])]) == 1
    live.deliver(live.item_payload(item, name="Renamed in its project", updated_at=later))
    assert live.task(task)["name"] == "Renamed in its project"


def test_item5_plane_remote_in_an_rpc_context_is_not_honoured(live):
    """A project user's edit and delete over XML-RPC with ``plane_remote`` in the context:
    the edit still reaches Plane and the deleted task's work item is still closed."""
    call, emulator = live.call, live.emulator
    employee = live.user("Project User", ["base.group_user", "project.group_project_user"])
    project, plane_project = live.linked_project("Remote", privacy_visibility="employees")
    task, item = live.synced_task(project, "Theirs", user_ids=[(6, 0, [employee[0]])])
    context = {"plane_remote": True}

    live.as_user(employee, "project.task", "write", [task], {"name": "Edited over RPC"},
                 context=context)
    wait_until(lambda: emulator.work_item(item)["name"] == "Edited over RPC", HOP,
               "the edit pushed to Plane")
    live.as_user(employee, "project.task", "unlink", [task], context=context)
    groups = {s["id"]: s["group"] for s in emulator.states(plane_project)}
    wait_until(lambda: groups.get(emulator.work_item(item)["state"]) == "cancelled", HOP,
               "the deleted task's work item closed in Plane")
    # The job commits "done" after Plane answered: the item may be closed a moment before.
    def archive_jobs():
        return [j["state"] for j in call("plane.sync.job", "search_read",
                [("kind", "=", "archive"), ("work_item_id", "=", item)], ["state"])]

    wait_until(lambda: archive_jobs() == ["done"], HOP, "the archive job to be done")
    assert archive_jobs() == ["done"]


def test_item6_who_reads_sync_jobs_and_the_other_models(live):
    """Over XML-RPC: a project user reads the sync jobs (and their last error) of the projects
    they can see only; a project manager reads all; the other models are not theirs."""
    call = live.call
    employee = live.user("Reader", ["base.group_user", "project.group_project_user"])
    manager = live.user("Manager", ["base.group_user", "project.group_project_manager"])
    hidden, _ = live.linked_project("Hidden", privacy_visibility="followers")
    followed, _ = live.linked_project("Followed", privacy_visibility="followers")
    # Open to every internal user, and shared with a portal user (below).
    open_, _ = live.linked_project("Open", privacy_visibility="portal")
    partner = call("res.users", "read", [employee[0]], ["partner_id"])[0]["partner_id"][0]
    call("project.project", "message_subscribe", [followed], partner_ids=[partner])
    live.synced_tasks([{"name": "Secret plans", "project_id": p}
                       for p in (hidden, followed, open_)])
    jobs = {project: call("plane.sync.job", "search", [("project_id", "=", project)])
            for project in (hidden, followed, open_)}
    assert all(jobs.values()), jobs
    every = sorted(j for ids in jobs.values() for j in ids)

    seen = live.as_user(employee, "plane.sync.job", "search", [("id", "in", every)])
    assert sorted(seen) == sorted(jobs[followed] + jobs[open_])
    rows = live.as_user(employee, "plane.sync.job", "read", jobs[open_], ["task_id", "last_error"])
    assert len(rows) == len(jobs[open_])
    for fields in (["task_id"], ["last_error"]):
        with pytest.raises(xmlrpc.client.Fault) as caught:
            live.as_user(employee, "plane.sync.job", "read", jobs[hidden][:1], fields)
        assert caught.value.faultCode == ACCESS_ERROR, caught.value
    assert not live.as_user(employee, "plane.sync.job", "search_read",
                            [("project_id", "=", hidden)], ["last_error"])
    assert sorted(live.as_user(manager, "plane.sync.job", "search",
                               [("id", "in", every)])) == every

    # The connector's models are for Settings administrators only.
    for model in ("plane.webhook.delivery", "plane.webhook.delivery.fingerprint",
                  "plane.project.link", "plane.health.check", "plane.sweep.seen"):
        for who in (employee, manager):
            with pytest.raises(xmlrpc.client.Fault) as caught:
                live.as_user(who, model, "search_read", [], ["id"], limit=1)
            assert caught.value.faultCode == ACCESS_ERROR, (model, caught.value)

    # The link wizard (it lists the workspace's Plane projects) is its creator's alone.
    other = live.user("Other Manager", ["base.group_user", "project.group_project_manager"])
    unlinked = call("project.project", "create", {"name": "To link"})
    action = live.as_user(manager, "project.project", "action_plane_pick_project", [unlinked])
    wizard = action["res_id"]
    assert live.as_user(manager, "plane.project.pick.line", "search",
                        [("wizard_id", "=", wizard)])
    assert not live.as_user(other, "plane.project.pick.line", "search",
                            [("wizard_id", "=", wizard)])
    with pytest.raises(xmlrpc.client.Fault) as caught:
        live.as_user(other, "plane.project.pick", "read", [wizard], ["line_ids"])
    assert caught.value.faultCode == ACCESS_ERROR, caught.value

    # A portal user of a shared project reads the project, not its Plane caches (states,
    # labels, members' e-mails).
    portal = live.user("Customer", ["base.group_portal"])
    shared = open_
    call("project.project", "message_subscribe", [shared], partner_ids=[
        call("res.users", "read", [portal[0]], ["partner_id"])[0]["partner_id"][0]])
    assert call("project.project", "read", [shared], ["plane_states_json"])[0][
        "plane_states_json"], "the cache is there to be read"
    assert live.as_user(portal, "project.project", "read", [shared], ["name"])
    for field in ("plane_members_json", "plane_labels_json", "plane_states_json"):
        with pytest.raises(xmlrpc.client.Fault) as caught:
            live.as_user(portal, "project.project", "read", [shared], [field])
        assert caught.value.faultCode == ACCESS_ERROR, (field, caught.value)
