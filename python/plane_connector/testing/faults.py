"""Fault injection for the Plane emulator: per route or global, counted or permanent."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

HTTP_KINDS = ("status", "delay", "reset", "truncate", "malformed")
WEBHOOK_KINDS = ("webhook_duplicate", "webhook_reorder")
LISTING_KINDS = ("page_repeat",)
KINDS = HTTP_KINDS + WEBHOOK_KINDS + LISTING_KINDS


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
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

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
        """Consume one use of the first matching fault of the given kinds (oldest first)."""
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
