"""3. Signature verifier: ``verify_signature`` against Python's hmac + compare_digest."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable

from bench.common import BenchResult, RunConfig, Skip, median, ratio

SECRET = "plane_wh_" + "5f" * 16  # the shape of a Plane webhook secret; not a real one


def python_verify(secret: str, body: bytes, signature: str | None) -> bool:
    """What a receiver written in plain Python does (the baseline)."""
    if not signature:
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _per_call_seconds(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def run(cfg: RunConfig) -> BenchResult:
    """Median per-call time of both verifiers, rounds interleaved so load hits both alike."""
    res = BenchResult("verifier", "3. verifier")
    try:
        from plane_connector import verify_signature
    except ImportError as exc:
        raise Skip(f"plane_connector.verify_signature unavailable: {exc}") from exc

    rounds = 7 if cfg.quick else 21
    for label, size, goal in (("1 KiB", 1024, "<= 0.5"), ("256 KiB", 256 * 1024, "<= 1.0")):
        body = os.urandom(size)
        sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert verify_signature(SECRET, body, sig) and python_verify(SECRET, body, sig)
        assert not verify_signature(SECRET, body, "0" * 64)
        calls = (2000 if cfg.quick else 20000) if size <= 4096 else (20 if cfg.quick else 200)

        def ours(body: bytes = body, sig: str = sig) -> object:
            return verify_signature(SECRET, body, sig)

        def theirs(body: bytes = body, sig: str = sig) -> object:
            return python_verify(SECRET, body, sig)

        _per_call_seconds(ours, calls // 10 + 1)  # warm-up
        _per_call_seconds(theirs, calls // 10 + 1)
        t_ours: list[float] = []
        t_py: list[float] = []
        for _ in range(rounds):
            t_ours.append(_per_call_seconds(ours, calls))
            t_py.append(_per_call_seconds(theirs, calls))
        m_ours, m_py = median(t_ours), median(t_py)
        res.add(f"{label}: time ours / hmac+compare_digest", ratio(m_ours, m_py), "ratio", goal)
        res.details[label] = {
            "calls_per_round": calls,
            "rounds": rounds,
            "median_us_ours": round(m_ours * 1e6, 3),
            "median_us_python": round(m_py * 1e6, 3),
        }
    return res
