"""Decide whether an ``odoo-bin --test-enable`` run passed, from its log (used by odoo-tests.sh).

odoo-bin's exit code is not enough: an addon that cannot be installed (wrong series in the
manifest version, a missing dependency) is skipped with a warning, zero of its tests run, and
the process still exits 0. So this fails on any ERROR/CRITICAL line, on a summary with failures
or errors, on any of our modules without tests that actually ran, and on any of our tests that
Odoo skipped.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_LEVEL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ (ERROR|CRITICAL) ")
_SUMMARY = re.compile(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests")
_STARTING = re.compile(r" odoo\.addons\.(\w+)\.tests\.\S+: Starting (\w+)\.(\w+)")
# Odoo skips a browser tour when it cannot drive Chromium (no websocket-client, no devtools
# port): the test still logs "Starting", so without this it would count as run and passed.
_SKIPPED = re.compile(r" odoo\.addons\.(\w+)\.tests\.\S+: skipped (\S+) : (.*)$")
_POST = re.compile(r"(\d+) post-tests in")
_NOT_INSTALLED = re.compile(
    r"(not installable, skipped|Some modules are not loaded|module \w+: not installable"
    r"|Some modules have inconsistent states|incompatible version, setting installable=False)"
)


def check(log_text: str, modules: list[str]) -> tuple[list[str], list[str]]:
    """(problems, facts) found in the log of one run."""
    problems: list[str] = []
    facts: list[str] = []
    lines = log_text.splitlines()
    errors = [ln for ln in lines if _LEVEL.match(ln)]
    for ln in errors[:20]:
        problems.append(f"log: {ln[:300]}")
    if len(errors) > 20:
        problems.append(f"… and {len(errors) - 20} more ERROR/CRITICAL lines")
    for ln in lines:
        if _NOT_INSTALLED.search(ln):
            problems.append(f"install: {ln[:300]}")
    summaries = [m for ln in lines if (m := _SUMMARY.search(ln))]
    if not summaries:
        problems.append("no test summary line ('N failed, N error(s) of N tests'): did Odoo run?")
    for m in summaries:
        failed, errored, total = (int(g) for g in m.groups())
        facts.append(f"summary: {failed} failed, {errored} error(s) of {total} tests")
        if failed or errored:
            problems.append(f"tests failed: {m.group(0)}")
    post = [int(m.group(1)) for ln in lines if (m := _POST.search(ln))]
    if post:
        facts.append(f"post-tests run: {sum(post)}")
    started: dict[str, set[str]] = {m: set() for m in modules}
    for ln in lines:
        m = _STARTING.search(ln)
        if m and m.group(1) in started:
            started[m.group(1)].add(f"{m.group(2)}.{m.group(3)}")
    for ln in lines:
        m = _SKIPPED.search(ln)
        if m and m.group(1) in started:
            problems.append(f"{m.group(1)}: {m.group(2)} was skipped: {m.group(3).strip()[:200]}")
    for module in modules:
        tests = started[module]
        classes = sorted({t.split(".")[0] for t in tests})
        if not tests:
            problems.append(f"{module}: zero tests ran (not installed, or its tests not loaded)")
        else:
            facts.append(f"{module}: {len(tests)} tests ran in {', '.join(classes)}")
    return problems, facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("modules", nargs="+")
    parser.add_argument("--series", default="?")
    parser.add_argument("--rc", type=int, default=0)
    parser.add_argument("--seconds", type=int, default=0)
    args = parser.parse_args(argv)
    text = args.log.read_text(encoding="utf-8", errors="replace")
    problems, facts = check(text, args.modules)
    if args.rc != 0:
        problems.insert(0, f"odoo-bin exited with {args.rc}")
    for fact in facts:
        print(f"   Odoo {args.series}.0 {fact}")
    if problems:
        for problem in problems:
            print(f"   Odoo {args.series}.0 FAIL {problem}")
        print(f"FAIL: Odoo {args.series}.0 ({args.seconds}s)")
        return 1
    print(f"PASS: Odoo {args.series}.0 ({args.seconds}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
