"""The receiver pipeline on the recorded Plane deliveries, against both real stores."""

from __future__ import annotations

import email.message
import json
import logging
import os
import uuid

import plane_connector
import psycopg2
import pytest
from plane_connector.dedupe import PostgresDeliveryStore, SQLiteDeliveryStore
from plane_connector.webhooks import (
    WebhookReceiver,
    normalize_event,
    parse_delivery,
    precheck_headers,
)

from .conftest import Sample


def _total(store: PostgresDeliveryStore | SQLiteDeliveryStore) -> int:
    return sum(store.counts().values())


def test_every_recorded_delivery_is_accepted_once(store, samples: dict[str, Sample]) -> None:
    for sample in samples.values():
        receiver = WebhookReceiver(store, sample.secret)
        status, body = receiver.handle(sample.headers, sample.body)
        assert (status, body["status"]) == (200, "accepted"), (sample.name, body)
        assert body["delivery_id"] == sample.headers["X-Plane-Delivery"]
    rows = {r.delivery_id: r for r in store.fetch()}
    assert len(rows) == len(samples)
    issue = rows["406fc9a2-9192-46e8-a7b7-551c6535be89"]
    assert (issue.event, issue.action, issue.state, issue.attempts) == (
        "issue",
        "created",
        "received",
        0,
    )
    assert issue.webhook_id == "82c66556-b58d-4ba9-8028-351e6bbbba8c"
    assert issue.payload.encode() == samples["issue-created"].body  # raw body kept byte for byte
    assert issue.received_at is not None and issue.processed_at is None


def test_same_delivery_twice_is_a_quiet_duplicate(store, samples, caplog) -> None:
    sample = samples["issue-updated-name"]
    receiver = WebhookReceiver(store, sample.secret)
    assert receiver.handle(sample.headers, sample.body)[0] == 200
    with caplog.at_level(logging.DEBUG):
        status, body = receiver.handle(sample.headers, sample.body)
    assert status == 200
    assert body["status"] == "duplicate" and body["duplicate_of"] == "delivery_id"
    assert _total(store) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_plane_retry_with_new_delivery_id_is_a_duplicate(store, samples, retry_evidence) -> None:
    # Plane CE retried a refused delivery with a NEW X-Plane-Delivery and the same bytes: attempt
    # 1's id is in retry-evidence.json, attempt 2 is the recorded request.
    attempt2 = samples["issue_comment-created-RETRY-attempt2"]
    attempt1_id = retry_evidence["webhook_bed5bdc1_attempt1"]["X-Plane-Delivery"]
    assert attempt1_id != attempt2.headers["X-Plane-Delivery"]
    receiver = WebhookReceiver(store, attempt2.secret)
    first = receiver.handle(attempt2.with_headers(X_Plane_Delivery=attempt1_id), attempt2.body)
    assert first == (200, {"status": "accepted", "delivery_id": attempt1_id})
    status, body = receiver.handle(attempt2.headers, attempt2.body)
    assert status == 200 and body["status"] == "duplicate"
    assert body["duplicate_of"] == "fingerprint"
    assert body["original_delivery_id"] == attempt1_id
    assert [r.delivery_id for r in store.fetch()] == [attempt1_id]


def test_same_event_from_another_webhook_is_not_a_duplicate(store, samples) -> None:
    # The "500-not-retried" body is the same comment event sent by a second webhook: its bytes
    # differ (webhook_id), so it is a separate delivery, not a retry.
    a = samples["issue_comment-created-RETRY-attempt2"]
    b = samples["issue_comment-created-receiver-answered-500-not-retried"]
    assert a.body != b.body
    assert WebhookReceiver(store, a.secret).handle(a.headers, a.body)[1]["status"] == "accepted"
    assert WebhookReceiver(store, b.secret).handle(b.headers, b.body)[1]["status"] == "accepted"
    assert _total(store) == 2


