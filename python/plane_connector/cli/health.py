"""``plane-connector health``: the deploy gate. Exit 0 only when Plane's ``users/me/`` answers
200; 1 when Plane is unhealthy or refuses the key; 2 on configuration errors. Never prints the key.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from plane_connector import health
from plane_connector._errors import ConfigError
from plane_connector.cli._connection import add_connection_args
from plane_connector.secrets import SecretError


def add_parser(subparsers: Any) -> None:
    """Register the sub-command."""
    p = subparsers.add_parser(
        "health",
        help="check that Plane answers users/me/ with the configured key (deploy gate)",
        description="GET <base>/api/v1/users/me/ once. Prints latency, user and remaining rate "
        "budget. Exit 0 healthy, 1 unhealthy, 2 configuration error.",
    )
    add_connection_args(p)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Resolve the key, run one check, print the outcome."""
    if not args.api_key_ref:
        return _config_error(
            args, "no API key reference: pass --api-key-ref or set PLANE_API_KEY_REF "
            "(for example env:PLANE_API_KEY)"
        )  # fmt: skip
    try:
        client, key = health.client_from_reference(
            args.base_url, args.api_key_ref, timeout=args.timeout, ca_bundle=args.ca_bundle
        )
    except (SecretError, ConfigError) as exc:
        return _config_error(args, str(exc))
    result = health.check(client, redact=[key])
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(result.summary())
        if result.ok:
            print(f"user: {_user(result)}")
            if result.server:
                print(f"server: {result.server}")
        if result.remaining is not None:
            print(f"rate budget: {result.remaining} requests left in the current window")
        elif result.ok:
            print("rate budget: unknown (Plane sent no X-RateLimit-Remaining)")
    if result.config_error:
        return 2
    return 0 if result.ok else 1


def _user(result: health.HealthResult) -> str:
    if result.user_display and result.user_email:
        return f"{result.user_display} <{result.user_email}>"
    return result.user_display or result.user_email or "(unnamed)"


def _config_error(args: argparse.Namespace, message: str) -> int:
    if args.json:
        # Same keys as a checked result, so a deploy script parses one shape.
        result = health.HealthResult(
            ok=False,
            status=None,
            latency_ms=0.0,
            endpoint=health.display_url(args.base_url),
            error=message,
            config_error=True,
        )
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(f"plane-connector health: {message}", file=sys.stderr)
    return 2
