"""Fault injection for the Plane emulator: per route or global, counted or permanent."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

HTTP_KINDS = ("status", "delay", "reset", "truncate", "malformed")
WEBHOOK_KINDS = ("webhook_duplicate", "webhook_reorder")
LISTING_KINDS = ("page_repeat",)
KINDS = HTTP_KINDS + WEBHOOK_KINDS + LISTING_KINDS
#: How Plane can be down: its reverse proxy answering 502/503/504 (the API behind it gone), or
#: the connection reset without an answer.
DOWN_MODES = ("502", "503", "504", "reset")


class _Down:
    """Marker body: the proxy's own error page for a down Plane (see ``_http.proxy_error``)."""

    def __repr__(self) -> str:
        return "DOWN"


DOWN: Any = _Down()


@dataclass
class Fault:
    """One injected fault. ``count`` None means until removed."""

    kind: str
    route_regex: str | None = None
    method: str | None = None
    status: int = 503
    count: int | None = 1
    seconds: float = 0.0
    retry_after: int = 1
    body: Any = None
    hits: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self._pattern is None or self._pattern.search(path) is not None


@dataclass
class Outage:
    """A scheduled down window: ``phases`` of (mode, seconds) back to back from ``started_at``
    (``time.time()``), then Plane is up again. ``hits`` counts the requests it refused, by mode."""

    phases: tuple[tuple[str, float], ...]
    started_at: float
    hits: dict[str, int] = field(default_factory=dict)
    cancelled_at: float | None = None

    @property
    def ends_at(self) -> float:
        """When Plane answers again (epoch seconds); earlier if the window was cancelled."""
        planned = self.started_at
        for _, seconds in self.phases:  # added up as mode_at and windows do, to the last bit
            planned += seconds
        return planned if self.cancelled_at is None else min(planned, self.cancelled_at)

    def mode_at(self, now: float) -> str | None:
        if now < self.started_at or now >= self.ends_at:
            return None
        edge = self.started_at
        for mode, seconds in self.phases:
            edge += seconds
            if now < edge:
                return mode
        return None

    def windows(self) -> list[tuple[str, float, float]]:
        """(mode, start, end) of each phase, in epoch seconds, as it happened or will."""
        out, edge = [], self.started_at
        for mode, seconds in self.phases:
            end = min(edge + seconds, self.ends_at)
            if end > edge:
                out.append((mode, edge, end))
            edge += seconds
        return out

    @property
    def over(self) -> bool:
        return time.time() >= self.ends_at

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the window is over (True), or ``timeout`` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.over:
            left = self.ends_at - time.time()
            if deadline is not None:
                left = min(left, deadline - time.monotonic())
                if left <= 0:
                    return self.over
            time.sleep(min(max(left, 0.001), 0.25))
        return True


def _check_mode(mode: str) -> str:
    mode = str(mode)
    if mode not in DOWN_MODES:
        raise ValueError(f"unknown down mode {mode!r}; expected one of {', '.join(DOWN_MODES)}")
    return mode


def parse_outage(spec: str) -> tuple[float, tuple[tuple[str, float], ...]]:
    """``"30:502:60,reset:60"`` -> (30.0, (("502", 60.0), ("reset", 60.0))): start after 30 s,
    answer 502 for 60 s, then reset connections for 60 s (the ``--outage`` option)."""
    head, _, rest = spec.partition(":")
    try:
        delay = float(head)
        phases = []
        for part in rest.split(","):
            mode, _, seconds = part.strip().partition(":")
            phases.append((_check_mode(mode), float(seconds)))
    except ValueError as exc:
        raise ValueError(
            f"outage {spec!r}: expected AFTER:MODE:SECONDS[,MODE:SECONDS...] ({exc})"
        ) from None
    if delay < 0 or any(seconds <= 0 for _, seconds in phases):
        raise ValueError(f"outage {spec!r}: AFTER must be >= 0 and each phase's SECONDS > 0")
    return delay, tuple(phases)


