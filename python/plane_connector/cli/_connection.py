"""The connection options every sub-command that talks to Plane shares."""

from __future__ import annotations

import argparse
import os

DEFAULT_BASE_URL = "https://api.plane.so"


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """``--base-url`` and ``--api-key-ref``, defaulting to ``PLANE_BASE_URL`` /
    ``PLANE_API_KEY_REF`` (read when the parser is built, so tests can set them first)."""
    parser.add_argument(
        "--base-url",
        default=os.environ.get("PLANE_BASE_URL") or DEFAULT_BASE_URL,
        help=f"Plane base URL (env PLANE_BASE_URL, default {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--api-key-ref",
        default=os.environ.get("PLANE_API_KEY_REF"),
        help="secret reference of the API key, e.g. env:PLANE_API_KEY, keyring:plane/api_key, "
        "vault:plane_api_key, file:/run/secrets/plane_api_key (env PLANE_API_KEY_REF); "
        "never the key itself",
    )
