"""PlaneClient against a scripted loopback server: auth, errors, retries, throttle, creates."""

from __future__ import annotations

import builtins
import hashlib
import itertools
import json
import pickle
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from core_loopback import API_KEY, LoopbackServer, Reply, Seen
from plane_connector import (
    AuthError,
    ConfigError,
    ConflictError,
    HTTPError,
    NotFoundError,
    PlaneClient,
    RateLimitError,
    TimeoutError,
    TransportError,
)
from plane_connector._errors import MAX_RETRY_AFTER

_keys = itertools.count()


def client(server: LoopbackServer, **kw: Any) -> PlaneClient:
    # One key per client: the limiter is shared process-wide per key, and 60 requests a minute
    # across the whole module would make later tests wait for the budget.
    kw.setdefault("api_key", f"{API_KEY}{next(_keys):06d}")
    kw.setdefault("backoff_base", 0.01)
    return PlaneClient(server.url, **kw)


def recorded(samples_dir: Path, name: str) -> tuple[int, str]:
    """Status and body of a raw recorded Plane response in errors/."""
    raw = (samples_dir / "errors" / name).read_text()
    head, _, body = raw.partition("\n\n")
    status = int(head.splitlines()[0].split()[1])
    return status, body.strip()


def test_request_basics(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={"id": "u1", "echo": s.query}, headers={})
    c = client(server, api_key=API_KEY)
    got = c.get("workspaces/ws/members", params={"fields": ["id", "email"], "x": True, "n": None})
    assert got["id"] == "u1"
    seen = server.requests[-1]
    assert seen.path == "/api/v1/workspaces/ws/members/"
    assert seen.query == {"fields": "id,email", "x": "true"}
    assert seen.headers["x-api-key"] == API_KEY
    assert "authorization" not in seen.headers
    assert c.me()["id"] == "u1"
    assert server.requests[-1].path == "/api/v1/users/me/"


def test_json_body_and_204(server: LoopbackServer) -> None:
    def handle(s: Seen) -> Reply:
        if s.method == "DELETE":
            return Reply(204, body=b"")
        return Reply(201, json={"got": s.json()})

    server.handler = handle
    c = client(server)
    payload = {"name": "Ünïcode ✓", "n": 3, "f": 1.5, "tags": ["a", None], "ok": False}
    assert c.post("p/work-items", json=payload) == {"got": payload}
    assert c.patch("p/work-items/1", json={"name": "x"}) == {"got": {"name": "x"}}
    assert c.delete("p/work-items/1") is None
    assert [r.method for r in server.requests] == ["POST", "PATCH", "DELETE"]


def test_bearer_token(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={})
    PlaneClient(server.url, access_token="pln_tok_abcdefgh12345678").me()
    assert server.requests[-1].headers["authorization"] == "Bearer pln_tok_abcdefgh12345678"
    assert "x-api-key" not in server.requests[-1].headers


def test_both_credentials_is_config_error() -> None:
    with pytest.raises(ConfigError):
        PlaneClient(api_key="a", access_token="b")


@pytest.mark.parametrize(
    ("sample", "exc", "text"),
    [
        ("no_key.txt", AuthError, "Authentication credentials were not provided."),
        ("bad_key.txt", AuthError, "Given API token is not valid"),
        ("wrong_slug.txt", AuthError, "You do not have permission"),
        ("missing_item.txt", NotFoundError, "does not exist"),
        ("validation.txt", HTTPError, ""),
        ("method_not_allowed.txt", HTTPError, "not allowed"),
        ("bad_json.txt", HTTPError, "JSON parse error"),
        ("create_duplicate_external_id_409.txt", ConflictError, "already exists"),
    ],
)
def test_recorded_plane_errors(
    server: LoopbackServer, samples_dir: Path, sample: str, exc: type, text: str
) -> None:
    status, body = recorded(samples_dir, sample)
    server.handler = lambda s: Reply(status, body=body.encode())
    with pytest.raises(exc) as info:
        client(server).get("x")
    err = info.value
    assert err.status == status
    assert text in err.message
    assert str(status) in str(err)
    assert err.body == body[:500] or err.body.startswith(body[:400])
    if exc is ConflictError:
        assert err.existing_id