def _v2_body(delivery_id: str, event_id: str) -> bytes:
    payload = {
        "version": "v2",
        "delivery_id": delivery_id,
        "event_id": event_id,
        "entity_id": "775c5716-5302-4617-bb9f-2cd843911268",
        "entity_type": "issue",
        "event": "workitem.updated",
        "webhook_id": "8944ed18-1331-4eae-b9bb-7c40864b8abd",
        "workspace_id": "b54ecb0d-e3eb-4986-b238-f83fd8665e65",
        "data": {"id": "775c5716-5302-4617-bb9f-2cd843911268", "name": "v2 item"},
        "previous_attributes": {"name": "old"},
    }
    return json.dumps(payload).encode()


def test_v2_retry_is_caught_by_event_id(store) -> None:
    # v2 bodies carry the per-attempt delivery_id, so a retry's bytes differ: only event_id matches.
    secret = "plane_wh_" + "ab" * 16
    receiver = WebhookReceiver(store, secret)
    event_id = str(uuid.uuid4())
    replies = []
    for _ in range(2):
        delivery_id = str(uuid.uuid4())
        body = _v2_body(delivery_id, event_id)
        headers = {
            "X-Plane-Delivery": delivery_id,
            "X-Plane-Event": "workitem.updated",
            "X-Plane-Signature": plane_connector.sign_body(secret, body),
        }
        replies.append(receiver.handle(headers, body))
    assert replies[0][1]["status"] == "accepted"
    assert replies[1][1]["status"] == "duplicate" and replies[1][1]["duplicate_of"] == "event_id"
    (row,) = store.fetch()
    assert (row.event, row.action, row.event_id) == ("workitem.updated", "updated", event_id)


def test_both_editions_name_entity_and_action_alike() -> None:
    # The one owner of the v2 -> v1 naming: the receiver stores the action it gives, and
    # Odoo's dispatch hands handlers the entity it gives.
    cases = {
        ("issue", "updated"): ("issue", "updated"),
        ("issue_comment", "created"): ("issue_comment", "created"),
        ("workitem.updated", None): ("issue", "updated"),
        ("work_item.deleted", "deleted"): ("issue", "deleted"),
        ("workitem.comment.created", None): ("issue_comment", "created"),
        ("work_item.WORK_ITEM_UPDATED", None): ("issue", "updated"),
        ("project.created", None): ("project", "created"),
        ("Cycle", "Deleted"): ("cycle", "deleted"),
        # the event's own action wins over the body's
        ("workitem.created", "updated"): ("issue", "created"),
        ("workitem.comment", "created"): ("issue_comment", "created"),
    }
    for (event, action), expected in cases.items():
        assert tuple(normalize_event(event, action)) == expected, (event, action)
    assert normalize_event("workitem.updated").entity == "issue"


def test_parse_delivery_gives_a_v2_action_from_the_event() -> None:
    body = _v2_body(str(uuid.uuid4()), "evt-1")
    headers = {"X-Plane-Delivery": str(uuid.uuid4()), "X-Plane-Event": "workitem.updated"}
    delivery = parse_delivery(headers, body)
    assert (delivery.event, delivery.action) == ("workitem.updated", "updated")
    assert normalize_event(delivery.event, delivery.action) == ("issue", "updated")
    # A v2 event that names no action is still stored (its last word), not refused.
    odd = json.loads(body)
    odd["event"] = "workitem"
    delivery = parse_delivery(headers, json.dumps(odd).encode())
    assert delivery.action == "workitem"


def test_header_names_are_case_insensitive(store, samples) -> None:
    sample = samples["project-created"]
    lower = {k.lower(): v for k, v in sample.headers.items()}
    assert WebhookReceiver(store, sample.secret).handle(lower, sample.body)[0] == 200
    assert _total(store) == 1


def test_a_rotated_secret_list_accepts_either(store, samples) -> None:
    sample = samples["issue-created"]
    receiver = WebhookReceiver(store, ["plane_wh_" + "00" * 16, sample.secret])
    assert receiver.handle(sample.headers, sample.body)[0] == 200


