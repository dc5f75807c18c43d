"""``plane-connector mcp-config``: print (or write) the MCP client config for Plane's MCP server.

Printed configs never hold the API key: the key is replaced by the client's own variable
syntax. ``--write FILE`` resolves the key reference and merges the server into FILE (mode 0600).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

from plane_connector import mcp
from plane_connector.secrets import SecretError

_log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "mcp-config",
        help="MCP client config for Plane's MCP server (oauth, api-key or stdio)",
        description=(
            "Print the MCP client configuration for Plane's MCP server. The transport comes "
            "from --mode or PLANE_MCP_TRANSPORT (oauth | api-key | stdio); when unset, Plane "
            "Cloud gets oauth, a self-hosted Plane gets api-key if PLANE_MCP_URL is set and "
            "stdio otherwise. Other inputs: PLANE_BASE_URL, PLANE_WORKSPACE_SLUG, "
            "PLANE_API_KEY_REF (a secret reference such as env:PLANE_API_KEY), PLANE_MCP_URL."
        ),
    )
    p.add_argument("--mode", help="oauth | api-key | stdio | auto (default: PLANE_MCP_TRANSPORT)")
    p.add_argument(
        "--client",
        default="claude",
        choices=mcp.CLIENTS,
        help="config format: claude (.mcp.json), cursor (.cursor/mcp.json), "
        "vscode (.vscode/mcp.json); default claude",
    )
    p.add_argument("--base-url", help="Plane base URL (default: PLANE_BASE_URL or Plane Cloud)")
    p.add_argument("--workspace-slug", help="workspace slug (default: PLANE_WORKSPACE_SLUG)")
    p.add_argument(
        "--api-key-ref",
        help="secret reference of the API key, e.g. env:PLANE_API_KEY (default: PLANE_API_KEY_REF)",
    )
    p.add_argument(
        "--mcp-url",
        help="root URL of a self-hosted plane-mcp-server (default: PLANE_MCP_URL; "
        "Plane Cloud uses the hosted server)",
    )
    p.add_argument("--name", default=mcp.DEFAULT_SERVER_NAME, help="server name in the config")
    p.add_argument(
        "--command",
        help="stdio command line (default: 'plane-mcp-server stdio'; e.g. "
        "'uvx plane-mcp-server stdio')",
    )
    p.add_argument(
        "--write",
        metavar="FILE",
        help="resolve the API key and merge the server into FILE (created with mode 0600); "
        "other servers in FILE are kept",
    )
    p.add_argument(
        "--allow-unignored",
        action="store_true",
        help="with --write: write the key even into a file git does not ignore",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the config; print it with placeholders, or write it with the key resolved."""
    command = shlex.split(args.command) if args.command else None
    try:
        config = mcp.config_from_env(
            resolve_secrets=bool(args.write),
            mode=args.mode,
            base_url=args.base_url,
            workspace_slug=args.workspace_slug,
            api_key_ref=args.api_key_ref,
            mcp_url=args.mcp_url,
            client=args.client,
            server_name=args.name,
            command=command,
        )
        if args.write:
            path = mcp.write_config(args.write, config, allow_unignored=args.allow_unignored)
            _log.info("wrote MCP server %r to %s", args.name, path)
            return 0
    except (mcp.MCPConfigError, SecretError, OSError) as exc:
        print(f"plane-connector mcp-config: {exc}", file=sys.stderr)
        return 2
    json.dump(config, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
