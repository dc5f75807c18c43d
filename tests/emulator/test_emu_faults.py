"""Fault injection: status storms, delays, resets, truncated and malformed bodies."""

from __future__ import annotations

import http.client
import json

import pytest
from plane_connector.testing import PlaneEmulator

from .conftest import Api


def test_status_storm_then_recovery(api: Api, emu: PlaneEmulator) -> None:
    fault = emu.faults.add(route_regex=r"/users/me/$", kind="status", status=503, count=3)
    statuses = [api.get("/api/v1/users/me/").status for _ in range(4)]
    assert statuses == [503, 503, 503, 200]
    assert fault.hits == 3 and emu.faults.active == []
    # Injected failures happen in front of Plane: they used no quota.
    assert api.get("/api/v1/users/me/").header("X-RateLimit-Remaining") == "58"


def test_429_storm_looks_like_plane(api: Api, emu: PlaneEmulator) -> None:
    emu.faults.add(kind="status", status=429, count=2, retry_after=2)
    reply = api.get("/api/v1/users/me/")
    assert reply.status == 429 and reply.header("Retry-After") == "2"
    assert reply.json() == {"error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"}
    assert api.get("/api/v1/users/me/").status == 429
    assert api.get("/api/v1/users/me/").status == 200


def test_method_filter_and_unlimited_count(api: Api, emu: PlaneEmulator) -> None:
    fault = emu.faults.add(method="POST", kind="status", status=502, count=None)
    for _ in range(3):
        assert api.post(f"{api.proj}/work-items/", {"name": "x"}).status == 502
    assert api.get("/api/v1/users/me/").status == 200
    emu.faults.remove(fault)
    assert api.post(f"{api.proj}/work-items/", {"name": "x"}).status == 201


def test_reset_closes_without_answer(api: Api, emu: PlaneEmulator) -> None:
    emu.faults.add(kind="reset")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        api.get("/api/v1/users/me/")
    assert api.get("/api/v1/users/me/").status == 200


def test_truncated_body(api: Api, emu: PlaneEmulator) -> None:
    emu.seed_work_items(5)
    emu.faults.add(route_regex="work-items", kind="truncate")
    with pytest.raises(http.client.IncompleteRead):
        api.get(f"{api.proj}/work-items/")


def test_malformed_json(api: Api, emu: PlaneEmulator) -> None:
    emu.faults.add(kind="malformed")
    reply = api.get("/api/v1/users/me/")
    assert reply.status == 200 and int(reply.header("Content-Length")) == len(reply.body)
    with pytest.raises(json.JSONDecodeError):
        reply.json()


def test_delay_trips_a_client_timeout(emu: PlaneEmulator) -> None:
    emu.faults.add(kind="delay", seconds=1.0)
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=0.2)
    with pytest.raises(TimeoutError):
        conn.request("GET", "/api/v1/users/me/", headers={"X-API-Key": emu.api_key})
        conn.getresponse()
    conn.close()


def test_bad_fault_arguments(emu: PlaneEmulator) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        emu.faults.add(kind="explode")
    with pytest.raises(ValueError, match="count"):
        emu.faults.add(count=0)
    with pytest.raises(ValueError, match="status"):
        emu.faults.add(kind="status", status=42)