# --- rejections: every one stores nothing -------------------------------------------------


def _mutations(sample: Sample) -> list[tuple[str, dict[str, str], bytes, int]]:
    body, h = sample.body, sample.with_headers
    sig = lambda b: plane_connector.sign_body(sample.secret, b)  # noqa: E731
    not_json = b"event=issue&action=created"
    array = b"[1, 2, 3]"
    no_action = json.dumps({"event": "issue", "data": {}}).encode()
    no_event = json.dumps({"action": "created", "data": {}}).encode()
    no_data = json.dumps({"event": "issue", "action": "created"}).encode()
    data_not_object = json.dumps({"event": "issue", "action": "created", "data": [1]}).encode()
    latin1 = '{"event": "issue", "action": "créé", "data": {}}'.encode("latin-1")
    return [
        ("missing signature", h(X_Plane_Signature=None), body, 401),
        ("empty signature", h(X_Plane_Signature=""), body, 401),
        ("wrong signature", h(X_Plane_Signature="0" * 64), body, 401),
        ("not hex", h(X_Plane_Signature="not-a-signature"), body, 401),
        (
            "other secret",
            h(X_Plane_Signature=plane_connector.sign_body("plane_wh_x", body)),
            body,
            401,
        ),
        ("tampered body", sample.headers, body.replace(b"Invoice", b"Inv0ice"), 401),
        ("missing delivery", h(X_Plane_Delivery=None), body, 400),
        ("delivery not uuid", h(X_Plane_Delivery="12345"), body, 400),
        (
            "delivery injection",
            h(X_Plane_Delivery="406fc9a2-9192-46e8-a7b7-551c6535be89';--"),
            body,
            400,
        ),
        ("missing event", h(X_Plane_Event=None), body, 400),
        ("blank event", h(X_Plane_Event="  "), body, 400),
        ("not json", h(X_Plane_Signature=sig(not_json)), not_json, 400),
        ("json array", h(X_Plane_Signature=sig(array)), array, 400),
        ("no action", h(X_Plane_Signature=sig(no_action)), no_action, 400),
        ("no event", h(X_Plane_Signature=sig(no_event)), no_event, 400),
        ("no data", h(X_Plane_Signature=sig(no_data)), no_data, 400),
        ("data not object", h(X_Plane_Signature=sig(data_not_object)), data_not_object, 400),
        ("not utf-8", h(X_Plane_Signature=sig(latin1)), latin1, 400),
        ("empty body", h(X_Plane_Signature=sig(b"")), b"", 400),
    ]


def test_every_bad_input_is_rejected_and_nothing_stored(store, samples) -> None:
    sample = samples["issue-created"]
    receiver = WebhookReceiver(store, sample.secret)
    for label, headers, body, expected in _mutations(sample):
        status, answer = receiver.handle(headers, body)
        assert status == expected, (label, answer)
        assert answer["status"] == "rejected" and answer["reason"], label
        assert _total(store) == 0, label
    # ...and the genuine delivery still goes through afterwards.
    assert receiver.handle(sample.headers, sample.body)[0] == 200


def test_huge_body_is_413_by_size_and_by_content_length(store, samples) -> None:
    sample = samples["issue-created"]
    receiver = WebhookReceiver(store, sample.secret, max_body=1000)
    assert len(sample.body) > 1000
    status, answer = receiver.handle(sample.headers, sample.body)
    assert status == 413 and "1000" in answer["reason"]
    no_length = sample.with_headers(Content_Length=None)
    assert receiver.handle(no_length, sample.body)[0] == 413
    # The adapter can refuse from the header alone, before reading the body.
    assert receiver.precheck({"Content-Length": "1001"})[0] == 413
    assert receiver.precheck({"Content-Length": "1000"}) is None
    assert receiver.precheck({"Content-Length": "lots"})[0] == 400
    default = WebhookReceiver(store, sample.secret)
    big = b"{" + b" " * (1_048_576) + b"}"
    headers = sample.with_headers(
        Content_Length=None, X_Plane_Signature=plane_connector.sign_body(sample.secret, big)
    )
    assert default.handle(headers, big)[0] == 413
    assert _total(store) == 0


