"""Saying what went wrong without saying a secret: error descriptions for rows, and rate-limited
redacted log lines (shared by the wheel's servers and the Odoo addon)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from plane_connector.secrets import redact

__all__ = ["MAX_ERROR_CHARS", "RateLimitedLog", "describe_error", "redact_error"]

#: The longest ``last_error`` a delivery row (or a sync job) keeps.
MAX_ERROR_CHARS = 2000


class RateLimitedLog:
    """Logs at most one line per key every ``interval`` seconds, then says how many it dropped.

    A reference that fails on every webhook must not write one ERROR line per delivery. The
    message is formatted here and passed through :func:`redact` before it reaches the handler.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        self.logger = logger
        self.interval = float(interval)
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}  # key -> (time logged, suppressed since)

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` was logged within the interval.

        Returns True when a line was written."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.interval:
                self._last[key] = (last[0], last[1] + 1)
                return False
            suppressed = last[1] if last is not None else 0
            if last is None and len(self._last) >= self._max_keys:
                # Unbounded keys (one per reference a user typed) must not grow memory forever.
                self._last.pop(next(iter(self._last)))
            self._last[key] = (now, 0)
        text = msg % args if args else msg
        if suppressed:
            text += f" ({suppressed} more suppressed in the last {self.interval:.0f} s)"
        self.logger.log(level, "%s", redact(text))
        return True

    def error(self, key: str, msg: str, *args: object) -> bool:
        """:meth:`log` at ERROR."""
        return self.log(logging.ERROR, key, msg, *args)

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, key, msg, *args)


def redact_error(text: str) -> str:
    """Blank out anything shaped like a credential (API keys, tokens, DSN passwords)."""
    return redact(text)


def describe_error(exc: BaseException, *, limit: int = MAX_ERROR_CHARS) -> str:
    """``Type: message`` of an exception, redacted and cut to ``limit`` characters."""
    text = redact_error(f"{type(exc).__name__}: {exc}")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
