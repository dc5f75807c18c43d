"""The client against helper B's Plane emulator: pages, rate headers, 409s, Plane's error codes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from plane_connector import AuthError, ConflictError, PlaneClient

testing = pytest.importorskip("plane_connector.testing")


@pytest.fixture
def emu() -> Iterator[testing.PlaneEmulator]:
    # rate_limit 20 per Plane minute, a Plane minute lasting 0.6 s.
    emulator = testing.PlaneEmulator(rate_limit=20, time_scale=0.01, seed=7).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def items_path(emu: testing.PlaneEmulator) -> str:
    return f"workspaces/{emu.workspace_slug}/projects/{emu.project_id}/work-items/"


def test_pages_through_1050_items_without_a_429(emu: testing.PlaneEmulator) -> None:
    ids = emu.seed_work_items(1050)
    c = PlaneClient(emu.base_url, api_key=emu.api_key, requests_per_minute=20, rate_window=0.6)
    pager = c.paginate(items_path(emu), per_page=50)
    got = [item["id"] for item in pager]
    assert len(got) == 1050 == len(set(got))
    assert set(got) == set(ids)
    assert pager.pages == 21  # 21 requests against a budget of 20 per window
    assert c.stats["rate_limited"] == 0
    assert c.stats["throttle_waits"] >= 1
    assert c.rate_limit.remaining is not None and c.rate_limit.reset_at is not None


def test_resume_against_the_emulator(emu: testing.PlaneEmulator) -> None:
    emu.seed_work_items(250)
    c = PlaneClient(emu.base_url, api_key=emu.api_key, requests_per_minute=20, rate_window=0.6)
    pager = c.paginate(items_path(emu), per_page=100)
    first = [next(pager)["id"] for _ in range(150)]
    saved = pager.cursor
    rest = [i["id"] for i in c.paginate(items_path(emu), per_page=100, cursor=saved)]
    assert len(set(first) | set(rest)) == 250


def test_idempotent_create_and_conflict(emu: testing.PlaneEmulator) -> None:
    c = PlaneClient(emu.base_url, api_key=emu.api_key, requests_per_minute=20, rate_window=0.6)
    payload = {"name": "Invoice INV/42", "external_id": "account.move:42",
               "external_source": "odoo"}  # fmt: skip
    created = c.create_idempotent(items_path(emu), payload)
    again = c.create_idempotent(items_path(emu), payload)
    assert again["id"] == created["id"]
    with pytest.raises(ConflictError) as info:
        c.post(items_path(emu), json=payload)
    assert info.value.existing_id == created["id"]


def test_invalid_key_is_auth_error(emu: testing.PlaneEmulator) -> None:
    c = PlaneClient(emu.base_url, api_key="plane_api_" + "0" * 32)
    with pytest.raises(AuthError) as info:
        c.me()
    assert info.value.status == 403
    assert "0" * 32 not in str(info.value)
    assert "0" * 32 not in repr(c)


def test_me(emu: testing.PlaneEmulator) -> None:
    c = PlaneClient(emu.base_url + "/api/v1/", api_key=emu.api_key)
    assert c.me()["id"] == emu.user["id"]


def test_server_remaining_corrects_a_wrong_local_limit(emu: testing.PlaneEmulator) -> None:
    # The client believes in 1000 per window; Plane (the emulator) allows 20. Following
    # X-RateLimit-Remaining, the client waits when it reaches 0 instead of collecting 429s.
    c = PlaneClient(emu.base_url, api_key=emu.api_key, requests_per_minute=1000,
                    rate_window=0.6, max_wait=2.0)  # fmt: skip
    for _ in range(45):
        c.me()
    assert c.stats["rate_limited"] == 0
    assert c.stats["throttle_waits"] >= 2


def test_two_clients_on_one_key_in_one_process_share_the_limit(
    emu: testing.PlaneEmulator,
) -> None:
    a = PlaneClient(emu.base_url, api_key=emu.api_key, requests_per_minute=20, rate_window=0.6)
    b = PlaneClient(emu.base_url, api_key=emu.api_key, requests_per_minute=20, rate_window=0.6)
    for _ in range(25):
        a.me()
        b.me()
    assert a.stats["rate_limited"] == b.stats["rate_limited"] == 0


class RecordingBudget:
    """A LocalRateBudget that remembers every wait it granted."""

    def __init__(self) -> None:
        from plane_connector.ratebudget import LocalRateBudget

        self.inner = LocalRateBudget()
        self.granted: list[float] = []

    def reserve(self, key_id: str, limit: int, window: float) -> float:
        wait = self.inner.reserve(key_id, limit, window)
        self.granted.append(wait)
        return wait


def test_with_a_shared_budget_remaining_zero_adds_no_wait_of_its_own(
    emu: testing.PlaneEmulator,
) -> None:
    # The budget counts every process, so the server's `Remaining: 0` at the end of each window is
    # the budget working as planned; the client must wait what the budget says and no more (it
    # used to block a whole extra window every time the server reached 0).
    budget = RecordingBudget()
    c = PlaneClient(emu.base_url, api_key=emu.api_key, requests_per_minute=20, rate_window=0.6,
                    rate_budget=budget)  # fmt: skip
    for _ in range(70):  # 3.5 windows of the server's 20 per 0.6 s
        c.me()
        time.sleep(0.02)  # spread out, as workers' requests are: Remaining hits 0 late
    assert c.stats["rate_limited"] == 0
    assert len(budget.granted) == 70
    assert c.rate_limit.remaining is not None
    # Every wait the client made is one the budget granted (sleep overshoot aside).
    assert c.stats["throttle_wait_seconds"] <= sum(budget.granted) + 0.01 * 70