def test_signature_is_checked_before_the_body_is_parsed(store, samples, monkeypatch) -> None:
    sample = samples["issue-created"]
    parsed = []
    monkeypatch.setattr("plane_connector.webhooks.parse_delivery", lambda *a: parsed.append(a))
    receiver = WebhookReceiver(store, sample.secret)
    assert receiver.handle(sample.with_headers(X_Plane_Signature="0" * 64), sample.body)[0] == 401
    assert parsed == []


def test_no_secret_is_refused_unless_explicitly_allowed(sqlite_store, samples, caplog) -> None:
    with pytest.raises(ValueError, match="no webhook secret"):
        WebhookReceiver(sqlite_store, None)
    with pytest.raises(ValueError, match="empty"):
        WebhookReceiver(sqlite_store, "")
    with caplog.at_level(logging.WARNING, logger="plane_connector.webhooks"):
        receiver = WebhookReceiver(sqlite_store, None, allow_unsigned=True)
    assert any("UNSIGNED" in r.getMessage() for r in caplog.records)
    sample = samples["issue-created"]
    assert receiver.handle(sample.with_headers(X_Plane_Signature=None), sample.body)[0] == 200
    assert "UNSIGNED" in repr(receiver)


def test_no_secret_without_allow_unsigned_is_a_config_error() -> None:
    with pytest.raises(plane_connector.ConfigError):
        WebhookReceiver(SQLiteDeliveryStore(":memory:"), None)


def test_secret_never_appears_in_repr_or_answers(sqlite_store, samples, caplog) -> None:
    sample = samples["issue-created"]
    with caplog.at_level(logging.DEBUG):
        receiver = WebhookReceiver(sqlite_store, sample.secret)
        answers = [receiver.handle(h, b) for _, h, b, _ in _mutations(sample)]
        answers.append(receiver.handle(sample.headers, sample.body))
    blob = repr(receiver) + json.dumps(answers) + caplog.text
    assert sample.secret not in blob
    assert sample.secret[len("plane_wh_") :] not in blob


# --- a store that fails: 503, nothing lost, nothing half-stored ----------------------------


def test_dead_postgres_answers_503_and_the_retry_is_accepted(pg_store, samples, caplog) -> None:
    sample = samples["issue-created"]
    dead = PostgresDeliveryStore.from_dsn(
        "postgresql://postgres@127.0.0.1:1/test", table=pg_store.table, create=False
    )
    with caplog.at_level(logging.ERROR, logger="plane_connector.webhooks"):
        status, answer = WebhookReceiver(dead, sample.secret).handle(sample.headers, sample.body)
    assert status == 503 and answer["status"] == "error"
    assert "nothing was stored" in answer["reason"]
    assert any("503" in r.getMessage() for r in caplog.records)
    assert sample.secret not in caplog.text and "Invoice" not in caplog.text
    # Once the database is back, the same delivery (Plane's retry) is accepted, not a duplicate.
    assert WebhookReceiver(pg_store, sample.secret).handle(sample.headers, sample.body) == (
        200,
        {"status": "accepted", "delivery_id": sample.headers["X-Plane-Delivery"]},
    )


