"""Plane's API-key throttle (DRF SimpleRateThrottle) and the emulator's scaled clock."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass


class ScaledClock:
    """Wall-clock time plus a scale for every Plane-side duration.

    ``time_scale`` 0.01 makes Plane's 60-second rate window last 0.6 real seconds, a 600-second
    webhook backoff 6 seconds and a 86400-second token lifetime 864 seconds. Timestamps stay real
    (epoch seconds), so header values such as ``X-RateLimit-Reset`` are real instants.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = float(time_scale)

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def scaled(self, plane_seconds: float) -> float:
        """Real seconds that stand for ``plane_seconds`` of Plane time."""
        return plane_seconds * self.time_scale


@dataclass(frozen=True)
class ThrottleDecision:
    allowed: bool
    remaining: int = 0
    reset: int = 0
    retry_after: int = 0


class RateThrottle:
    """Sliding window of allowed-request instants per raw key, as DRF keeps it in the cache."""

    def __init__(self, clock: ScaledClock, window: float = 60.0) -> None:
        self._clock = clock
        self.window = window
        self._history: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, limit: int) -> ThrottleDecision:
        window = self._clock.scaled(self.window)
        with self._lock:
            now = self._clock.now()
            history = self._history.setdefault(key, deque())
            while history and history[0] <= now - window:
                history.popleft()
            if len(history) >= limit:
                # DRF: wait = window - (now - oldest); Throttled() rounds it UP (math.ceil),
                # and a waiting client is then guaranteed a free slot. Real seconds here.
                wait = window - (now - history[0])
                return ThrottleDecision(False, retry_after=max(1, math.ceil(wait)))
            history.append(now)
            # Plane computes Remaining after recording this request; Reset is int(now + window).
            return ThrottleDecision(
                True, remaining=max(0, limit - len(history)), reset=int(now + window)
            )

    def reset(self) -> None:
        with self._lock:
            self._history.clear()
