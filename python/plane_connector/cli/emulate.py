"""``plane-connector emulate``: run the Plane emulator in the foreground.

Prints one JSON line (``base_url``, ``api_key``, ``workspace_slug``, ``project_id``) on stdout
before serving, so a script or test can read it and connect. The key belongs to this throwaway
local emulator only; printing it on the emulator's own stdout is the intended interface.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from typing import Any

from plane_connector._graceful import DEFAULT_GRACE, install_stop_handlers, serve_until_stopped

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "emulate",
        help="serve a local Plane API emulator (for tests and demos)",
        description="Serve a Plane API emulator on loopback with one workspace and project. "
        "Prints one JSON line with base_url, api_key, workspace_slug and project_id, "
        "then serves until SIGINT/SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free port)")
    p.add_argument("--work-items", type=int, default=0, metavar="K", help="seed K work items")
    p.add_argument("--webhook-url", help="register a webhook posting to this URL")
    p.add_argument(
        "--webhook-secret",
        help="its secret, or a reference such as env:NAME or file:/path that keeps it out of the "
        "process list (default: a generated plane_wh_ secret)",
    )
    p.add_argument("--edition", choices=("ce", "cloud"), default="ce")
    p.add_argument(
        "--plane-version",
        default=None,
        metavar="X.Y.Z",
        help="the Plane release to play: 1.0.0 serves only the /issues/ routes, 1.1.0 and later "
        "also /work-items/ (default: the newest recorded)",
    )
    p.add_argument(
        "--time-scale", type=float, default=1.0, help="real seconds per Plane second (default 1)"
    )
    p.add_argument("--rate-limit", type=int, default=60, help="requests per minute per API key")
    p.add_argument("--seed", type=int, help="make ids reproducible")
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve https:// with a certificate from a throwaway CA (needs the trustme package); "
        "the JSON line then carries ca_bundle, the CA's PEM file for --ca-bundle",
    )
    p.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="AFTER:MODE:SECONDS[,MODE:SECONDS...]",
        help="take Plane down AFTER seconds from the start: each MODE (502, 503, 504: the proxy's "
        "error page; reset: connections closed unanswered) for SECONDS, then up again; "
        "e.g. 30:502:60,reset:60 (repeatable)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        help=f"on SIGTERM/SIGINT, seconds the requests in flight get to finish "
        f"(default {DEFAULT_GRACE:g})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from plane_connector.testing import PlaneEmulator

    if args.work_items < 0:
        print("error: --work-items must be >= 0", file=sys.stderr)
        return 2
    if args.webhook_secret and not args.webhook_url:
        print("error: --webhook-secret needs --webhook-url", file=sys.stderr)
        return 2
    from plane_connector.testing.faults import parse_outage

    try:
        outages = [parse_outage(spec) for spec in args.outage]
    except ValueError as exc:
        print(f"error: --outage: {exc}", file=sys.stderr)
        return 2
    secret = args.webhook_secret
    if secret and re.match(r"(env|file|keyring|vault):", secret):
        from plane_connector.secrets import SecretError, resolve

        try:
            secret = resolve(secret)
        except SecretError as exc:
            print(f"error: --webhook-secret: {exc}", file=sys.stderr)
            return 2
    # Before the JSON line: a stop signal from then on is always handled.
    stop = install_stop_handlers()
    try:
        emu = PlaneEmulator(
            args.edition,
            **({"version": args.plane_version} if args.plane_version else {}),
            host=args.host,
            port=args.port,
            rate_limit=args.rate_limit,
            time_scale=args.time_scale,
            seed=args.seed,
            tls=args.tls,
        )
        emu.seed_work_items(args.work_items)
        if args.webhook_url:
            emu.register_webhook(args.webhook_url, secret)
        emu.start()
        for delay, phases in outages:
            emu.outage(*phases, delay=delay)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    info = {
        "base_url": emu.base_url,
        "api_key": emu.api_key,
        "workspace_slug": emu.workspace_slug,
        "project_id": emu.project_id,
        "plane_version": emu.version,
    }
    if emu.ca_bundle:
        info["ca_bundle"] = emu.ca_bundle
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    log.info(
        "Plane emulator (%s %s) serving on %s; Ctrl-C to stop",
        args.edition,
        emu.version,
        emu.base_url,
    )
    server = emu._server
    assert server is not None
    try:
        return serve_until_stopped(
            server, stop, log=log, grace=args.grace, already_serving=True, on_close=emu.stop
        )
    finally:
        emu.stop()