def test_database_dying_before_commit_leaves_no_row(pg_dsn, pg_store, samples) -> None:
    """The server kills the claim's backend after the INSERT, before COMMIT: 503, no row."""
    import contextlib

    killer = psycopg2.connect(pg_dsn)
    killer.autocommit = True

    @contextlib.contextmanager
    def connect_then_die():
        conn = psycopg2.connect(pg_dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pid = cur.fetchone()[0]
                yield cur
                killer.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
            conn.commit()
        finally:
            conn.close()

    sample = samples["issue-created"]
    dying = PostgresDeliveryStore(connect_then_die, table=pg_store.table)
    status, answer = WebhookReceiver(dying, sample.secret).handle(sample.headers, sample.body)
    killer.close()
    assert status == 503
    assert pg_store.counts() == {"received": 0, "done": 0, "failed": 0, "dead": 0}
    assert WebhookReceiver(pg_store, sample.secret).handle(sample.headers, sample.body)[0] == 200
    assert pg_store.counts()["received"] == 1


def test_sqlite_store_gone_answers_503(tmp_path, samples) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    store = SQLiteDeliveryStore(str(folder / "d.sqlite3"))
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    sample = samples["issue-created"]
    status, answer = WebhookReceiver(store, sample.secret).handle(sample.headers, sample.body)
    assert status == 503 and answer["status"] == "error"
    assert not os.path.exists(folder)


# --- inline processing (on_accepted) ---------------------------------------------------------


def test_on_accepted_runs_after_the_claim_and_marks_done(store, samples) -> None:
    sample = samples["issue-created"]
    seen = []

    def on_accepted(delivery):
        # The row is committed and visible to others before the side effect runs.
        seen.append((delivery.event, delivery.action, store.fetch()[0].state))

    receiver = WebhookReceiver(store, sample.secret, on_accepted=on_accepted)
    status, answer = receiver.handle(sample.headers, sample.body)
    assert status == 200 and answer["processed"] is True
    assert seen == [("issue", "created", "received")]
    assert receiver.handle(sample.headers, sample.body)[1]["status"] == "duplicate"
    assert len(seen) == 1
    (row,) = store.fetch()
    assert (row.state, row.attempts) == ("done", 1)


def test_on_accepted_failure_leaves_the_row_to_the_queue(store, samples) -> None:
    sample = samples["project-created"]

    def boom(delivery):
        raise RuntimeError("Odoo said no, token=pln_supersecret123")

    receiver = WebhookReceiver(store, sample.secret, on_accepted=boom, backoff=lambda n: 0)
    status, answer = receiver.handle(sample.headers, sample.body)
    assert status == 200 and answer == {
        "status": "accepted",
        "delivery_id": sample.headers["X-Plane-Delivery"],
        "processed": False,
    }
    (row,) = store.fetch()
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error.startswith("RuntimeError: Odoo said no")
    assert "supersecret" not in row.last_error
    handled = []
    report = store.process_pending(None, handled.append)
    assert report.done == 1 and [d.event for d in handled] == ["project"]


def test_inline_rows_are_leased_away_from_the_queue(store, samples) -> None:
    # While the inline handler runs, a queue worker must not take the same row.
    sample = samples["issue-created"]
    during = []

    def on_accepted(delivery):
        during.append(store.process_pending(None, lambda d: None).processed)

    WebhookReceiver(store, sample.secret, on_accepted=on_accepted).handle(
        sample.headers, sample.body
    )
    assert during == [0]


def test_parse_delivery_normalises_the_delivery_id(samples) -> None:
    sample = samples["issue-created"]
    upper = sample.with_headers(X_Plane_Delivery=sample.headers["X-Plane-Delivery"].upper())
    d = parse_delivery(upper, sample.body)
    assert d.delivery_id == sample.headers["X-Plane-Delivery"]
    assert d.event_id is None and d.data["name"] == "Invoice INV/2026/0001 sync"
    assert "body" not in repr(d) and "Invoice" not in repr(d)


def test_precheck_refuses_ambiguous_framing(sqlite_store, samples) -> None:
    """The one owner of the framing checks: a size judged on one Content-Length and a read on
    another let a 4 GB body past a 1 MiB limit."""
    receiver = WebhookReceiver(sqlite_store, samples["issue-created"].secret, max_body=1000)
    message = email.message.Message()  # what http.server parses: repeated headers kept
    message["Content-Length"] = "4000000000"
    message["Content-Length"] = "10"
    status, answer = receiver.precheck(message)  # type: ignore[misc]
    assert (status, answer["reason"]) == (400, "several Content-Length headers")
    equal = [("Content-Length", "10"), ("content-length", "10")]
    assert receiver.precheck(equal)[0] == 400  # type: ignore[index]
    for value in ("10, 10", "+10", "1e3", "", "\u0661\u0660", "9" * 30):
        assert receiver.precheck({"Content-Length": value})[0] == 400, value  # type: ignore[index]
    both = {"Content-Length": "10", "Transfer-Encoding": "chunked"}
    assert receiver.precheck(both)[0] == 400  # type: ignore[index]
    # On the wire (the adapter reads the body itself): one chunked coding or a length.
    assert receiver.precheck({}, wire=True)[0] == 411  # type: ignore[index]
    assert receiver.precheck({}) is None  # a framework already read (and measured) the body
    assert receiver.precheck({"Transfer-Encoding": "chunked"}, wire=True) is None
    for coding in ("gzip, chunked", "chunked, chunked", "identity"):
        te = {"Transfer-Encoding": coding}
        assert receiver.precheck(te, wire=True)[0] == 400, coding  # type: ignore[index]
    twice = [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")]
    assert receiver.precheck(twice, wire=True)[0] == 400  # type: ignore[index]
    assert receiver.precheck([("Content-Length", " 1000 ")], wire=True) is None
    # The same check without a receiver, for an adapter that cannot build one yet.
    assert precheck_headers({"Content-Length": "1001"}, 1000)[0] == 413  # type: ignore[index]
    assert precheck_headers(message, 1000) == receiver.precheck(message)  # type: ignore[arg-type]
    assert precheck_headers({"Content-Length": "1000"}, 1000) is None


def test_odd_content_length_and_body_types(store, samples) -> None:
    sample = samples["issue-created"]
    receiver = WebhookReceiver(store, sample.secret)
    assert receiver.handle(sample.with_headers(Content_Length="-1"), sample.body)[0] == 400
    assert receiver.handle(sample.headers, sample.body.decode())[0] == 400  # type: ignore[arg-type]
    assert receiver.handle(sample.headers, 5)[0] == 400  # type: ignore[arg-type]
    assert _total(store) == 0
    assert receiver.handle(sample.headers, bytearray(sample.body))[0] == 200


def test_handle_async_gives_the_same_answers(sqlite_store, samples) -> None:
    import asyncio

    sample = samples["issue-created"]
    receiver = WebhookReceiver(sqlite_store, sample.secret)

    async def twice():
        return [await receiver.handle_async(sample.headers, sample.body) for _ in range(2)]

    first, second = asyncio.run(twice())
    assert (first[1]["status"], second[1]["status"]) == ("accepted", "duplicate")


def test_a_redacted_secret_holder_is_accepted_and_never_shown(store, samples) -> None:
    from plane_connector.secrets import Redacted

    sample = samples["issue-created"]
    receiver = WebhookReceiver(store, Redacted(sample.secret))
    assert receiver.handle(sample.headers, sample.body)[0] == 200
    assert sample.secret not in repr(receiver) + repr(vars(receiver))
    with pytest.raises(ValueError, match="empty"):
        WebhookReceiver(store, Redacted(""))


def test_duplicates_log_nothing_at_info(store, samples, caplog) -> None:
    sample = samples["issue-created"]
    receiver = WebhookReceiver(store, sample.secret)
    receiver.handle(sample.headers, sample.body)
    with caplog.at_level(logging.INFO):
        for _ in range(20):
            retry = sample.with_headers(X_Plane_Delivery=str(uuid.uuid4()))
            assert receiver.handle(retry, sample.body)[1]["status"] == "duplicate"
    assert [r for r in caplog.records if r.name.startswith("plane_connector")] == []