def test_error_shapes_in_message(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(400, {"name": ["This field is required."]})
    with pytest.raises(HTTPError, match="name: This field is required."):
        client(server).post("p/work-items", json={})
    server.handler = lambda s: Reply(500, body=b"<html><body>Server Error</body></html>")
    with pytest.raises(HTTPError) as info:
        client(server).post("x", json={})
    assert info.value.status == 500
    assert "<html" not in info.value.message


def test_malformed_json_is_a_clear_error(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(200, body=b'{"results": [1, 2', headers={})
    with pytest.raises(HTTPError, match="not valid JSON") as info:
        client(server).get("x")
    assert info.value.status == 200
    assert '{"results"' in info.value.body


def rate_limited(retry_after: str) -> Reply:
    return Reply(
        429,
        {"error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"},
        headers={"Retry-After": retry_after},
    )


def test_429_three_retries_then_rate_limit_error(server: LoopbackServer) -> None:
    server.handler = lambda s: rate_limited("0")
    c = client(server)
    with pytest.raises(RateLimitError) as info:
        c.get("x")
    assert len(server.requests) == 4  # the request and exactly 3 retries
    assert info.value.status == 429
    assert info.value.retry_after == 0
    assert "RATE_LIMIT_EXCEEDED" in info.value.message
    assert c.stats["rate_limited"] == 4
    assert c.stats["retries"] == 3


def test_429_then_success(server: LoopbackServer) -> None:
    answers = [rate_limited("0"), rate_limited("0"), Reply(json={"ok": 1})]
    server.handler = lambda s: answers.pop(0)
    assert client(server).post("x", json={}) == {"ok": 1}  # a 429 had no side effect: POST too
    assert len(server.requests) == 3


def test_retry_after_is_honoured(server: LoopbackServer) -> None:
    answers = [rate_limited("1"), Reply(json={"ok": 1})]
    server.handler = lambda s: answers.pop(0)
    client(server).get("x")
    first, second = server.requests
    assert second.at - first.at >= 1.0


@pytest.mark.parametrize("header", ["31536000", "-5", "soon", "NaN", "1e308"])
def test_absurd_retry_after_is_bounded(server: LoopbackServer, header: str) -> None:
    server.handler = lambda s: rate_limited(header)
    c = client(server, max_wait=0.2)
    started = time.monotonic()
    with pytest.raises(RateLimitError):
        c.get("x")
    # 3 waits of at most max_wait (+ jitter bounded by it): far from a year.
    assert time.monotonic() - started < 10
    assert len(server.requests) == 4


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("300000000000", MAX_RETRY_AFTER),
        ("1e400", MAX_RETRY_AFTER),
        ("inf", MAX_RETRY_AFTER),
        ("nan", None),
        ("-5", None),
        ("3599.5", 3599.5),
    ],
)
def test_absurd_retry_after_reaches_python_clamped(
    server: LoopbackServer, header: str, expected: float | None
) -> None:
    # 3e11 s used to arrive as is: an error handler's `now + timedelta(seconds=...)` then raised
    # OverflowError, and the job stayed "running" until its lease expired, again and again.
    server.handler = lambda s: rate_limited(header)
    c = client(server, max_retries=1, max_wait=0.05)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        c.get("x")
    assert time.monotonic() - started < 5  # one wait of at most max_wait, not the header's
    assert len(server.requests) == 2
    retry_after = info.value.retry_after
    assert retry_after == expected
    if retry_after is not None:
        assert isinstance(retry_after, float)
        datetime.now(timezone.utc) + timedelta(seconds=retry_after)  # no OverflowError


@pytest.mark.parametrize(
    "passed", [3e11, float("inf"), 1e400, float("nan"), -1.0, "9" * 400, "soon", True, object()]
)
def test_rate_limit_error_clamps_whatever_it_is_given(passed: Any) -> None:
    err = RateLimitError("429", status=429, retry_after=passed)
    assert err.retry_after is None or (
        isinstance(err.retry_after, float) and 0 <= err.retry_after <= MAX_RETRY_AFTER
    )
    assert pickle.loads(pickle.dumps(err)).retry_after == err.retry_after  # noqa: S301 - ours


def test_absurd_rate_limit_reset_is_bounded(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={}, headers={"X-RateLimit-Reset": "99999999999999"})
    c = client(server)
    c.get("x")
    reset_at = c.rate_limit.reset_at
    assert reset_at is not None and reset_at <= time.time() + MAX_RETRY_AFTER + 5
    datetime.fromtimestamp(reset_at, timezone.utc)  # a real instant


