"""Smoke test of the benchmark harness: it runs, and writes figures that are numbers.

Goals are not asserted here: timing goals belong to bench/, whose report says PASS or MISS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_verifier_writes_numeric_figures(tmp_path: Path) -> None:
    out_json = tmp_path / "results.json"
    out_md = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "verifier",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3. verifier" in proc.stdout
    data = json.loads(out_json.read_text())
    assert data["quick"] is True
    assert set(data["benchmarks"]) == {"verifier"}
    verifier = data["benchmarks"]["verifier"]
    assert verifier["status"] == "ok", verifier["reason"]
    assert len(verifier["figures"]) == 2
    for fig in verifier["figures"]:
        assert isinstance(fig["value"], float) and fig["value"] > 0
        assert fig["verdict"] in ("PASS", "MISS")
        assert fig["goal"]
    assert "| 3. verifier |" in out_md.read_text()


def test_unknown_benchmark_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "nope",
            "--json",
            str(tmp_path / "r.json"),
            "--no-markdown",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown benchmark(s): nope" in proc.stderr
    assert not (tmp_path / "r.json").exists()
