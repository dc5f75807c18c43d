"""The live mode's pacing, checked on the emulator: a new process must not collect 429s that
the previous run's requests (still in Plane's window) would cause."""

from __future__ import annotations

import plane_live
from plane_connector.ratebudget import LocalRateBudget
from plane_connector.testing import PlaneEmulator


def test_a_fresh_budget_counts_what_the_server_still_holds() -> None:
    # Plane's window is 60 requests a minute; here 10 per 0.6 s (time_scale 0.01).
    with PlaneEmulator(rate_limit=10, time_scale=0.01) as emu:
        earlier = plane_live.PacedHttp(emu.base_url, emu.api_key)  # "the run before"
        for _ in range(9):
            assert earlier.call("GET", "/api/v1/users/me/").status == 200
        plane_live._CAUGHT_UP.clear()
        fresh = plane_live.PacedHttp(emu.base_url, emu.api_key, budget=LocalRateBudget(),
                                     rate=10, window=0.6)
        for _ in range(6):
            assert fresh.call("GET", "/api/v1/users/me/").status == 200
        assert fresh.rate_limited == 0
        assert not [r for r in emu.requests if r.status == 429]
