"""Contract: webhooks are sent, signed and retried as Plane does it (webhooks/*)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import plane_connector
import pytest
from plane_connector.testing import PlaneEmulator

from .conftest import Api, Receiver, free_port, same_shape

FAST = {"webhook_backoff": 0.01, "webhook_backoff_max": 0.01}
V2_KEYS = [
    "version",
    "delivery_id",
    "event_id",
    "entity_id",
    "entity_type",
    "event",
    "webhook_id",
    "workspace_id",
    "data",
    "previous_attributes",
]


def recorded(samples_dir: Path, name: str) -> tuple[bytes, dict]:
    base = samples_dir / "webhooks" / name
    body = Path(f"{base}.body.json").read_bytes()
    return body, json.loads(Path(f"{base}.headers.json").read_text())


def assert_like_recording(got, body: bytes, meta: dict) -> None:
    """Header names/order/values and body key order/types equal the recorded delivery."""
    rec_headers = meta["headers"]
    assert [k for k, _ in got.headers] == list(rec_headers)
    for name, value in rec_headers.items():
        if name in ("Host", "X-Plane-Delivery", "X-Plane-Signature", "Content-Length"):
            continue
        assert got.header(name) == value, name
    assert got.header("Content-Length") == str(len(got.body))
    assert len(got.header("X-Plane-Delivery")) == 36
    assert same_shape(json.loads(body), json.loads(got.body)) == []
    # Byte format: Python's default json.dumps (", " and ": ", ASCII escapes).
    assert json.dumps(json.loads(got.body)).encode() == got.body


def test_recorded_signatures_verify_with_the_library(samples_dir: Path) -> None:
    recorded = sorted((samples_dir / "webhooks").glob("*.headers.json"))
    assert recorded, samples_dir
    for headers_file in recorded:
        meta = json.loads(headers_file.read_text())
        body = headers_file.with_name(headers_file.name.replace(".headers.", ".body.")).read_bytes()
        sig = meta["headers"]["X-Plane-Signature"]
        assert plane_connector.verify_signature(meta["webhook_secret"], body, sig)


def test_issue_created_like_recording(
    emu: PlaneEmulator, api: Api, receiver: Receiver, samples_dir: Path
) -> None:
    hook = emu.register_webhook(receiver.url)
    item = api.post(
        f"{api.proj}/work-items/",
        {
            "name": "Invoice INV/2026/0001 sync",
            "description_html": "<p>Created from Odoo</p>",
            "priority": "high",
            "external_id": "account.move,1",
            "external_source": "odoo",
        },
    ).json()
    (got,) = receiver.wait(1)
    body, meta = recorded(samples_dir, "issue-created")
    assert_like_recording(got, body, meta)
    payload = json.loads(got.body)
    assert (payload["event"], payload["action"], payload["webhook_id"]) == (
        "issue",
        "created",
        hook["id"],
    )
    assert payload["data"]["id"] == item["id"]
    assert payload["data"]["description_stripped"] == "Created from Odoo"
    assert payload["activity"]["actor"] == emu.user
    assert got.header("X-Plane-Event") == "issue"
    # Signed with the webhook secret; any change to the bytes breaks it.
    secret, sig = hook["secret_key"], got.header("X-Plane-Signature")
    assert secret.startswith("plane_wh_") and len(secret) == len("plane_wh_") + 32
    assert plane_connector.verify_signature(secret, got.body, sig)
    tampered = bytearray(got.body)
    tampered[10] ^= 1
    assert not plane_connector.verify_signature(secret, bytes(tampered), sig)


def test_update_sends_one_delivery_per_changed_field(
    emu: PlaneEmulator, api: Api, receiver: Receiver, samples_dir: Path
) -> None:
    item = api.post(f"{api.proj}/work-items/", {"name": "Invoice", "priority": "high"}).json()
    emu.register_webhook(receiver.url)
    patched = api.patch(
        f"{api.proj}/work-items/{item['id']}/",
        {"priority": "urgent", "name": "Invoice (paid)", "state": item["state"]},
    )
    assert patched.status == 200
    first, second = receiver.wait(2)
    assert emu.wait_webhooks_idle(5) and len(receiver.received) == 2  # unchanged state: none
    for got, name in ((first, "issue-updated-priority"), (second, "issue-updated-name")):
        body, meta = recorded(samples_dir, name)
        assert_like_recording(got, body, meta)
    a1, a2 = (json.loads(g.body)["activity"] for g in (first, second))
    assert (a1["field"], a1["old_value"], a1["new_value"]) == ("priority", "high", "urgent")
    assert (a2["field"], a2["old_value"], a2["new_value"]) == ("name", "Invoice", "Invoice (paid)")
    # Each carries the whole current object.
    assert json.loads(first.body)["data"] == json.loads(second.body)["data"]


def test_comment_and_project_created_like_recording(
    emu: PlaneEmulator, api: Api, receiver: Receiver, samples_dir: Path
) -> None:
    emu.register_webhook(receiver.url)
    item = emu.seed_work_items(1)[0]
    api.post(f"{api.proj}/work-items/{item}/comments/", {"comment_html": "<p>Paid</p>"})
    api.post(f"{api.ws}/projects/", {"name": "Second", "identifier": "SEC"})
    comment, project = receiver.wait(2)
    assert_like_recording(comment, *recorded(samples_dir, "issue_comment-created"))
    assert_like_recording(project, *recorded(samples_dir, "project-created"))


def test_ce_sends_no_webhook_for_a_deleted_work_item_or_comment(
    emu: PlaneEmulator, api: Api, receiver: Receiver
) -> None:
    # Real Plane CE (checked live, tests/contract/recordings/webhook.*.json): only a project
    # deletion emits a webhook. The marker created last proves the queue has drained.
    item, other = emu.seed_work_items(2)
    emu.add_comment(other, "<p>c</p>")
    emu.register_webhook(receiver.url)
    comment = api.get(f"{api.proj}/work-items/{other}/comments/").json()["results"][0]
    assert api.delete(f"{api.proj}/work-items/{other}/comments/{comment['id']}/").status == 204
    assert api.delete(f"{api.proj}/work-items/{item}/").status == 204
    emu.delete_work_item(other)
    marker = api.post(f"{api.proj}/work-items/", {"name": "marker"}).json()
    emu.wait_webhooks_idle(10)
    got = [json.loads(r.body) for r in receiver.received]
    assert [(p["event"], p["action"], p["data"]["id"]) for p in got] == [
        ("issue", "created", marker["id"])
    ]


def test_project_delete_sends_only_the_id(emu: PlaneEmulator, api: Api, receiver: Receiver) -> None:
    project = emu.add_project("Doomed", "DOOM")
    emu.register_webhook(receiver.url, events=("project",))
    assert api.delete(f"{api.ws}/projects/{project['id']}/").status == 204
    (got,) = receiver.wait(1)
    payload = json.loads(got.body)
    assert (payload["action"], payload["data"]) == ("deleted", {"id": project["id"]})


def test_retry_after_connection_failure_new_delivery_id_same_bytes() -> None:
    receiver = Receiver(reset_first=1).start()
    try:
        with PlaneEmulator(**FAST) as emu:
            hook = emu.register_webhook(receiver.url)
            emu.create_work_item("Retry me")
            attempts = emu.wait_for_deliveries(2)
            (got,) = receiver.wait(1)
    finally:
        receiver.stop()
    first, second = attempts
    assert (first.outcome, first.retry, second.outcome, second.retry) == (
        "connection_error",
        0,
        "delivered",
        1,
    )
    assert first.delivery_id != second.delivery_id
    assert first.body == second.body == got.body
    assert first.headers["X-Plane-Signature"] == second.headers["X-Plane-Signature"]
    assert got.header("X-Plane-Delivery") == second.delivery_id
    assert emu.webhook(hook["id"])["is_active"] is True


def test_ce_does_not_retry_http_errors() -> None:
    receiver = Receiver(status=500).start()
    try:
        with PlaneEmulator(**FAST) as emu:
            emu.register_webhook(receiver.url)
            emu.create_work_item("Answered 500")
            emu.wait_for_deliveries(1)
            assert emu.wait_webhooks_idle(5)
            (attempt,) = emu.deliveries
    finally:
        receiver.stop()
    assert (attempt.outcome, attempt.status, attempt.retry) == ("http_error", 500, 0)


def test_ce_disables_the_webhook_after_five_failed_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}/gone"  # nothing listens: connection refused
    with PlaneEmulator(**FAST) as emu:
        hook = emu.register_webhook(url)
        emu.create_work_item("Nobody home")
        attempts = emu.wait_for_deliveries(6)
        assert emu.wait_webhooks_idle(5)
        assert len(emu.deliveries) == 6
        assert [a.retry for a in attempts] == [0, 1, 2, 3, 4, 5]
        assert {a.outcome for a in attempts} == {"connection_error"}
        assert len({a.delivery_id for a in attempts}) == 6
        assert len({a.body for a in attempts}) == 1
        assert attempts[-1].webhook_disabled and not any(a.webhook_disabled for a in attempts[:-1])
        assert emu.webhook(hook["id"])["is_active"] is False
        emu.create_work_item("After disable")
        assert emu.wait_webhooks_idle(5) and len(emu.deliveries) == 6


def test_cloud_v2_retries_5xx_with_a_stable_event_id() -> None:
    receiver = Receiver(status=503).start()
    try:
        with PlaneEmulator("cloud", **FAST) as emu:
            hook = emu.register_webhook(receiver.url)
            assert hook["version"] == "v2"
            item = emu.create_work_item("v2")
            emu.update_work_item(item["id"], priority="urgent", name="v2 renamed")
            attempts = emu.wait_for_deliveries(10)
            assert emu.wait_webhooks_idle(5)
    finally:
        receiver.stop()
    created = [a for a in attempts if a.action == "created"]
    updated = [a for a in attempts if a.action == "updated"]
    # One v2 event per update; the docs disable a webhook after 5 failed attempts.
    assert len(created) == 5 and len(updated) == 5
    assert created[-1].webhook_disabled and not any(a.webhook_disabled for a in created[:-1])
    bodies = [a.json() for a in created]
    assert len({b["event_id"] for b in bodies}) == 1
    assert [b["delivery_id"] for b in bodies] == [a.delivery_id for a in created]
    assert [a.headers["X-Plane-Delivery"] for a in created] == [a.delivery_id for a in created]
    first = bodies[0]
    # Top-level keys in the order of the payload structure in Plane's webhook docs.
    assert list(first) == V2_KEYS
    assert (first["version"], first["event"], first["entity_type"], first["entity_id"]) == (
        "v2",
        "workitem.created",
        "issue",
        item["id"],
    )
    assert created[0].headers["X-Plane-Event"] == "workitem.created"
    data = first["data"]
    assert list(data) == sorted(data, key=lambda k: (len(k), k))  # jsonb key order
    assert list(data)[:4] == ["id", "name", "point", "type_id"]
    assert data["state_id"] == item["state"] and data["external_id"] == "None"
    assert isinstance(data["sort_order"], int) and data["created_at"].endswith("+00:00")
    assert first["previous_attributes"] == {}
    update = updated[0].json()
    assert update["event"] == "workitem.updated" and update["event_id"] != first["event_id"]
    assert update["previous_attributes"] == {"priority": "none", "name": "v2"}
    assert update["data"]["priority"] == "urgent"
    for a in attempts:
        assert plane_connector.verify_signature(
            hook["secret_key"], a.body, a.headers["X-Plane-Signature"]
        )


def test_fault_duplicate_and_reorder(emu: PlaneEmulator, receiver: Receiver) -> None:
    emu.register_webhook(receiver.url)
    emu.faults.add(kind="webhook_duplicate", count=1)
    emu.create_work_item("twice")
    first, second = receiver.wait(2)
    assert first.body == second.body
    assert first.header("X-Plane-Delivery") != second.header("X-Plane-Delivery")
    emu.faults.add(kind="webhook_reorder", count=2)
    a = emu.create_work_item("A")
    b = emu.create_work_item("B")
    got = receiver.wait(4)[2:]
    assert [json.loads(g.body)["data"]["id"] for g in got] == [b["id"], a["id"]]


def test_subscriptions_filter_events(emu: PlaneEmulator, receiver: Receiver) -> None:
    emu.register_webhook(receiver.url, events=("issue_comment",))
    item = emu.create_work_item("no issue webhook")
    emu.add_comment(item["id"], "<p>only this</p>")
    (got,) = receiver.wait(1)
    assert got.header("X-Plane-Event") == "issue_comment"
    assert emu.wait_webhooks_idle(5) and len(receiver.received) == 1


def test_register_webhook_rejects_bad_input(emu: PlaneEmulator) -> None:
    with pytest.raises(ValueError, match="unknown webhook events"):
        emu.register_webhook("http://127.0.0.1:1/x", events=("issues",))
    with pytest.raises(ValueError, match="http or https"):
        emu.register_webhook("ftp://127.0.0.1/x")
    with pytest.raises(ValueError, match="version"):
        emu.register_webhook("http://127.0.0.1:1/x", version="v2")  # CE has no v2


def test_non_ascii_api_utf8_webhook_escaped(
    emu: PlaneEmulator, api: Api, receiver: Receiver
) -> None:
    emu.register_webhook(receiver.url)
    reply = api.post(f"{api.proj}/work-items/", {"name": "Factura ñ\u2028x"})
    # DRF: UTF-8 as is, but U+2028 escaped; Plane's webhook: json.dumps ASCII escapes.
    assert "Factura ñ\\u2028x".encode() in reply.body
    (got,) = receiver.wait(1)
    assert b'"name": "Factura \\u00f1\\u2028x"' in got.body


def test_cloud_v2_comment_and_delete_shapes(receiver: Receiver) -> None:
    with PlaneEmulator("cloud", seed=5) as emu:
        emu.register_webhook(receiver.url)
        item = emu.create_work_item("With comment", external_id="so,1", external_source="odoo")
        emu.add_comment(item["id"], "<p>Paid <b>today</b></p>")
        emu.delete_work_item(item["id"])
        created, comment, deleted = (json.loads(r.body) for r in receiver.wait(3))
    assert created["data"]["external_id"] == "so,1"
    assert (comment["event"], comment["entity_type"], comment["entity_id"]) == (
        "workitem.comment.created",
        "issue",
        item["id"],
    )
    assert list(comment["data"]) == ["id", "name", "comment"]
    assert list(comment["data"]["comment"]) == [
        "id",
        "access",
        "actor_id",
        "issue_id",
        "edited_at",
        "comment_stripped",
    ]
    assert comment["data"]["comment"]["comment_stripped"] == "Paid today"
    assert comment["data"]["comment"]["edited_at"] is None
    assert (deleted["event"], deleted["data"]) == ("workitem.deleted", {})
    assert deleted["previous_attributes"]["id"] == item["id"]
    assert deleted["previous_attributes"]["name"] == "With comment"


def test_registering_a_webhook_without_requests_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The emulator itself needs no dependency (tests/dist runs it from a bare install); its
    # webhooks are sent with requests, as Plane sends them.
    monkeypatch.setitem(sys.modules, "requests", None)
    with PlaneEmulator(seed=1) as emu:
        with pytest.raises(ImportError, match=r"pip install 'plane_connector\[testing\]'"):
            emu.register_webhook("http://127.0.0.1:9/hook")
