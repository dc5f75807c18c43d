"""``plane-connector`` command line.

Each sub-command lives in its own module under ``plane_connector.cli`` and exposes
``add_parser(subparsers)`` (registering itself, with ``set_defaults(func=run)``) and
``run(args) -> int``. Modules are imported lazily so that one broken optional dependency
never takes the whole CLI down.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from plane_connector import __version__

# Order is the order of `plane-connector --help`.
COMMANDS = ["demo", "health", "export", "emulate", "webhook", "guard", "mcp_config"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plane-connector",
        description="Odoo <-> Plane connector tools: demo, health check, export, emulator, "
        "webhook receiver, secrets guard, MCP config.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "--version", action="version", version=f"plane-connector {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"plane_connector.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"plane_connector.cli.{name}":
                continue  # not built yet in this tree
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
