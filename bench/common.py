"""Figures, goals and the report: what every benchmark returns and how the run is written out."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Figure:
    """One measured number, with the goal it is judged against (if any)."""

    name: str
    value: float | None
    unit: str = ""
    goal: str | None = None  # e.g. "<= 1.05", ">= 0.95", "== 0"; None: informational
    note: str = ""

    @property
    def verdict(self) -> str:
        """PASS / MISS against the goal, INFO when there is no goal, N/A when not measured."""
        if self.value is None:
            return "N/A"
        if self.goal is None:
            return "INFO"
        op, _, limit_text = self.goal.partition(" ")
        limit = float(limit_text)
        ok = {
            "<=": self.value <= limit,
            ">=": self.value >= limit,
            "==": self.value == limit,
        }[op]
        return "PASS" if ok else "MISS"

    def to_json(self) -> dict[str, Any]:
        """JSON form, the verdict included."""
        data = asdict(self)
        data["verdict"] = self.verdict
        return data


@dataclass
class BenchResult:
    """What one benchmark produced: figures, raw details, or why it could not run."""

    name: str
    title: str
    status: str = "ok"  # ok | skipped | error
    reason: str = ""
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    #: The run that produced it, when kept from an earlier results file (None: this run).
    run: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any], run: dict[str, Any]) -> BenchResult:
        """A result as written to results.json by an earlier run."""
        figures = [
            Figure(f["name"], f["value"], f.get("unit", ""), f.get("goal"), f.get("note", ""))
            for f in data.get("figures", [])
        ]
        return cls(name, data.get("title", name), data.get("status", "ok"),
                   data.get("reason", ""), data.get("seconds", 0.0), figures,
                   data.get("details", {}), run)

    def add(
        self,
        name: str,
        value: float | None,
        unit: str = "",
        goal: str | None = None,
        note: str = "",
    ) -> Figure:
        """Record a figure and return it."""
        fig = Figure(name, None if value is None else float(value), unit, goal, note)
        self.figures.append(fig)
        return fig

    def to_json(self) -> dict[str, Any]:
        """JSON form of the result."""
        return {
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "figures": [f.to_json() for f in self.figures],
            "details": self.details,
        }


class Skip(Exception):
    """Raised by a benchmark whose prerequisites are missing (a piece not built yet, no DB)."""


@dataclass
class RunConfig:
    """Options shared by every benchmark."""

    quick: bool = False
    #: Tiny sizes that only prove the wiring (the CI smoke test of the Odoo benchmarks).
    smoke: bool = False
    pg_dsn: str = field(default_factory=lambda: os.environ.get("PLANE_TEST_PG_DSN", DEFAULT_PG_DSN))


def require(dsn: str | None, *modules: str) -> None:
    """Skip unless every module imports and, when ``dsn`` is given, PostgreSQL answers there."""
    import importlib

    for name in (*modules, *(("psycopg2",) if dsn else ())):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise Skip(f"needs {name}: {exc}") from exc
    if dsn:
        import psycopg2

        try:
            psycopg2.connect(dsn, connect_timeout=3).close()
        except psycopg2.Error as exc:
            raise Skip(f"PostgreSQL not reachable at PLANE_TEST_PG_DSN: {exc}") from exc


def drop_tables(dsn: str, *tables: str) -> None:
    """DROP the benchmark's own tables (bench_* names, never the product's)."""
    import psycopg2

    assert all(t.startswith("bench_") for t in tables), tables
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")
    conn.close()


def median(values: Iterable[float]) -> float:
    """Median of a non-empty series."""
    return statistics.median(list(values))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, None when either side is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def min_time_for(n_requests: int, limit: int, window: float) -> float:
    """Shortest time in which ``n_requests`` can START under ``limit`` per sliding ``window``.

    From a fresh budget the first ``limit`` requests may go at t=0, the next ``limit`` at t=window
    (when the first ones leave the window), and so on: request k (0-based) may start at
    floor(k / limit) * window, so the last one at floor((n - 1) / limit) * window.
    """
    if n_requests <= 0:
        return 0.0
    return ((n_requests - 1) // limit) * window


def machine_info() -> dict[str, Any]:
    """Facts about the machine the figures were measured on (load matters on 2 shared cores)."""
    load: list[float] | None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": load,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


#: What the measured code is made of (the wheel's inputs) and the benchmarks themselves.
TREE_PATHS = ("src", "python", "Cargo.toml", "Cargo.lock", "pyproject.toml", "bench")


def tree_info(root: Path = BENCH_DIR.parent) -> dict[str, Any]:
    """The tree a run measured: its commit, and whether the measured files differed from it."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                 text=True, timeout=30)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None}
    changed = git("status", "--porcelain", "--untracked-files=no", "--", *TREE_PATHS)
    # results.json and RESULTS.md are what a run writes: not part of what it measured.
    changed_files = [line[3:] for line in (changed or "").splitlines()
                     if not line.endswith(("bench/results.json", "bench/RESULTS.md"))]
    return {"commit": commit, "dirty": bool(changed_files)}


def describe_tree(tree: dict[str, Any] | None) -> str:
    """The tree line of a run in RESULTS.md."""
    if not tree:
        return "not recorded (a run from before runs named their tree)"
    if not tree.get("commit"):
        return "unknown (not a git checkout)"
    return f"commit {tree['commit'][:12]}" + (
        " with uncommitted changes to the measured files" if tree.get("dirty") else "")


