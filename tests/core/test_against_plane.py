"""The client against a Plane: the emulator, and with PLANE_LIVE_* set also a real Plane.

Pages, rate headers, 409s and Plane's error codes. The tests that take ``plane`` run against
both; the ones that take ``emu`` need the emulator's scaled clock or its internals.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator

import pytest
from plane_connector import AuthError, ConflictError, PlaneClient, testing
from plane_live import ClientTarget, LiveConfig

LIVE = LiveConfig.from_env()
#: A second live key, for the test that spends a whole minute's quota on purpose.
SECOND_KEY = (os.environ.get("PLANE_LIVE_API_KEY_2") or "").strip() or None


@pytest.fixture
def emu() -> Iterator[testing.PlaneEmulator]:
    # rate_limit 20 per Plane minute, a Plane minute lasting 0.6 s.
    emulator = testing.PlaneEmulator(rate_limit=20, time_scale=0.01, seed=7).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def live_plane() -> Iterator[ClientTarget | None]:
    if LIVE is None:
        yield None
        return
    target = ClientTarget.live(LIVE, "Client suite")
    try:
        yield target
    finally:
        target.drop()


@pytest.fixture(params=["emulator", *(["live"] if LIVE else [])])
def plane(
    request: pytest.FixtureRequest, live_plane: ClientTarget | None
) -> Iterator[ClientTarget]:
    if request.param == "live":
        if live_plane is None:
            pytest.skip("live mode is off (PLANE_LIVE_BASE_URL)")
        yield live_plane
        return
    emulator = testing.PlaneEmulator(rate_limit=20, time_scale=0.01, seed=7).start()
    try:
        yield ClientTarget("emulator", emulator.base_url, emulator.api_key,
                           emulator.workspace_slug, emulator.project_id, rate=20, window=0.6,
                           budget=None, emulator=emulator)
    finally:
        emulator.stop()


def test_pages_through_every_item_without_a_429(plane: ClientTarget) -> None:
    # The emulator: 1,050 items at 20 requests per window. Live: 24 items (each one is a
    # request at Plane's 60 a minute) in pages of 5.
    total, per_page = (1050, 50) if plane.kind == "emulator" else (24, 5)
    ids = plane.ensure_items(total)
    c = plane.client()
    pager = c.paginate(plane.items_path, per_page=per_page)
    got = [item["id"] for item in pager]
    assert len(got) == total == len(set(got))
    assert set(got) == set(ids)
    assert pager.pages == math.ceil(total / per_page)
    assert c.stats["rate_limited"] == 0
    if plane.kind == "emulator":
        assert c.stats["throttle_waits"] >= 1  # 21 requests against a budget of 20 per window
    assert c.rate_limit.remaining is not None and c.rate_limit.reset_at is not None


def test_resume_from_a_saved_cursor(plane: ClientTarget) -> None:
    total, per_page, first_n = (250, 100, 150) if plane.kind == "emulator" else (24, 10, 15)
    plane.ensure_items(total)
    c = plane.client()
    pager = c.paginate(plane.items_path, per_page=per_page)
    first = [next(pager)["id"] for _ in range(first_n)]
    saved = pager.cursor
    rest = [i["id"] for i in c.paginate(plane.items_path, per_page=per_page, cursor=saved)]
    assert len(set(first) | set(rest)) == total


def test_idempotent_create_and_conflict(plane: ClientTarget) -> None:
    c = plane.client()
    payload = {"name": "Invoice INV/42", "external_id": f"account.move:42:{time.time()}",
               "external_source": "odoo"}  # fmt: skip
    created = c.create_idempotent(plane.items_path, payload)
    try:
        again = c.create_idempotent(plane.items_path, payload)
        assert again["id"] == created["id"]
        with pytest.raises(ConflictError) as info:
            c.post(plane.items_path, json=payload)
        assert info.value.existing_id == created["id"]
    finally:
        c.delete(f"{plane.items_path}{created['id']}/")


def test_invalid_key_is_auth_error(plane: ClientTarget) -> None:
    c = PlaneClient(plane.base_url, api_key="plane_api_" + "0" * 32)
    with pytest.raises(AuthError) as info:
        c.me()
    assert info.value.status == 403
    assert "0" * 32 not in str(info.value)
    assert "0" * 32 not in repr(c)


def test_me(plane: ClientTarget) -> None:
    c = PlaneClient(plane.base_url + "/api/v1/", api_key=plane.api_key,
                    rate_budget=plane.budget, requests_per_minute=plane.rate,
                    rate_window=plane.window)
    me = c.me()
    if plane.emulator is not None:
        assert me["id"] == plane.emulator.user["id"]
    assert set(me) >= {"id", "email", "display_name"}


@pytest.mark.skipif(LIVE is None or SECOND_KEY is None, reason="needs live mode and "
                    "PLANE_LIVE_API_KEY_2 (a key of its own: this test spends its whole minute)")
def test_live_server_remaining_corrects_a_wrong_local_limit() -> None:
    """Real Plane: a client that believes in 1,000 a minute follows X-RateLimit-Remaining and
    waits at 0 instead of collecting 429s (on a key nobody else in this run uses)."""
    assert LIVE is not None
    c = PlaneClient(LIVE.base_url, api_key=SECOND_KEY, requests_per_minute=1000,
                    rate_window=60.0, max_wait=90.0)
    for _ in range(65):
        c.me()
    assert c.stats["rate_limited"] == 0
    assert c.stats["throttle_waits"] >= 1


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
