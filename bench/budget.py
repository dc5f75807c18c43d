"""1. Budget use: export 20,000 work items at 60 requests per (time-scaled) minute.

The connector, the official plane-sdk (as shipped, and with its RetryConfig) and a plain
requests loop each export the same project with their own fresh API key against one emulator.
429s and other error answers are counted by the emulator, per key.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from bench.common import BenchResult, RunConfig, min_time_for
from bench.emu import has_plane_client, start_emulator, statuses_for_key
from bench.exporters import (
    ExportOutcome,
    export_ours,
    export_plane_sdk,
    export_requests_loop,
)

log = logging.getLogger("bench.budget")

RATE = 60
PER_PAGE = 100


def run(cfg: RunConfig) -> BenchResult:
    """One export per client; time over the theoretical minimum, 429s and failures."""
    res = BenchResult("budget", "1. budget use")
    items = 15_000 if cfg.quick else 20_000
    window = 1.5 if cfg.quick else 14.0
    n_requests = math.ceil(items / PER_PAGE)
    t_min = min_time_for(n_requests, RATE, window)
    notes: list[str] = []
    emu = start_emulator(rate_limit=RATE, window=window)
    try:
        emu.seed_work_items(items)
        slug, pid = emu.workspace_slug, emu.project_id

        def sdk(with_retry: bool) -> Callable[[str], ExportOutcome]:
            return lambda key: export_plane_sdk(
                emu.base_url, key, slug, pid, PER_PAGE, with_retry=with_retry
            )

        runs: list[tuple[str, Callable[[str], ExportOutcome]]] = []
        if has_plane_client():
            runs.append(
                (
                    "ours",
                    lambda key: export_ours(
                        emu.base_url, key, slug, pid, PER_PAGE, rate_window=window
                    ),
                )
            )
        else:
            notes.append("plane_connector.PlaneClient not available: ours not measured")
        runs.append(
            (
                "requests loop",
                lambda key: export_requests_loop(emu.base_url, key, slug, pid, PER_PAGE),
            )
        )
        try:
            import plane  # noqa: F401

            runs += [("plane-sdk as shipped", sdk(False)), ("plane-sdk + RetryConfig", sdk(True))]
        except ImportError:
            notes.append("plane-sdk not installed: its baselines not measured")

        outcomes: dict[str, dict[str, Any]] = {}
        for name, export in runs:
            key = emu.add_api_key()  # a fresh budget for each client
            log.info("exporting with %s", name)
            out = export(key)
            statuses = statuses_for_key(emu, key)
            server_429 = statuses.get(429, 0)
            other_errors = sum(v for s, v in statuses.items() if s >= 400 and s != 429)
            complete = out.items == items and not out.failures
            outcomes[name] = {
                "items": out.items,
                "complete": complete,
                "seconds": round(out.seconds, 3),
                "time_over_min": round(out.seconds / t_min, 4) if complete else None,
                "server_requests": sum(statuses.values()),
                "server_429": server_429,
                "server_other_errors": other_errors,
                "client_requests": out.requests,
                "client_429": out.rate_limited,
                "failures": out.failures + other_errors,
                "error": out.error,
                **out.extra,
            }
    finally:
        emu.stop()

    for name, o in outcomes.items():
        ours = name == "ours"
        res.add(
            f"{name}: time / theoretical minimum",
            o["time_over_min"],
            "ratio",
            "<= 1.05" if ours else None,
            note="" if o["complete"] else f"export incomplete: {o['items']} of {items} items",
        )
        res.add(f"{name}: 429s received", o["server_429"], "count", "== 0" if ours else None)
        res.add(
            f"{name}: failed requests",
            o["failures"],
            "count",
            "== 0" if ours else None,
            note=o["error"][:120] if o["error"] else "",
        )
    res.details = {
        "items": items,
        "per_page": PER_PAGE,
        "requests_needed": n_requests,
        "rate": RATE,
        "window_seconds": window,
        "theoretical_min_seconds": t_min,
        "clients": outcomes,
        "notes": notes,
    }
    if not outcomes:
        res.status, res.reason = "skipped", "no client to measure"
    return res
