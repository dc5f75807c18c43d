"""The delivery state machine is written once (``dedupe.store``) and runs through each backend's
dialect: the same cases, step by step, on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt

import pytest
from plane_connector.backoff import default_backoff, exponential_backoff
from plane_connector.dedupe import (
    BaseDeliveryStore,
    DeliveryStoreError,
    PostgresDeliveryStore,
    SQLiteDeliveryStore,
)
from plane_connector.diagnostics import describe_error

from .test_stores import make_delivery

SHARED = (
    "mark_done",
    "mark_failed",
    "process_pending",
    "retry",
    "fetch",
    "purge",
    "counts",
    "_record_failure",
    "_defer_row",
    "_lock",
)


@pytest.mark.parametrize("cls", [PostgresDeliveryStore, SQLiteDeliveryStore])
def test_both_stores_run_the_one_state_machine(cls) -> None:
    assert issubclass(cls, BaseDeliveryStore)
    assert [n for n in SHARED if getattr(cls, n) is not getattr(BaseDeliveryStore, n)] == []


# Steps: "ok", "fail", "outage" (deferred) run the queue once; "inline-done", "inline-fail" are
# the receiver's inline path; "retry" is the operator's. After each: (state, attempts,
# last_error's start or None, whether a next attempt is scheduled). max_attempts is 3.


def _until_dead(step: str) -> list[tuple[str, tuple]]:
    return [(step, ("failed", n, "RuntimeError", True)) for n in (1, 2)] + [
        (step, ("dead", 3, "RuntimeError", False))
    ]


CASES = {
    "done": [("ok", ("done", 1, None, False))],
    "failed-then-done": [
        ("fail", ("failed", 1, "RuntimeError: boom", True)),
        ("ok", ("done", 2, None, False)),
    ],
    "dead-stays-dead": [*_until_dead("fail"), ("ok", ("dead", 3, "RuntimeError", False))],
    "dead-then-retry": [
        *_until_dead("inline-fail"),
        ("retry", ("received", 0, "RuntimeError", False)),
        ("ok", ("done", 1, None, False)),
    ],
    "outage-uses-no-attempt": [
        ("fail", ("failed", 1, "RuntimeError", True)),
        ("outage", ("failed", 1, "deferred: RuntimeError: outage", True)),
        ("fail", ("failed", 2, "RuntimeError: boom", True)),
    ],
    "inline-done": [("inline-done", ("done", 1, None, False)), ("retry", ("done", 1, None, False))],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_transitions(store, case: str) -> None:
    delivery = make_delivery(1)
    assert store.claim(delivery).claimed
    assert store.counts() == {"received": 1, "done": 0, "failed": 0, "dead": 0}
    for step, want in CASES[case]:
        _step(store, delivery.delivery_id, step)
        (row,) = store.fetch()
        state, attempts, error, scheduled = want
        assert (row.state, row.attempts) == (state, attempts), step
        assert (row.last_error or "").startswith(error or "") and (row.last_error is None) == (
            error is None
        ), (step, row.last_error)
        assert (row.next_attempt_at is not None) == scheduled, step
        assert (row.processed_at is not None) == (state == "done"), step
        assert store.counts()[state] == 1


def _step(store, delivery_id: str, step: str) -> None:
    def handler(_d) -> None:
        if step in ("fail", "outage"):
            raise RuntimeError("outage" if step == "outage" else "boom")

    def defer(exc: BaseException) -> float | None:
        return 0.0 if str(exc) == "outage" else None

    options = {"max_attempts": 3, "backoff": lambda n: 0}
    if step == "inline-done":
        store.mark_done(delivery_id)
    elif step == "inline-fail":
        store.mark_failed(delivery_id, RuntimeError("boom"), **options)
    elif step == "retry":
        store.retry(None, store.fetch()[0].id)
    else:
        store.process_pending(None, handler, defer=defer, **options)


def test_the_backoff_is_scheduled_on_each_backends_clock(store) -> None:
    delivery = make_delivery(2)
    store.claim(delivery)
    assert store.mark_failed(delivery.delivery_id, RuntimeError("x"), backoff=lambda n: 120) == (
        "failed"
    )
    (row,) = store.fetch()
    waited = row.next_attempt_at - row.received_at
    assert dt.timedelta(seconds=119) <= waited <= dt.timedelta(seconds=150)
    # Not due: a run leaves it; claimed with ``defer`` is not due either.
    assert store.process_pending(None, lambda d: None).processed == 0
    store.claim(make_delivery(3), defer=120)
    assert store.process_pending(None, lambda d: None).processed == 0


def test_unknown_rows_and_bad_arguments_are_refused_alike(store) -> None:
    with pytest.raises(DeliveryStoreError, match="no delivery row"):
        store.mark_failed("nope", RuntimeError("x"))
    store.mark_done("nope")  # nothing to mark: no error, no row
    assert store.retry(None, 12345) is False
    with pytest.raises(ValueError, match="max_attempts"):
        store.process_pending(None, lambda d: None, max_attempts=0)
    assert store.counts() == {"received": 0, "done": 0, "failed": 0, "dead": 0}


def test_one_backoff_formula_for_every_caller() -> None:
    assert [default_backoff(n) for n in (0, 1, 2, 3, 7, 10**9)] == [60, 60, 120, 240, 3600, 3600]
    # The Odoo sync job's schedule (base 30 s, cap an hour) from the same function.
    sync_job = [min(3600, 30 * 2 ** min(max(0, n - 1), 20)) for n in range(40)]
    assert [exponential_backoff(n, base=30, cap=3600) for n in range(40)] == sync_job


def test_describe_error_is_bounded_and_redacted() -> None:
    text = describe_error(ValueError("token plane_api_" + "ab" * 16 + " " + "x" * 50), limit=40)
    assert text.startswith("ValueError: token plane_api_") and len(text) == 40
    assert "abab" not in text and text.endswith("…")
