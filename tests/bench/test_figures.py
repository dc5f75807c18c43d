"""The arithmetic the benchmark report rests on: theoretical minimum and goal verdicts."""

from __future__ import annotations

import pytest

from bench.common import (
    BenchResult,
    Figure,
    handwritten_sections,
    merge_previous,
    min_time_for,
    render_markdown,
    render_table,
)


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


def _meta(command: str, started: str) -> dict:
    return {"command": command, "started_at": started, "quick": False, "total_seconds": 1.0,
            "machine": {"cpus": 2, "loadavg_1_5_15": [0.1, 0.1, 0.1], "python": "3.11",
                        "platform": "linux"}}  # fmt: skip


def test_a_subset_run_keeps_the_other_rows_with_their_own_run() -> None:
    old = BenchResult("budget", "1. budget use")
    old.add("ours: 429s received", 0, "count", "== 0")
    old_meta = _meta("python -m bench", "2026-01-01 00:00:00")
    # What an earlier full run wrote (one run for the whole file, as before this change).
    previous = {**old_meta, "benchmarks": {"budget": old.to_json()}}
    new = BenchResult("odoo_webhook", "9. Odoo webhook route")
    new.add("18.0: events lost of 10", 0, "count", "== 0")
    merged = merge_previous([new], previous, ["budget", "odoo_webhook"])
    assert [r.name for r in merged] == ["budget", "odoo_webhook"]
    assert merged[0].run["started_at"] == "2026-01-01 00:00:00"
    hand = "## Notes on the 2026-01-01 run (hand-written)\n\n- the budget was fine"
    earlier_md = "# results\n\n| table |\n\n## Notes (generated)\n\n- x\n\n" + hand + "\n"
    md = render_markdown(merged, _meta("python -m bench --only odoo_webhook", "2026-02-02"),
                         handwritten_sections(earlier_md))
    assert "| 1. budget use | ours: 429s received | 0 | == 0 | PASS | 1 |" in md
    assert "| 9. Odoo webhook route | 18.0: events lost of 10 | 0 | == 0 | PASS | 2 |" in md
    assert "`python -m bench`" in md and "`python -m bench --only odoo_webhook`" in md
    assert md.count(hand) == 1 and "- x" not in md
