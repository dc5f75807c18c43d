"""Fault injection: status storms, delays, resets, truncated and malformed bodies."""

from __future__ import annotations

import http.client
import json
import time

import pytest
from plane_connector.testing import PlaneEmulator
from plane_connector.testing.faults import parse_outage

from .conftest import Api, Receiver


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


# -- Plane down: the switch and scheduled outages -------------------------------------------------


def test_set_down_502_answers_like_the_proxy_then_recovers(api: Api, emu: PlaneEmulator) -> None:
    emu.set_down("502")
    reply = api.get("/api/v1/users/me/")
    assert reply.status == 502
    assert reply.header("Content-Type") == "text/html" and reply.header("Server") == "nginx"
    assert b"<title>502 Bad Gateway</title>" in reply.body
    # Every route and method, unknown ones included: the API behind the proxy is gone.
    assert api.post(f"{api.proj}/work-items/", {"name": "x"}).status == 502
    assert api.get("/api/v1/nope/").status == 502
    assert emu.faults.down_mode() == "502"
    emu.set_down(None)
    assert emu.faults.down_mode() is None
    assert api.get("/api/v1/users/me/").status == 200
    # Refused requests used no quota, and no work item was made while down.
    assert api.get("/api/v1/users/me/").header("X-RateLimit-Remaining") == "58"
    assert emu.work_items() == []
    assert emu.faults.down_hits == {"502": 3}
    ((mode, start, end),) = emu.faults.down_windows()
    assert mode == "502" and start < end


def test_set_down_reset_closes_every_connection_unanswered(api: Api, emu: PlaneEmulator) -> None:
    emu.set_down("reset")
    for _ in range(2):
        with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
            api.get("/api/v1/users/me/")
    emu.set_down("503")  # switching mode closes the reset period and opens a 503 one
    assert api.get("/api/v1/users/me/").status == 503
    emu.set_down(None)
    assert api.get("/api/v1/users/me/").status == 200
    assert [w[0] for w in emu.faults.down_windows()] == ["reset", "503"]
    # Requests made while down are recorded with what they got (0: no answer).
    assert [r.status for r in emu.requests] == [0, 0, 503, 200]


def test_down_comes_before_added_faults_and_keeps_them(api: Api, emu: PlaneEmulator) -> None:
    fault = emu.faults.add(kind="status", status=500, count=1)
    emu.set_down("504")
    assert api.get("/api/v1/users/me/").status == 504
    emu.set_down(None)
    assert fault.hits == 0
    assert api.get("/api/v1/users/me/").status == 500
    assert api.get("/api/v1/users/me/").status == 200


def test_scheduled_outage_502_then_reset_then_up(api: Api, emu: PlaneEmulator) -> None:
    window = emu.outage(("502", 0.6), ("reset", 0.6), delay=0.3)
    assert api.get("/api/v1/users/me/").status == 200  # not started yet

    def status() -> int | str:
        try:
            return api.get("/api/v1/users/me/").status
        except (ConnectionResetError, http.client.RemoteDisconnected):
            return "reset"

    seen: list[int | str] = []
    deadline = time.monotonic() + 10
    while not window.over and time.monotonic() < deadline:
        got = status()
        if not seen or seen[-1] != got:
            seen.append(got)
        time.sleep(0.02)
    assert window.wait(timeout=5)
    assert status() == 200
    # In order, each phase seen (200 before the start, maybe, if the first poll was early).
    assert [s for s in seen if s != 200] == [502, "reset"]
    assert window.hits["502"] >= 1 and window.hits["reset"] >= 1
    (w502, wreset) = window.windows()
    assert w502[0] == "502" and wreset[0] == "reset" and w502[2] == wreset[1]
    assert wreset[2] == window.ends_at == pytest.approx(window.started_at + 1.2)
    assert [w[0] for w in emu.faults.down_windows()] == ["502", "reset"]


def test_outage_cancelled_early_and_the_webhooks_keep_flowing(
    api: Api, emu: PlaneEmulator, receiver: Receiver
) -> None:
    emu.register_webhook(receiver.url)
    window = emu.outage(("502", 60))
    assert api.get("/api/v1/users/me/").status == 502
    # Plane's own side (a user in its web app, its webhook worker) is not behind the proxy.
    emu.create_work_item("made in Plane while the API is down")
    assert emu.wait_for_deliveries(1, timeout=10)[0].outcome == "delivered"
    emu.faults.cancel_outage(window)
    assert window.over and window.wait(timeout=1)
    assert api.get("/api/v1/users/me/").status == 200


def test_bad_down_arguments(emu: PlaneEmulator) -> None:
    with pytest.raises(ValueError, match="down mode"):
        emu.set_down("500")
    with pytest.raises(ValueError, match="phase"):
        emu.outage()
    with pytest.raises(ValueError, match="> 0"):
        emu.outage(("502", 0))
    with pytest.raises(ValueError, match="down mode"):
        emu.outage(("refused", 5))
    with pytest.raises(ValueError, match="delay"):
        emu.outage(("502", 1), delay=-1)
    assert parse_outage("30:502:60,reset:1.5") == (30.0, (("502", 60.0), ("reset", 1.5)))
    for spec in ("x:502:1", "1:502", "1:418:5", "-1:502:1", "1:502:0"):
        with pytest.raises(ValueError, match="outage"):
            parse_outage(spec)
