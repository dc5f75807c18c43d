"""The benchmark harness without Odoo: it runs, refuses what it does not know, and every
benchmark that needs no Odoo (1-6) reaches its figures at smoke size.

Goals are not asserted here: timing goals belong to bench/, whose report says PASS or MISS (and
whose exit status is then 3). The Odoo benchmarks' smoke run is in test_bench_smoke.py, with the
tests that start a live Odoo.
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
    # 3: a goal missed (timing at smoke sizes on a loaded machine); the report says which.
    assert proc.returncode in (0, 3), proc.stderr
    assert (proc.returncode == 3) == ("goals missed:" in proc.stderr), proc.stderr
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


def test_smoke_runs_every_benchmark_without_odoo_to_its_figures(tmp_path: Path) -> None:
    # Benchmarks 1-6 run only when someone re-runs them by hand: a client setting's new bound
    # once made 4 and 6 crash unseen for days. At smoke size a timed goal may be missed on a
    # loaded machine (exit 3); a crash (exit 1, status "error") may not.
    names = ["budget", "shared", "verifier", "overhead", "receiver", "memory"]
    out_json = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", ",".join(names),
         "--json", str(out_json), "--markdown", str(tmp_path / "RESULTS.md")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode in (0, 3), proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out_json.read_text())["benchmarks"]
    assert sorted(results) == sorted(names)
    for name, result in results.items():
        assert result["status"] == "ok", (name, result.get("reason"))
        assert result["figures"], name
        # A baseline may come out N/A (plane-sdk's export stops at Plane's 429); ours may not.
        ours = [f for f in result["figures"] if f["goal"]]
        assert ours and all(isinstance(f["value"], (int, float)) for f in ours), name