@pytest.mark.parametrize(
    ("remaining", "reset"), [("-1", "garbage"), ("0", "99999999999999"), ("x", "-5")]
)
def test_absurd_rate_headers_are_bounded(
    server: LoopbackServer, remaining: str, reset: str
) -> None:
    headers = {"X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset}
    server.handler = lambda s: Reply(json={}, headers=headers)
    c = client(server, max_wait=0.3)
    started = time.monotonic()
    for _ in range(3):
        c.get("x")
    assert time.monotonic() - started < 10
    assert len(server.requests) == 3


def test_5xx_retried_for_get_not_for_post(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(503, {"error": "busy"})
    with pytest.raises(HTTPError) as info:
        client(server).get("x")
    assert info.value.status == 503
    assert len(server.requests) == 4
    server.requests.clear()
    with pytest.raises(HTTPError):
        client(server).post("x", json={"name": "n"})
    assert len(server.requests) == 1  # may have been applied: never resent
    server.requests.clear()
    with pytest.raises(HTTPError):
        client(server).delete("x")
    assert len(server.requests) == 4  # DELETE is idempotent
    server.requests.clear()
    server.handler = lambda s: Reply(500, {"error": "Something went wrong please try again later"})
    with pytest.raises(HTTPError):
        client(server).get("x")
    assert len(server.requests) == 1  # 500 is a bug, not an outage


def test_5xx_then_success(server: LoopbackServer) -> None:
    answers = [Reply(502, body=b"bad gateway"), Reply(504), Reply(json={"ok": True})]
    server.handler = lambda s: answers.pop(0)
    c = client(server)
    assert c.get("x") == {"ok": True}
    assert c.stats["retries"] == 2


def test_timeout(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={}, delay=1.0)
    c = client(server, timeout=0.2, max_retries=1)
    with pytest.raises(TimeoutError) as info:
        c.get("x")
    assert isinstance(info.value, builtins.TimeoutError)
    assert isinstance(info.value, TransportError)
    assert len(server.requests) == 2  # GET: one retry
    server.requests.clear()
    with pytest.raises(TimeoutError):
        c.post("x", json={})
    assert len(server.requests) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_transport_error() -> None:
    c = PlaneClient(f"http://127.0.0.1:{free_port()}", api_key=API_KEY, backoff_base=0.01)
    with pytest.raises(TransportError, match="could not connect") as info:
        c.post("x", json={})  # never reached the server: safe to retry even a POST
    assert not isinstance(info.value, builtins.TimeoutError)
    assert c.stats["transport_errors"] == 4


def test_throttle_never_exceeds_the_window(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={})
    c = client(server, api_key="plane_api_throttle_" + "1" * 20, requests_per_minute=5,
               rate_window=0.5)
    for _ in range(12):
        c.get("x")
    times = [r.at for r in server.requests]
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u - t < 0.5) <= 5
    assert c.stats["throttle_waits"] >= 2


def test_clients_with_the_same_key_share_the_window(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={})
    key = "plane_api_shared_" + "2" * 20
    a = client(server, api_key=key, requests_per_minute=3, rate_window=0.5)
    b = client(server, api_key=key, requests_per_minute=3, rate_window=0.5)
    for _ in range(3):
        a.get("x")
    b.get("x")
    assert b.stats["throttle_waits"] == 1
    assert server.requests[3].at - server.requests[0].at >= 0.5


def test_remaining_zero_waits_instead_of_429(server: LoopbackServer) -> None:
    reset = str(int(time.time()) + 60)
    answers = [
        Reply(json={}, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}),
        Reply(json={}, headers={"X-RateLimit-Remaining": "59", "X-RateLimit-Reset": reset}),
    ]
    server.handler = lambda s: answers.pop(0)
    c = client(server, api_key="plane_api_remaining_" + "3" * 20, rate_window=0.6)
    c.get("x")
    assert c.rate_limit.remaining == 0
    assert c.rate_limit.reset_at == float(reset)
    c.get("x")
    assert server.requests[1].at - server.requests[0].at >= 0.5
    assert c.rate_limit.remaining == 59
    assert c.rate_limit.limit == 60


def test_rate_budget_replaces_the_local_window(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={})
    calls: list[tuple[str, int, float]] = []

    class Budget:
        def reserve(self, key_id: str, limit: int, window: float) -> float:
            calls.append((key_id, limit, window))
            return 0.0

    c = client(
        server, api_key=API_KEY, rate_budget=Budget(), requests_per_minute=2, rate_window=30.0
    )
    for _ in range(4):
        c.get("x")  # the local window (2 per 30 s) would have blocked here
    assert calls == [(hashlib.sha256(API_KEY.encode()).hexdigest(), 2, 30.0)] * 4
    assert c.key_id == calls[0][0]


def test_rate_budget_errors_propagate(server: LoopbackServer) -> None:
    class Broken:
        def reserve(self, key_id: str, limit: int, window: float) -> float:
            raise RuntimeError("database is down")

    with pytest.raises(RuntimeError, match="database is down"):
        client(server, rate_budget=Broken()).get("x")
    assert server.requests == []


