"""``plane-connector export``: stream a project's work items as JSON lines, resumable.

The walk follows Plane's cursors with a fixed ``per_page``. After each finished page the file is
flushed and the cursor of the next page is reported on stderr; ``--resume-from CURSOR`` starts
there again, and with the same ``--out`` file the items already written are skipped, so a crashed
export resumes without gaps or duplicates.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import IO, Any

from plane_connector import ConfigError, PlaneClient, PlaneError
from plane_connector import server as plane_server
from plane_connector.cli._connection import add_connection_args

_log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "export",
        help="stream a project's work items as JSON lines (resumable)",
        description="Walk GET workspaces/<slug>/projects/<id>/work-items/ page by page and write "
        "one JSON object per line. The resume cursor is printed to stderr after each page.",
    )
    add_connection_args(p)
    p.add_argument("--workspace", required=True, help="workspace slug")
    p.add_argument("--project", required=True, help="project id (UUID)")
    p.add_argument("--per-page", type=int, default=100, help="page size, 1-1000 (default 100)")
    p.add_argument("--resume-from", metavar="CURSOR", help="cursor printed by an earlier run")
    p.add_argument("--out", type=Path, help="output .jsonl file (default: stdout)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra query parameter, e.g. order_by=-updated_at or expand=labels (repeatable)",
    )
    p.add_argument(
        "--requests-per-minute", type=int, default=60, help="throttle (default 60, Plane's limit)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export; exit 0 when complete, 1 on a Plane error (resumable), 2 on bad configuration."""
    try:
        api_key = _resolve_key(args.api_key_ref)
        params = _parse_params(args.param)
        client = PlaneClient(
            args.base_url, api_key=api_key, requests_per_minute=args.requests_per_minute,
            ca_bundle=args.ca_bundle,
        )  # fmt: skip
        walk = {"params": params, "per_page": args.per_page, "cursor": args.resume_from}
        # The arguments are checked (a ConfigError) before anything is sent, then the path is
        # the server's: /issues/ on Plane up to 1.0, /work-items/ after.
        client.paginate(plane_server.Routes(plane_server.WORK_ITEMS).work_items(
            args.workspace, args.project), **walk)  # fmt: skip
        path = plane_server.detect(client).routes.work_items(args.workspace, args.project)
        pager = client.paginate(path, **walk)
    except ConfigError as exc:
        print(f"plane-connector export: {exc}", file=sys.stderr)
        return 2
    skip = _already_written(args.out) if args.out and args.resume_from else set()
    out: IO[str]
    if args.out:
        out = args.out.open("a" if args.resume_from else "w", encoding="utf-8")
        if skip and not _ends_with_newline(args.out):
            out.write("\n")  # the crash cut the last line: keep the next item on its own line
    else:
        out = sys.stdout
    written = 0
    page_cursor = pager.cursor
    try:
        for item in pager:
            if pager.cursor != page_cursor:
                # A new page started: everything before it is written, so it is a safe resume point.
                out.flush()
                page_cursor = pager.cursor
                _report(pager.pages - 1, written, page_cursor)
            item_id = item.get("id") if isinstance(item, dict) else None
            if item_id is not None and item_id in skip:
                continue
            out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
            written += 1
        out.flush()
    except PlaneError as exc:
        out.flush()
        print(f"plane-connector export: {exc}", file=sys.stderr)
        _resume_hint(pager.cursor, args)
        return 1
    except KeyboardInterrupt:
        out.flush()
        _resume_hint(pager.cursor, args)
        return 130
    finally:
        if out is not sys.stdout:
            out.close()
    total = f" of {pager.total}" if pager.total is not None else ""
    print(
        f"export complete: {written} work items written{total}, {pager.pages} pages",
        file=sys.stderr,
    )
    return 0


def _resolve_key(ref: str | None) -> str:
    if not ref:
        raise ConfigError(
            "no API key reference: pass --api-key-ref or set PLANE_API_KEY_REF "
            "(for example env:PLANE_API_KEY)"
        )
    try:
        from plane_connector.secrets import resolve
    except ImportError:  # pragma: no cover - secrets ships with the wheel
        scheme, _, name = ref.partition(":")
        if scheme != "env" or not os.environ.get(name):
            raise ConfigError(f"cannot resolve {scheme}: references here; use env:NAME") from None
        return os.environ[name]
    return resolve(ref)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param needs KEY=VALUE, got {pair!r}")
        params[key] = value
    return params


def _already_written(out: Path) -> set[str]:
    """Ids in an existing output file, so a resumed page does not write them twice."""
    ids: set[str] = set()
    if not out.exists():
        return ids
    with out.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line cut by the crash; the item comes again
            if isinstance(item, dict) and item.get("id") is not None:
                ids.add(item["id"])
    return ids


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _report(pages_done: int, written: int, cursor: str | None) -> None:
    if cursor:
        print(
            f"page {pages_done} done, {written} items written; resume with --resume-from {cursor}",
            file=sys.stderr,
        )


def _resume_hint(cursor: str | None, args: argparse.Namespace) -> None:
    if cursor:
        target = f" --out {args.out}" if args.out else ""
        print(
            f"resume with: plane-connector export ... --per-page {args.per_page} "
            f"--resume-from {cursor}{target}",
            file=sys.stderr,
        )