class FaultInjector:
    """``emu.faults``: add faults, and the emulator consumes them as requests arrive.

    HTTP kinds act on API/OAuth requests before they reach Plane's logic (like a proxy would), so
    they use no rate-limit quota: ``status`` (a 5xx, or a 429 storm with Plane's body and
    ``Retry-After``), ``delay`` (``seconds`` real seconds before answering), ``reset`` (close the
    connection without an answer), ``truncate`` (cut the body short of its Content-Length),
    ``malformed`` (invalid JSON with a correct Content-Length). Webhook kinds act on the next
    ``count`` webhook events: ``webhook_duplicate`` (each sent twice) and ``webhook_reorder``
    (``count`` events held back, then sent newest first). The listing kind ``page_repeat`` acts
    on paginated lists: the first page is served whatever the cursor, the next cursor still
    advances and ``next_page_results`` is always true (the listing bug reported against Plane
    1.3.0: pages repeating, the next-page flag never false), the case the pager's loop guard
    is for.

    Plane down: ``set_down("502")`` (or ``"503"``, ``"504"``, ``"reset"``) makes every HTTP
    request fail that way until ``set_down(None)``; ``outage(("502", 60), ("reset", 60))``
    schedules a window of phases that ends by itself. A down Plane answers before any fault
    added with :meth:`add`, uses no quota, and sends its webhooks as usual.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._down: str | None = None
        self._down_since = 0.0
        self._outages: list[Outage] = []
        #: (mode, start, end) of every down window that ended, ``time.time()`` seconds.
        self._down_log: list[tuple[str, float, float]] = []
        self.down_hits: dict[str, int] = {}

    def add(
        self,
        route_regex: str | None = None,
        method: str | None = None,
        kind: str = "status",
        status: int = 503,
        count: int | None = 1,
        *,
        seconds: float = 0.0,
        retry_after: int = 1,
        body: Any = None,
    ) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        if count is not None and count < 1:
            raise ValueError("count must be >= 1 or None (unlimited)")
        if kind == "status" and not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status}")
        if kind == "delay" and seconds < 0:
            raise ValueError("seconds must be >= 0")
        fault = Fault(kind, route_regex, method, status, count, seconds, retry_after, body)
        if route_regex is not None:
            fault._pattern = re.compile(route_regex)
        with self._lock:
            self._faults.append(fault)
        return fault

    # -- Plane down

    def set_down(self, mode: str | None) -> None:
        """Take Plane down in ``mode`` (one of :data:`DOWN_MODES`) until ``set_down(None)``."""
        mode = None if mode is None else _check_mode(mode)
        now = time.time()
        with self._lock:
            if self._down is not None and self._down != mode:
                self._down_log.append((self._down, self._down_since, now))
            if mode is not None and mode != self._down:
                self._down_since = now
            self._down = mode

    def outage(self, *phases: tuple[str, float], delay: float = 0.0) -> Outage:
        """Schedule a down window: each (mode, seconds) phase in turn, starting in ``delay``
        seconds; returns it (``wait()``, ``ends_at``, ``hits``; ``cancel_outage`` ends it)."""
        if not phases:
            raise ValueError("an outage needs at least one (mode, seconds) phase")
        checked = []
        for mode, seconds in phases:
            if float(seconds) <= 0:
                raise ValueError("each outage phase must last > 0 seconds")
            checked.append((_check_mode(mode), float(seconds)))
        if delay < 0:
            raise ValueError("delay must be >= 0")
        window = Outage(tuple(checked), time.time() + delay)
        with self._lock:
            self._outages.append(window)
        return window

    def cancel_outage(self, window: Outage) -> None:
        with self._lock:
            if window.cancelled_at is None:
                window.cancelled_at = max(time.time(), window.started_at)

    def down_mode(self, now: float | None = None) -> str | None:
        """How Plane is down right now (the switch first, then a scheduled window), or None."""
        now = time.time() if now is None else now
        with self._lock:
            if self._down is not None:
                return self._down
            for window in self._outages:
                mode = window.mode_at(now)
                if mode is not None:
                    return mode
        return None

    def down_windows(self) -> list[tuple[str, float, float]]:
        """(mode, start, end) of every down period so far, switch and scheduled, by start; an
        ongoing one ends now."""
        now = time.time()
        with self._lock:
            out = list(self._down_log)
            if self._down is not None:
                out.append((self._down, self._down_since, now))
            for window in self._outages:
                out += [(m, a, min(b, now)) for m, a, b in window.windows() if a < now]
        return sorted(out, key=lambda w: w[1])

    def _take_down(self, method: str, path: str) -> Fault | None:
        now = time.time()
        with self._lock:
            mode, window = self._down, None
            if mode is None:
                for candidate in self._outages:
                    mode = candidate.mode_at(now)
                    if mode is not None:
                        window = candidate
                        break
            if mode is None:
                return None
            self.down_hits[mode] = self.down_hits.get(mode, 0) + 1
            if window is not None:
                window.hits[mode] = window.hits.get(mode, 0) + 1
        if mode == "reset":
            return Fault("reset", count=None, hits=1)
        return Fault("status", status=int(mode), count=None, body=DOWN, hits=1)

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str, kinds: tuple[str, ...] = HTTP_KINDS) -> Fault | None:
        """Consume one use of the first matching fault of the given kinds (oldest first).

        While Plane is down, every HTTP request gets the down answer instead."""
        if kinds == HTTP_KINDS:
            down = self._take_down(method, path)
            if down is not None:
                return down
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.matches(method, path):
                    fault.hits += 1
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count == 0:
                            self._faults.remove(fault)
                    return fault
        return None