def test_token_provider_refreshes_once(server: LoopbackServer) -> None:
    tokens = iter(["pln_old_token_0001", "pln_new_token_0002"])
    asked: list[bool] = []

    def provider(force: bool) -> str:
        asked.append(force)
        return next(tokens) if (force or not asked[:-1]) else "pln_old_token_0001"

    def handle(s: Seen) -> Reply:
        if s.headers.get("authorization") == "Bearer pln_new_token_0002":
            return Reply(json={"id": "me"})
        return Reply(401, {"detail": "Authentication credentials were not provided."})

    server.handler = handle
    c = PlaneClient(server.url, token_provider=provider)
    assert c.me() == {"id": "me"}
    assert asked == [False, True]


def test_token_provider_second_401_says_reauthorize(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(401, {"detail": "Token expired"})
    c = PlaneClient(
        server.url, token_provider=lambda force: "pln_tok_" + ("n" if force else "o") * 9
    )
    with pytest.raises(AuthError, match="re-authorize"):
        c.me()
    assert len(server.requests) == 2


def test_create_idempotent_returns_existing(server: LoopbackServer) -> None:
    existing = {"id": "abc", "name": "Existing", "external_id": "SO-1"}

    def handle(s: Seen) -> Reply:
        if s.method == "POST":
            return Reply(409, {"error": "Issue with the same external id already exists",
                               "id": "abc"})
        assert s.path.endswith("/work-items/abc/")
        return Reply(json=existing)

    server.handler = handle
    c = client(server)
    payload = {"name": "n", "external_id": "SO-1", "external_source": "odoo"}
    assert c.create_idempotent("workspaces/ws/projects/p/work-items/", payload) == existing
    assert [r.method for r in server.requests] == ["POST", "GET"]
    with pytest.raises(ConflictError) as info:
        c.post("workspaces/ws/projects/p/work-items/", json=payload)
    assert info.value.existing_id == "abc"


def test_create_idempotent_retries_post_on_5xx(server: LoopbackServer) -> None:
    answers = [Reply(503), Reply(201, {"id": "new"})]
    server.handler = lambda s: answers.pop(0)
    payload = {"name": "n", "external_id": "SO-2", "external_source": "odoo"}
    assert client(server).create_idempotent("p/work-items", payload) == {"id": "new"}
    assert [r.json() for r in server.requests] == [payload, payload]


def test_create_idempotent_needs_external_ids(server: LoopbackServer) -> None:
    with pytest.raises(ConfigError, match="external_id"):
        client(server).create_idempotent("p/work-items", {"name": "n"})
    assert server.requests == []


def test_oauth_request_goes_to_the_root_without_the_api_key(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={"access_token": "pln_x", "expires_in": 86400})
    c = client(server)
    got = c.oauth_request(
        "POST", "/auth/o/token/", form={"grant_type": "client_credentials"},
        basic_auth=("cid", "csecret"),
    )
    assert got["expires_in"] == 86400
    seen = server.requests[-1]
    assert seen.path == "/auth/o/token/"
    assert seen.body == b"grant_type=client_credentials"
    assert seen.headers["authorization"] == "Basic Y2lkOmNzZWNyZXQ="
    assert "x-api-key" not in seen.headers
    c.oauth_request("GET", "auth/o/app-installation", params={"id": "i1"}, bearer="pln_bot_t")
    assert server.requests[-1].headers["authorization"] == "Bearer pln_bot_t"
    assert server.requests[-1].query == {"id": "i1"}


def test_bad_arguments_are_type_errors(server: LoopbackServer) -> None:
    c = client(server)
    with pytest.raises(TypeError):
        c.get("x", params={"a": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        c.post("x", json={"a": object()})
    with pytest.raises(ValueError):
        c.post("x", json={"a": float("nan")})
    assert server.requests == []


def test_json_roundtrip_types(server: LoopbackServer) -> None:
    doc = {"big": 2**63 + 5, "neg": -(2**62), "f": 0.1, "nested": {"l": [[], {}]}, "u": "é"}
    server.handler = lambda s: Reply(body=json.dumps(doc).encode())
    assert client(server).get("x") == doc


def test_oversized_body_is_refused_not_retried(server: LoopbackServer) -> None:
    row = b'"' + b"x" * 62 + b'",'
    blob = b"[" + row * ((65 << 20) // len(row)) + b'""]'
    server.handler = lambda s: Reply(body=blob)
    with pytest.raises(HTTPError, match="exceeds 64 MiB"):
        client(server).get("x")
    assert len(server.requests) == 1


def test_credential_with_a_newline_is_a_config_error(server: LoopbackServer) -> None:
    with pytest.raises(ConfigError, match="not allowed in an HTTP header") as info:
        client(server, api_key="plane_api_abc\ndef0123456789").get("x")
    assert "abc" not in str(info.value)
    assert server.requests == []
