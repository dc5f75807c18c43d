"""The arithmetic the benchmark report rests on: theoretical minimum and goal verdicts."""

from __future__ import annotations

import pytest

from bench.common import BenchResult, Figure, min_time_for, render_markdown, render_table


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 0.0), (1, 0.0), (60, 0.0), (61, 14.0), (120, 14.0), (121, 28.0), (200, 42.0)],
)
def test_min_time_is_when_the_last_request_may_start(n: int, expected: float) -> None:
    # 60 per 14 s window from a fresh budget: request k starts at floor(k / 60) * 14.
    assert min_time_for(n, 60, 14.0) == expected


@pytest.mark.parametrize(
    ("value", "goal", "verdict"),
    [
        (1.05, "<= 1.05", "PASS"),
        (1.0501, "<= 1.05", "MISS"),
        (0.95, ">= 0.95", "PASS"),
        (0.9499, ">= 0.95", "MISS"),
        (0.0, "== 0", "PASS"),
        (1.0, "== 0", "MISS"),
        (3.0, None, "INFO"),
        (None, "== 0", "N/A"),
    ],
)
def test_verdict_against_goal(value: float | None, goal: str | None, verdict: str) -> None:
    assert Figure("f", value, goal=goal).verdict == verdict


def test_reports_show_skips_and_misses_rather_than_hiding_them() -> None:
    ok = BenchResult("a", "1. a")
    ok.add("ratio", 2.0, "ratio", "<= 1.0")
    skipped = BenchResult("b", "2. b", status="skipped", reason="no PostgreSQL")
    meta = {
        "command": "python -m bench",
        "started_at": "2026-01-01 00:00:00",
        "quick": False,
        "total_seconds": 1.0,
        "machine": {"cpus": 2, "loadavg_1_5_15": [0.1, 0.1, 0.1], "python": "3.11",
                    "platform": "linux"},
    }  # fmt: skip
    table = render_table([ok, skipped])
    assert "MISS" in table and "SKIPPED: no PostgreSQL" in table
    md = render_markdown([ok, skipped], meta)
    assert "| 1. a | ratio | 2.00 | <= 1.0 | MISS |" in md
    assert "SKIPPED: no PostgreSQL" in md
    assert "`python -m bench`" in md
