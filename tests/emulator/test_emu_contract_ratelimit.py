"""Contract: the throttle reproduces Plane's 66-request hammer (rate-limit/*)."""

from __future__ import annotations

import math
import time
from pathlib import Path

from plane_connector.testing import PlaneEmulator

from .conftest import Api, parse_http_sample
from .test_emu_contract_errors import FORMATS


def test_hammer_66_requests(api: Api, emu: PlaneEmulator, samples_dir: Path) -> None:
    replies = []
    for _ in range(66):
        before = time.time()
        replies.append((before, api.get("/api/v1/users/me/"), time.time()))
    ok, limited = replies[:60], replies[60:]
    assert [r.status for _, r, _ in ok] == [200] * 60
    assert [int(r.header("X-RateLimit-Remaining")) for _, r, _ in ok] == list(range(59, -1, -1))
    for before, r, after in ok:
        # X-RateLimit-Reset is int(now + 60) at the moment the request was allowed.
        assert int(before + 60) <= int(r.header("X-RateLimit-Reset")) <= int(after + 60)
    body = (samples_dir / "rate-limit" / "429.body.json").read_bytes().rstrip(b"\n")
    recorded_429 = parse_http_sample(samples_dir / "rate-limit" / "429.headers.txt")
    first_allowed = ok[0][0]
    for _, r, after in limited:
        assert r.status == 429
        assert r.body == body
        assert r.names == recorded_429.names
        assert r.header("X-RateLimit-Remaining") is None
        # Seconds until the oldest request leaves the window, rounded up as DRF does.
        assert 1 <= int(r.header("Retry-After")) <= math.ceil(60 - (after - first_allowed) + 1)
    recorded_last = parse_http_sample(samples_dir / "rate-limit" / "200-last-allowed.headers.txt")
    assert ok[-1][1].names == recorded_last.names
    for name, value in recorded_last.headers:
        if name not in FORMATS and name.lower() not in ("date", "server"):
            assert ok[-1][1].header(name) == value
    # Requests answered 429 are not counted: the window holds exactly 60 entries.
    assert len([r for r in emu.requests if r.status == 200]) == 60


def test_buckets_are_per_key(emu: PlaneEmulator, api: Api) -> None:
    for _ in range(60):
        api.get("/api/v1/users/me/")
    assert api.get("/api/v1/users/me/").status == 429
    other = emu.add_api_key()
    assert api.get("/api/v1/users/me/", key=other).header("X-RateLimit-Remaining") == "59"


def test_service_tokens_get_300() -> None:
    with PlaneEmulator() as emu:
        key = emu.add_api_key(is_service=True)
        assert Api(emu).get("/api/v1/users/me/", key=key).header("X-RateLimit-Remaining") == "299"


def test_time_scaled_window_slides() -> None:
    # 5 requests per Plane minute; a Plane minute lasts 2 real seconds here.
    with PlaneEmulator(time_scale=2 / 60, rate_limit=5) as emu:
        api = Api(emu)
        assert [api.get("/api/v1/users/me/").status for _ in range(5)] == [200] * 5
        limited = api.get("/api/v1/users/me/")
        assert limited.status == 429
        wait = int(limited.header("Retry-After"))
        assert 1 <= wait <= 2  # honest in real seconds, rounded up
        time.sleep(wait)  # waiting what Retry-After says always frees a slot
        assert api.get("/api/v1/users/me/").status == 200


def test_configured_rate_limit() -> None:
    with PlaneEmulator(rate_limit=5) as emu:
        api = Api(emu)
        remaining = [api.get("/api/v1/users/me/").header("X-RateLimit-Remaining") for _ in range(5)]
        assert remaining == ["4", "3", "2", "1", "0"]
        assert api.get("/api/v1/users/me/").status == 429
