"""Work items and the other ERP resources: CRUD, filters, validation."""

from __future__ import annotations

import pytest
from plane_connector.testing import PlaneEmulator

from .conftest import Api


def test_work_item_crud(api: Api, emu: PlaneEmulator) -> None:
    created = api.post(f"{api.proj}/work-items/", {"name": "Invoice", "priority": "low"})
    assert created.status == 201
    item = created.json()
    assert item["sequence_id"] == 1 and item["created_by"] == emu.user["id"]
    url = f"{api.proj}/work-items/{item['id']}/"
    assert api.get(url).json() == item
    done = next(
        s for s in api.get(f"{api.proj}/states/").json()["results"] if s["group"] == "completed"
    )
    patched = api.patch(url, {"state": done["id"], "target_date": "2026-12-01"}).json()
    assert patched["state"] == done["id"] and patched["completed_at"] is not None
    assert patched["updated_by"] == emu.user["id"]
    assert api.get(f"{api.proj}/issues/{item['id']}/").json()["target_date"] == "2026-12-01"
    deleted = api.delete(url)
    assert (deleted.status, deleted.body, deleted.header("Content-Type")) == (204, b"", None)
    assert api.get(url).status == 404


def test_validation_errors_lose_nothing(api: Api, emu: PlaneEmulator) -> None:
    bad = [
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "x" * 256}, {"name": ["Ensure this field has no more than 255 characters."]}),
        ({"name": "x", "state": "00000000-0000-4000-8000-000000000000"}, "state"),
        ({"name": "x", "labels": "bug"}, "labels"),
        ({"name": "x", "start_date": "01/02/2026"}, "start_date"),
    ]
    for body, expected in bad:
        reply = api.post(f"{api.proj}/work-items/", body)
        assert reply.status == 400
        if isinstance(expected, dict):
            assert reply.json() == expected
        else:
            assert list(reply.json()) == [expected]
    dates = api.post(
        f"{api.proj}/work-items/",
        {"name": "x", "start_date": "2026-02-01", "target_date": "2026-01-01"},
    )
    assert dates.status == 400
    list_body = api.call(
        "POST", f"{api.proj}/work-items/", raw=b"[1]", headers={"Content-Type": "application/json"}
    )
    assert list_body.status == 400 and "non_field_errors" in list_body.json()
    assert api.get(f"{api.proj}/work-items/").json()["total_count"] == 0


def test_patch_external_id_conflict(api: Api) -> None:
    a = api.post(
        f"{api.proj}/work-items/", {"name": "a", "external_id": "1", "external_source": "odoo"}
    ).json()
    b = api.post(
        f"{api.proj}/work-items/", {"name": "b", "external_id": "2", "external_source": "odoo"}
    ).json()
    clash = api.patch(f"{api.proj}/work-items/{b['id']}/", {"external_id": "1"})
    assert clash.status == 409 and clash.json()["id"] == b["id"]
    assert a["id"] != b["id"]


def test_search(api: Api, emu: PlaneEmulator) -> None:
    emu.seed_work_items(12)
    found = api.get(f"{api.ws}/work-items/search/?search=item%20001").json()
    assert [i["sequence_id"] for i in found["issues"]] == [1]
    assert set(found["issues"][0]) == {
        "name",
        "id",
        "sequence_id",
        "project__identifier",
        "project_id",
        "workspace__slug",
    }
    assert len(api.get(f"{api.ws}/work-items/search/?search=Seed").json()["issues"]) == 10
    assert api.get(f"{api.ws}/work-items/search/").status == 400


