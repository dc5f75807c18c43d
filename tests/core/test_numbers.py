"""Every number that crosses from Python into the Rust core is checked at the boundary.

A value a `Duration` cannot hold (1e20 s, 1e300 s, NaN, inf) used to panic inside the core, and
pyo3's `PanicException` derives from `BaseException`: it escaped the `except Exception` of an
Odoo cron. Now such values are a `ConfigError` when given, and clamped when they come from a
server or a hook. Each case is run in both clients; any other exception type fails the test.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any

import pytest
from core_loopback import API_KEY, LoopbackServer, Reply
from plane_connector import AsyncPlaneClient, ConfigError, PlaneClient, PlaneError

_keys = itertools.count()

# Extreme and non-finite values, wrong types, and the edges of the accepted ranges.
VALUES: list[Any] = [
    math.nan, math.inf, -math.inf, -1, -1.0, -1e-300, 0, 0.0, 1e-300, 5e-324, 0.5, 1, 3,
    100, 1000, 1001, 3600, 86_400, 86_400.0001, 1_000_000, 1_000_001, 1e20, 1e300,
    1.7976931348623157e308, 2**31, 2**32, 2**63, 2**64, 10**40, -(10**40), 10**400,
    True, False, "3", b"3", None, [], 1 + 2j,
]  # fmt: skip

# Accepted ranges, as documented in docs/readme/core.md.
SECONDS = {"timeout": (0, False), "rate_window": (0, False), "max_wait": (0, True),
           "backoff_base": (0, True)}  # fmt: skip
CEILING = {"timeout": 86_400, "rate_window": 86_400, "max_wait": 86_400, "backoff_base": 3_600}
COUNTS = {"requests_per_minute": (1, 1_000_000), "max_retries": (0, 100)}


def accepted(name: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if name in COUNTS:
        lo, hi = COUNTS[name]
        return isinstance(value, int) and lo <= value <= hi
    lo, zero_ok = SECONDS[name]
    above = value >= lo if zero_ok else value > lo
    # NaN compares false; 10**400 is compared as an int (it fits no float).
    return above and value <= CEILING[name]


def make(cls: type, url: str, **kw: Any) -> Any:
    return cls(url, api_key=f"{API_KEY}{next(_keys):06d}", **kw)


def outcome(call: Any) -> str:
    """'ok' or the exception's class name; a BaseException such as PanicException fails."""
    try:
        call()
    except ConfigError:
        return "ConfigError"
    except BaseException as exc:  # noqa: BLE001 - the point: nothing else may escape
        pytest.fail(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
    return "ok"


@pytest.mark.parametrize("cls", [PlaneClient, AsyncPlaneClient])
@pytest.mark.parametrize("name", [*SECONDS, *COUNTS])
def test_every_client_number_is_checked(cls: type, name: str, server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={})
    for value in VALUES:
        built: list[Any] = []
        got = outcome(lambda v=value, b=built: b.append(make(cls, server.url, **{name: v})))
        assert got == ("ok" if accepted(name, value) else "ConfigError"), (name, value)
        if built and name != "timeout":
            # An accepted value is usable: one request goes through (timeout is exercised
            # below, since a tiny one times out by design).
            _call(built[0], lambda c: c.me())


def _call(client: Any, op: Any) -> Any:
    if isinstance(client, AsyncPlaneClient):

        async def main() -> Any:
            return await op(client)

        return asyncio.run(main())
    return op(client)


@pytest.mark.parametrize("cls", [PlaneClient, AsyncPlaneClient])
def test_tiny_timeouts_time_out_cleanly(cls: type, server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={}, delay=0.2)
    for value in [1e-300, 5e-324, 1e-9]:
        client = make(cls, server.url, timeout=value, max_retries=0)
        with pytest.raises(PlaneError):
            _call(client, lambda c: c.me())


@pytest.mark.parametrize("cls", [PlaneClient, AsyncPlaneClient])
def test_per_page_is_checked(cls: type, server: LoopbackServer) -> None:
    client = make(cls, server.url)
    for value in VALUES:
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1000
        got = outcome(lambda v=value: client.paginate("x", per_page=v))
        assert got == ("ok" if ok else "ConfigError"), value
    assert server.requests == []


@pytest.mark.parametrize("cls", [PlaneClient, AsyncPlaneClient])
@pytest.mark.parametrize(
    ("answer", "want"),
    [
        (math.nan, "ConfigError"),
        (math.inf, "ok"),  # clamped to max_wait
        (1e300, "ok"),
        (10**400, "ConfigError"),  # not a float at all
        (-1, "ok"),  # no wait
        (-math.inf, "ok"),
        ("soon", "ConfigError"),
        (None, "ConfigError"),
    ],
)
def test_rate_budget_answers_are_checked(
    cls: type, answer: Any, want: str, server: LoopbackServer
) -> None:
    server.handler = lambda s: Reply(json={})

    class Budget:
        def reserve(self, key_id: str, limit: int, window: float) -> Any:
            return answer

    client = make(cls, server.url, rate_budget=Budget(), max_wait=0.05)
    assert outcome(lambda: _call(client, lambda c: c.me())) == want
    assert len(server.requests) == (1 if want == "ok" else 0)


@pytest.mark.parametrize("cls", [PlaneClient, AsyncPlaneClient])
@pytest.mark.parametrize("header", ["1e300", "1e20", "inf", "-inf", "nan", "-1e300", "9" * 400])
def test_retry_after_from_the_server_is_clamped(
    cls: type, header: str, server: LoopbackServer
) -> None:
    limited = Reply(429, {"error_message": "RATE_LIMIT_EXCEEDED"}, headers={"Retry-After": header})
    answers = [limited, Reply(json={"ok": 1})]
    server.handler = lambda s: answers.pop(0)
    client = make(cls, server.url, max_wait=0.05, backoff_base=0.0)
    assert _call(client, lambda c: c.me()) == {"ok": 1}
    assert len(server.requests) == 2
