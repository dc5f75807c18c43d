"""How long to wait before the next attempt: one doubling formula, each caller its own base and cap.

The delivery queue waits 1, 2, 4 … minutes up to an hour (:func:`default_backoff`); the Odoo sync
job starts at 30 seconds (``exponential_backoff(n, base=30, cap=3600)``). The HTTP client's
retries within one call are the Rust core's (``src/retry.rs``): jittered and sub-second, another
job.
"""

from __future__ import annotations

# 2**64 times any sane base is past any sane cap; the bound keeps 2**n from growing without end.
_MAX_DOUBLINGS = 64


def exponential_backoff(attempts: int, *, base: float, cap: float) -> float:
    """``base * 2**(attempts - 1)`` seconds, at most ``cap``: ``base`` after the first attempt."""
    doublings = min(max(int(attempts) - 1, 0), _MAX_DOUBLINGS)
    return float(min(base * 2.0**doublings, cap))


def default_backoff(attempts: int) -> float:
    """1, 2, 4 … minutes, capped at one hour."""
    return exponential_backoff(attempts, base=60.0, cap=3600.0)
