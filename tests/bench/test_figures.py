"""The arithmetic the benchmark report rests on: theoretical minimum and goal verdicts."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture(autouse=True)
def _logger_level_restored() -> Iterator[None]:
    """main() quiets the plane_connector logger for its run: later tests' caplog needs it back."""
    logger = logging.getLogger("plane_connector")
    level = logger.level
    yield
    logger.setLevel(level)


def _fake_benchmark(monkeypatch: pytest.MonkeyPatch, value: float) -> None:
    """bench's only benchmark becomes one figure of ``value`` against the goal <= 1.0."""
    import types

    import bench.__main__ as bench_main

    def run(cfg) -> BenchResult:
        res = BenchResult("fake", "1. fake")
        res.add("ratio", value, "ratio", "<= 1.0")
        return res

    monkeypatch.setitem(sys.modules, "bench_fake", types.SimpleNamespace(run=run))
    monkeypatch.setattr(bench_main, "BENCHMARKS", {"fake": ("bench_fake", "1. fake")})


@pytest.mark.parametrize(("value", "status"), [(0.5, 0), (2.0, 3)])
def test_a_missed_goal_is_a_non_zero_exit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], value: float,
                                          status: int) -> None:  # fmt: skip
    import bench.__main__ as bench_main

    _fake_benchmark(monkeypatch, value)
    out_json, out_md = tmp_path / "r.json", tmp_path / "R.md"
    assert bench_main.main(["--json", str(out_json), "--markdown", str(out_md)]) == status
    assert ("1. fake: ratio" in capsys.readouterr().err) == (status != 0)


def test_each_run_names_the_commit_it_measured(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:  # fmt: skip
    import bench.__main__ as bench_main

    _fake_benchmark(monkeypatch, 0.5)
    out_json, out_md = tmp_path / "r.json", tmp_path / "R.md"
    # An earlier file's row, written before runs named their tree, is kept and says so.
    old = BenchResult("old", "0. old")
    old.add("n", 0, "count", "== 0")
    out_json.write_text(json.dumps({**_meta("python -m bench", "2026-01-01 00:00:00"),
                                    "benchmarks": {"old": old.to_json()}}))  # fmt: skip
    assert bench_main.main(["--json", str(out_json), "--markdown", str(out_md)]) == 0
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    data = json.loads(out_json.read_text())
    assert data["tree"]["commit"] == head
    assert data["benchmarks"]["fake"]["run"]["tree"]["commit"] == head
    md = out_md.read_text()
    assert f"- tree: commit {head[:12]}" in md
    assert "- tree: not recorded (a run from before runs named their tree)" in md