def test_states_labels_comments_cycles_modules(api: Api, emu: PlaneEmulator) -> None:
    state = api.post(
        f"{api.proj}/states/", {"name": "Review", "color": "#000000", "group": "started"}
    )
    assert state.status == 200 and state.json()["group"] == "started"  # 200: as Plane answers
    assert (
        api.post(f"{api.proj}/states/", {"name": "x", "color": "#1", "group": "nope"}).status == 400
    )
    label = api.post(f"{api.proj}/labels/", {"name": "urgent-customer"}).json()
    dup = api.post(f"{api.proj}/labels/", {"name": "urgent-customer"})
    assert dup.status == 409 and dup.json()["id"] == label["id"]
    item = api.post(f"{api.proj}/work-items/", {"name": "x", "labels": [label["id"]]}).json()
    comments = f"{api.proj}/work-items/{item['id']}/comments/"
    comment = api.post(
        comments,
        {"comment_html": "<p>hi</p>", "external_id": "mail.message,9", "external_source": "odoo"},
    )
    assert comment.status == 201
    again = api.post(
        comments,
        {"comment_html": "<p>hi</p>", "external_id": "mail.message,9", "external_source": "odoo"},
    )
    assert again.status == 409 and again.json()["id"] == comment.json()["id"]
    assert api.get(comments).json()["total_count"] == 1
    cycle = api.post(f"{api.proj}/cycles/", {"name": "Sprint 1"}).json()
    added = api.post(f"{api.proj}/cycles/{cycle['id']}/cycle-issues/", {"issues": [item["id"]]})
    assert added.status == 201
    listed = api.get(f"{api.proj}/cycles/{cycle['id']}/cycle-issues/").json()
    assert [r["id"] for r in listed["results"]] == [item["id"]]
    module = api.post(f"{api.proj}/modules/", {"name": "Billing"}).json()
    api.post(f"{api.proj}/modules/{module['id']}/module-issues/", {"issues": [item["id"]]})
    gone = api.delete(f"{api.proj}/modules/{module['id']}/module-issues/{item['id']}/")
    assert gone.status == 204
    assert api.get(f"{api.proj}/modules/").json()["total_count"] == 1
    members = api.get(f"{api.proj}/members/").json()
    assert [m["id"] for m in members] == [emu.user["id"]]
    jane = emu.add_member("Jane", "Doe")
    assign = api.patch(f"{api.proj}/work-items/{item['id']}/", {"assignees": [jane["id"]]})
    assert assign.json()["assignees"] == [jane["id"]]


def test_projects(api: Api, emu: PlaneEmulator) -> None:
    listed = api.get(f"{api.ws}/projects/").json()
    assert [p["id"] for p in listed["results"]] == [emu.project_id]
    assert api.post(f"{api.ws}/projects/", {"name": "x"}).json() == {
        "identifier": ["This field is required."]
    }
    new = api.post(f"{api.ws}/projects/", {"name": "HR", "identifier": "hr"}).json()
    assert new["identifier"] == "HR"
    states = api.get(f"{api.ws}/projects/{new['id']}/states/").json()
    assert states["total_count"] == 5
    assert api.post(f"{api.ws}/projects/", {"name": "HR2", "identifier": "HR"}).status == 409
    assert api.get(f"{api.ws}/projects/00000000-0000-4000-8000-000000000000/").status == 404


def test_keep_alive_and_gzip(emu: PlaneEmulator) -> None:
    import gzip
    import http.client
    import json

    emu.seed_work_items(50)
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    path = f"/api/v1/workspaces/{emu.workspace_slug}/projects/{emu.project_id}/work-items/"
    for _ in range(3):  # one connection, several requests
        conn.request("GET", path, headers={"X-API-Key": emu.api_key, "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        raw = resp.read()
        assert resp.getheader("Content-Encoding") == "gzip"
        assert int(resp.getheader("Content-Length")) == len(raw)
        assert json.loads(gzip.decompress(raw))["count"] == 50
    conn.close()


def test_add_project_helper(api: Api, emu: PlaneEmulator) -> None:
    project = emu.add_project("Bench", "BEN")
    emu.seed_work_items(4, project["id"])
    page = api.get(f"{api.ws}/projects/{project['id']}/work-items/").json()
    assert page["total_count"] == 4
    assert api.get(f"{api.ws}/work-items/BEN-4/").json()["project"] == project["id"]
    with pytest.raises(ValueError, match="taken"):
        emu.add_project("Again", "ben")


def test_user_side_helpers_validate(emu: PlaneEmulator) -> None:
    with pytest.raises(ValueError, match="priority"):
        emu.create_work_item("x", priority="bogus")
    with pytest.raises(ValueError, match="not writable"):
        emu.create_work_item("x", sequence_id=5)
    item = emu.create_work_item("ok", priority="low")
    with pytest.raises(ValueError, match="name"):
        emu.update_work_item(item["id"], name="")
    with pytest.raises(KeyError):
        emu.update_work_item("00000000-0000-4000-8000-000000000000", name="x")
    assert emu.work_item(item["id"])["name"] == "ok"


def test_read_helpers(emu: PlaneEmulator) -> None:
    assert [s["group"] for s in emu.states()] == [
        "backlog",
        "unstarted",
        "started",
        "completed",
        "cancelled",
    ]
    assert {label["name"] for label in emu.labels()} == {"bug", "feature", "invoice"}
    ids = emu.seed_work_items(3)
    assert [i["id"] for i in emu.work_items()] == ids[::-1]
