"""Run the benchmarks: ``.venv/bin/python -m bench [--quick] [--only a,b]``.

Prints a table, writes bench/results.json and bench/RESULTS.md (paths can be changed), each run
with the commit it measured. Exit status: 0 when every goal was met, 1 when a benchmark crashed,
3 when a goal was missed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench.common import (
    BENCH_DIR,
    BenchResult,
    RunConfig,
    Skip,
    handwritten_sections,
    machine_info,
    merge_previous,
    missed_goals,
    render_markdown,
    render_table,
    tree_info,
    write_json,
)

# name -> (module, title); the order is the order.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "budget": ("bench.budget", "1. budget use"),
    "shared": ("bench.shared", "2. shared budget"),
    "verifier": ("bench.verifier", "3. verifier"),
    "overhead": ("bench.overhead", "4. client overhead"),
    "receiver": ("bench.receiver", "5. receiver"),
    "memory": ("bench.memory", "6. memory"),
    # Inside a live prefork Odoo 18.0 / 19.0 (skipped where none is found).
    "odoo_latency": ("bench.odoo_latency", "7. Odoo sync latency"),
    "odoo_backfill": ("bench.odoo_backfill", "8. Odoo back-fill"),
    "odoo_webhook": ("bench.odoo_webhook", "9. Odoo webhook route"),
    # Crash safety (issue 20): kills, terminated connections, Plane down, replays.
    "odoo_chaos": ("bench.odoo_chaos", "10. Odoo chaos"),
}

log = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke sizes (about a minute in all)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes that only prove the wiring (implies --quick; the CI smoke test)",
    )
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of: {','.join(BENCHMARKS)}",
    )
    p.add_argument("--json", type=Path, default=BENCH_DIR / "results.json", help="JSON output")
    p.add_argument(
        "--markdown", type=Path, default=BENCH_DIR / "RESULTS.md", help="Markdown output"
    )
    p.add_argument("--no-markdown", action="store_true", help="do not write the Markdown file")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return p.parse_args(argv)


def run_one(name: str, cfg: RunConfig) -> BenchResult:
    """Run one benchmark; a missing prerequisite is SKIPPED, a crash is ERROR (never hidden)."""
    module_name, title = BENCHMARKS[name]
    start = time.perf_counter()
    try:
        module = importlib.import_module(module_name)
        res: BenchResult = module.run(cfg)
    except Skip as exc:
        res = BenchResult(name, title, status="skipped", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
        log.error("benchmark %s failed:\n%s", name, traceback.format_exc())
        res = BenchResult(name, title, status="error", reason=f"{type(exc).__name__}: {exc}")
    res.name, res.title = name, title
    res.seconds = time.perf_counter() - start
    return res


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


#: Exit statuses: a benchmark crashed; a goal was missed (this run's figures only).
EXIT_ERROR, EXIT_MISS = 1, 3


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 0 when every benchmark ran and met its goals, EXIT_ERROR when one
    crashed, EXIT_MISS when one missed a goal (a skipped benchmark is neither)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # The clients' own warnings (a 429 retried, ...) are counted in the table already.
        logging.getLogger("plane_connector").setLevel(logging.ERROR)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    names = [n for n in BENCHMARKS if n in names]  # always in the order
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    cfg = RunConfig(quick=args.quick or args.smoke, smoke=args.smoke)
    raw_argv = sys.argv[1:] if argv is None else argv
    meta = {
        "command": shlex.join([".venv/bin/python", "-m", "bench", *raw_argv]),
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "tree": tree_info(),
        "quick": args.quick or args.smoke,
        "machine": machine_info(),
    }
    t0 = time.perf_counter()
    results = []
    try:
        for name in names:
            log.info("running %s", name)
            results.append(run_one(name, cfg))
    finally:
        if "bench.odoo_live" in sys.modules:  # the Odoo servers the run started, if any
            sys.modules["bench.odoo_live"].stop_all()
    meta["total_seconds"] = round(time.perf_counter() - t0, 1)
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    notes = [f"{r.title}: {n}" for r in results for n in r.details.get("notes", [])]
    meta["notes"] = notes
    print(render_table(results))
    # Benchmarks this run left out keep their rows (and their run) from the files it replaces.
    previous = _read_json(args.json)
    merged = merge_previous(results, previous, list(BENCHMARKS))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.json, merged, meta)
    if not args.no_markdown:
        old = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(
            render_markdown(merged, meta, handwritten_sections(old)), encoding="utf-8"
        )
    print(f"\nwrote {args.json}" + ("" if args.no_markdown else f" and {args.markdown}"))
    if any(r.status == "error" for r in results):
        return EXIT_ERROR
    missed = missed_goals(results)
    if missed:
        print("goals missed:\n" + "\n".join(f"  {m}" for m in missed), file=sys.stderr)
        return EXIT_MISS
    return 0


if __name__ == "__main__":
    sys.exit(main())
