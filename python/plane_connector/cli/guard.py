"""``plane-connector guard``: fail a change that leaks a secret, drops the registry or the
delivery_id unique constraint. Exit 0 clean, 1 findings, 2 usage error."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from plane_connector import guard

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def add_parser(subparsers: Any) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "guard",
        help="check a diff for secrets, the secrets registry and the delivery_id constraint",
        description=(
            "Run from a repository root. Scans the lines added since --base (use the empty tree "
            f"{EMPTY_TREE} to scan everything) plus untracked files, checks "
            f"{guard.DEFAULT_REGISTRY} and the {guard.DELIVERY_MODEL} unique constraint. "
            "Prints path:line: kind: message per problem, never a secret value."
        ),
    )
    p.add_argument("--base", required=True, help="git revision or tree to diff against")
    p.add_argument("--repo", default=".", help="repository directory (default: current)")
    p.add_argument(
        "--no-untracked",
        dest="include_untracked",
        action="store_false",
        help="do not scan untracked (not ignored) files",
    )
    p.add_argument(
        "--dsn",
        default=os.environ.get("PLANE_GUARD_DSN"),
        help="PostgreSQL DSN (or env:/file:/keyring: reference to one) whose live schema must "
        "have the delivery_id unique index (default: env PLANE_GUARD_DSN)",
    )
    p.add_argument("--registry", help=f"registry path (default {guard.DEFAULT_REGISTRY})")
    p.add_argument("--allowlist", help=f"allowlist path (default {guard.DEFAULT_ALLOWLIST})")
    p.add_argument(
        "--require-model",
        action="store_true",
        help=f"fail when no {guard.DELIVERY_MODEL} model is found (instead of skipping)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the guard and print its report."""
    try:
        report = guard.run(
            args.repo,
            args.base,
            include_untracked=args.include_untracked,
            dsn=args.dsn or None,
            registry=args.registry,
            allowlist=args.allowlist,
            require_model=args.require_model,
        )
    except guard.GuardUsageError as exc:
        print(f"guard: {exc}", file=sys.stderr)
        return 2
    if args.json:
        payload = {
            "ok": report.ok,
            "findings": [
                {"path": f.path, "line": f.line, "kind": f.kind, "message": f.message}
                for f in report.findings
            ],
            "notes": report.notes,
            "skipped": report.skipped,
            "files_scanned": report.files_scanned,
            "lines_scanned": report.lines_scanned,
            "allowlisted": report.allowlisted,
        }
        print(json.dumps(payload, indent=2))
        return 0 if report.ok else 1
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for finding in report.findings:
        print(finding)
    scanned = f"{report.files_scanned} files, {report.lines_scanned} added lines"
    allowed = f", {report.allowlisted} allowlisted" if report.allowlisted else ""
    allowed += f", {len(report.skipped)} skipped (see notes)" if report.skipped else ""
    allowed += f", {len(report.skipped)} skipped (see notes)" if report.skipped else ""
    if report.ok:
        print(f"guard: OK ({scanned}{allowed})")
        return 0
    print(f"guard: {len(report.findings)} problem(s) ({scanned}{allowed})")
    return 1