def missed_goals(results: Iterable[BenchResult]) -> list[str]:
    """'title: figure' of every figure of these results that missed its goal."""
    return [f"{r.title}: {f.name}" for r in results for f in r.figures if f.verdict == "MISS"]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, on the monotonic high-resolution clock."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def format_value(value: float | None, unit: str) -> str:
    """Human form of a figure for the table."""
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e12 and unit in ("count", ""):
        text = str(int(value))
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip() if unit not in ("", "count", "ratio") else text


def render_table(results: list[BenchResult]) -> str:
    """The plain-text table printed on stdout."""
    rows: list[tuple[str, str, str, str, str]] = []
    for res in results:
        if res.status != "ok" and not res.figures:
            rows.append((res.title, f"{res.status.upper()}: {res.reason}", "", "", ""))
            continue
        for i, fig in enumerate(res.figures):
            rows.append(
                (
                    res.title if i == 0 else "",
                    fig.name,
                    format_value(fig.value, fig.unit),
                    fig.goal or "",
                    fig.verdict,
                )
            )
        if res.status != "ok":
            rows.append(("", f"{res.status.upper()}: {res.reason}", "", "", ""))
    header = ("benchmark", "figure", "value", "goal", "verdict")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    widths[1] = min(widths[1], 70)

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths))]
    out += [line(r) for r in rows]
    return "\n".join(out)


RUN_KEYS = ("command", "started_at", "tree", "quick", "machine", "loadavg_end",
            "total_seconds")
HANDWRITTEN = "(hand-written"


def run_of(meta: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run in the report: its command, date, machine and load."""
    return {k: meta[k] for k in RUN_KEYS if k in meta}


def merge_previous(
    results: list[BenchResult], previous: dict[str, Any], order: list[str]
) -> list[BenchResult]:
    """This run's results, plus the earlier results file's for benchmarks this run did not run
    (each keeps the run it came from), in ``order``."""
    merged = {r.name: r for r in results}
    file_run = run_of(previous)  # files written before runs were kept per benchmark
    for name, data in previous.get("benchmarks", {}).items():
        if name not in merged:
            merged[name] = BenchResult.from_json(name, data, data.get("run") or file_run)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(merged.values(), key=lambda r: rank.get(r.name, len(rank)))


def handwritten_sections(markdown: str) -> str:
    """The sections of an earlier RESULTS.md whose heading says they are hand-written."""
    kept: list[str] = []
    keep = False
    for line in markdown.splitlines():
        if line.startswith("## "):
            keep = HANDWRITTEN in line
        if keep:
            kept.append(line)
    return "\n".join(kept).strip()


def render_markdown(
    results: list[BenchResult], meta: dict[str, Any], handwritten: str = ""
) -> str:
    """bench/RESULTS.md: the figures, the goals and the run (command, date, load) of each."""
    this_run = run_of(meta)
    runs: list[dict[str, Any]] = []
    labels: list[int] = []
    for res in results:
        run = res.run or this_run
        if run not in runs:
            runs.append(run)
        labels.append(runs.index(run) + 1)
    lines = [
        "# plane_connector benchmark results",
        "",
        "The table is generated by the benchmark runs (sections marked hand-written are not).",
        "Every figure is a ratio or a count measured in one run on one machine, against a",
        "baseline measured in the same run; the last column says which run. A run of a subset",
        "(`--only`) replaces those benchmarks' rows and keeps the others' from their own run.",
        "What each figure means: [docs/readme/bench.md](../docs/readme/bench.md).",
        "",
    ]
    for i, run in enumerate(runs, 1):
        machine = run.get("machine", {})
        total = run.get("total_seconds")
        lines += [
            f"Run {i}:",
            f"- command: `{run.get('command', '?')}`",
            f"- date (UTC): {run.get('started_at', '?')}",
            f"- tree: {describe_tree(run.get('tree'))}",
            f"- machine: {machine.get('cpus')} CPUs, load average at start "
            f"{machine.get('loadavg_1_5_15')}, at end {run.get('loadavg_end')}, "
            f"Python {machine.get('python')}, {machine.get('platform')}",
            f"- mode: {'quick (smoke sizes)' if run.get('quick') else 'full'}"
            + (f"; total {total:.0f} s" if total is not None else ""),
            "",
        ]
    lines += [
        "| benchmark | figure | value | goal | verdict | run |",
        "|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for res, label in zip(results, labels, strict=True):
        if res.status != "ok" and not res.figures:
            lines.append(f"| {res.title} | {res.status.upper()}: {res.reason} | | | | {label} |")
            continue
        for i, fig in enumerate(res.figures):
            title = res.title if i == 0 else ""
            name = fig.name + (f" ({fig.note})" if fig.note else "")
            lines.append(
                f"| {title} | {name} | {format_value(fig.value, fig.unit)} | "
                f"{fig.goal or ''} | {fig.verdict} | {label} |"
            )
        if res.status != "ok":
            lines.append(f"| | {res.status.upper()}: {res.reason} | | | | {label} |")
        notes += [f"{res.title} (run {label}): {n}" for n in res.details.get("notes", [])]
    if notes:
        lines += ["", "## Notes (generated)", ""] + [f"- {n}" for n in notes]
    if handwritten:
        lines += ["", handwritten]
    lines.append("")
    return "\n".join(lines)


def write_json(path: Path, results: list[BenchResult], meta: dict[str, Any]) -> None:
    """bench/results.json: every figure with its verdict, raw details and the run it came
    from, per benchmark; the top-level keys describe the latest run."""
    this_run = run_of(meta)
    data = {**meta, "benchmarks": {r.name: {**r.to_json(), "run": r.run or this_run}
                                   for r in results}}
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
