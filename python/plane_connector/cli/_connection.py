"""The connection options every sub-command that talks to Plane shares."""

from __future__ import annotations

import argparse
import os

DEFAULT_BASE_URL = "https://api.plane.so"


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """``--base-url``, ``--api-key-ref`` and ``--ca-bundle``, defaulting to ``PLANE_BASE_URL`` /
    ``PLANE_API_KEY_REF`` / ``PLANE_CA_BUNDLE`` (read when the parser is built, so tests can set
    them first)."""
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
    add_ca_bundle_arg(parser)


def add_ca_bundle_arg(parser: argparse.ArgumentParser) -> None:
    """``--ca-bundle PEM``: extra CAs for a Plane behind an internal CA (env PLANE_CA_BUNDLE)."""
    parser.add_argument(
        "--ca-bundle",
        default=os.environ.get("PLANE_CA_BUNDLE") or None,
        metavar="PEM",
        help="PEM file of extra certificate authorities to trust, for a self-hosted Plane behind "
        "an internal CA (env PLANE_CA_BUNDLE); the bundled roots and the system store "
        "(SSL_CERT_FILE, SSL_CERT_DIR) stay trusted",
    )
