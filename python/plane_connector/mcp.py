"""MCP client configuration for Plane's MCP server (``plane-mcp-server``).

Three transports, chosen by ``PLANE_MCP_TRANSPORT`` (or automatically):

``oauth``
    Remote Streamable HTTP with OAuth: the client holds no credential, it runs the browser
    flow itself. Hosted at ``https://mcp.plane.so/http/mcp`` for Plane Cloud; a self-hosted
    commercial edition needs its own MCP server URL (the open-source Plane has no OAuth).
``api-key``
    Remote Streamable HTTP with a Plane API key: ``Authorization: Bearer <key>`` and
    ``X-Workspace-slug`` headers, at ``{mcp_url}/http/api-key/mcp``.
``stdio``
    A local ``plane-mcp-server stdio`` process with ``PLANE_API_KEY``, ``PLANE_WORKSPACE_SLUG``
    and ``PLANE_BASE_URL`` in its environment.

Secrets are given as references (``env:``, ``keyring:``, ``vault:``, ``file:``). With
``resolve_secrets=False`` the key is replaced by the client's own variable syntax (``${NAME}``
for Claude Code, ``${env:NAME}`` for Cursor, a password input for VS Code), so a config can be
shown or committed without holding the key.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from plane_connector import ConfigError

if TYPE_CHECKING:
    from plane_connector.secrets import SecretPolicy

__all__ = [
    "API_KEY_PATH",
    "CLIENTS",
    "DEFAULT_BASE_URL",
    "HOSTED_MCP_URL",
    "MODES",
    "OAUTH_PATH",
    "MCPConfigError",
    "MCPSettings",
    "build_config",
    "choose_mode",
    "config_from_env",
    "holds_secret",
    "is_plane_cloud",
    "merge_config",
    "server_entry",
    "write_config",
]

MODES = ("oauth", "api-key", "stdio")
CLIENTS = ("claude", "cursor", "vscode")
DEFAULT_BASE_URL = "https://api.plane.so"
HOSTED_MCP_URL = "https://mcp.plane.so"
# plane-mcp-server mounts the OAuth app under {prefix}/http and the header app under
# {prefix}/http/api-key; both serve Streamable HTTP at /mcp below their mount.
OAUTH_PATH = "/http/mcp"
API_KEY_PATH = "/http/api-key/mcp"
DEFAULT_COMMAND = ("plane-mcp-server", "stdio")
DEFAULT_SERVER_NAME = "plane"
# Hosts that are Plane Cloud, where the hosted MCP server (and OAuth) is available.
CLOUD_HOSTS = frozenset({"api.plane.so", "app.plane.so", "plane.so"})
API_KEY_ENV = "PLANE_API_KEY"
VSCODE_INPUT_ID = "plane-api-key"

_MODE_ALIASES = {
    "oauth": "oauth",
    "api-key": "api-key",
    "api_key": "api-key",
    "apikey": "api-key",
    "stdio": "stdio",
    "local": "stdio",
}
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_SERVER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")

# Where each setting comes from, for error messages that say what to set.
_SOURCES = {
    "base_url": "PLANE_BASE_URL / --base-url",
    "workspace_slug": "PLANE_WORKSPACE_SLUG / --workspace-slug",
    "api_key_ref": "PLANE_API_KEY_REF / --api-key-ref",
    "mcp_url": "PLANE_MCP_URL / --mcp-url",
}


class MCPConfigError(ConfigError):
    """The MCP configuration cannot be built; the message names what is missing or wrong.

    Messages quote user input (a base URL may carry ``user:password@``), so they are redacted
    on the way in."""

    def __init__(self, message: object = "", *args: object) -> None:
        from plane_connector.secrets import redact

        super().__init__(redact(str(message)), *args)


@dataclass(frozen=True)
class MCPSettings:
    """Inputs of :func:`build_config`, read from the environment by :meth:`from_env`."""

    mode: str | None = None
    base_url: str = DEFAULT_BASE_URL
    workspace_slug: str | None = None
    api_key_ref: str | None = None
    mcp_url: str | None = None
    client: str = "claude"
    server_name: str = DEFAULT_SERVER_NAME
    command: Sequence[str] = field(default=DEFAULT_COMMAND)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> MCPSettings:
        """Settings from ``PLANE_*`` variables; non-None ``overrides`` (CLI flags) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "mode": env.get("PLANE_MCP_TRANSPORT") or None,
            "base_url": env.get("PLANE_BASE_URL") or DEFAULT_BASE_URL,
            "workspace_slug": env.get("PLANE_WORKSPACE_SLUG") or None,
            "api_key_ref": env.get("PLANE_API_KEY_REF") or None,
            "mcp_url": env.get("PLANE_MCP_URL") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def is_plane_cloud(base_url: str) -> bool:
    """True when ``base_url`` points at Plane Cloud (``api.plane.so``)."""
    host = (urlsplit(base_url.strip()).hostname or "").lower()
    return host in CLOUD_HOSTS


def choose_mode(base_url: str, *, mcp_url: str | None = None) -> str:
    """The automatic transport when none is configured.

    Plane Cloud gets OAuth (the client holds no secret). A self-hosted Plane may be the
    open-source edition, which has no OAuth, so it gets the API-key transport when a remote MCP
    server URL is known and the local stdio server otherwise.
    """
    if is_plane_cloud(base_url):
        return "oauth"
    if mcp_url:
        return "api-key"
    return "stdio"


def normalize_mode(mode: str | None) -> str | None:
    """Canonical mode name, ``None`` for automatic; raise on an unknown name."""
    if mode is None or mode.strip().lower() in ("", "auto"):
        return None
    canonical = _MODE_ALIASES.get(mode.strip().lower())
    if canonical is None:
        raise MCPConfigError(
            f"unknown MCP transport {mode!r} (PLANE_MCP_TRANSPORT / --mode): "
            f"expected one of {', '.join(MODES)} or auto"
        )
    return canonical


def build_config(
    mode: str | None,
    *,
    base_url: str | None = DEFAULT_BASE_URL,
    workspace_slug: str | None = None,
    api_key_ref: str | None = None,
    mcp_url: str | None = None,
    client: str = "claude",
    resolve_secrets: bool = True,
    server_name: str = DEFAULT_SERVER_NAME,
    command: Sequence[str] | None = None,
    secret_policy: SecretPolicy | None = None,
) -> dict[str, Any]:
    """The complete MCP client config (one server named ``server_name``) for ``client``.

    ``mode`` is ``oauth``, ``api-key``, ``stdio``, or ``None``/``"auto"`` for
    :func:`choose_mode`. With ``resolve_secrets=False`` the API key is never read: the config
    carries the client's placeholder for it instead. ``secret_policy``: the operator's
    :class:`~plane_connector.secrets.SecretPolicy` when ``api_key_ref`` comes from a database
    setting (checked even when the key is not resolved).
    """
    client = _check_client(client)
    if not _SERVER_NAME.match(server_name):
        raise MCPConfigError(
            f"bad MCP server name {server_name!r}: letters, digits, '-' and '_', "
            "starting with a letter"
        )
    base = _normalize_base_url(base_url or DEFAULT_BASE_URL)
    canonical = normalize_mode(mode) or choose_mode(base, mcp_url=mcp_url)
    entry, inputs = server_entry(
        canonical,
        base_url=base,
        workspace_slug=workspace_slug,
        api_key_ref=api_key_ref,
        mcp_url=mcp_url,
        client=client,
        resolve_secrets=resolve_secrets,
        command=command,
        secret_policy=secret_policy,
    )
    if client == "vscode":
        config: dict[str, Any] = {"servers": {server_name: entry}}
        if inputs:
            config["inputs"] = inputs
        return config
    return {"mcpServers": {server_name: entry}}


def server_entry(
    mode: str,
    *,
    base_url: str,
    workspace_slug: str | None,
    api_key_ref: str | None,
    mcp_url: str | None,
    client: str,
    resolve_secrets: bool,
    command: Sequence[str] | None = None,
    secret_policy: SecretPolicy | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One server's entry plus the VS Code ``inputs`` it uses (empty for other clients)."""
    missing: list[str] = []
    needs_key = mode in ("api-key", "stdio")
    if needs_key:
        if not workspace_slug:
            missing.append("workspace_slug")
        if not api_key_ref:
            missing.append("api_key_ref")
    remote_url: str | None = None
    if mode in ("oauth", "api-key"):
        remote_url = _remote_root(mcp_url, base_url)
        if remote_url is None:
            missing.append("mcp_url")
    if missing:
        raise MCPConfigError(_missing_message(mode, missing, base_url))
    if workspace_slug is not None and needs_key and not _SLUG.match(workspace_slug):
        raise MCPConfigError(
            f"bad workspace slug {workspace_slug!r} (PLANE_WORKSPACE_SLUG / --workspace-slug): "
            "the slug from the workspace URL, e.g. 'my-team'"
        )

    inputs: list[dict[str, Any]] = []
    key = ""
    if needs_key:
        assert api_key_ref is not None  # checked above
        key, inputs = _api_key_value(api_key_ref, client, resolve_secrets, secret_policy)

    if mode == "oauth":
        assert remote_url is not None
        return _http_entry(client, remote_url + OAUTH_PATH, None), inputs
    if mode == "api-key":
        assert remote_url is not None and workspace_slug is not None
        headers = {"Authorization": f"Bearer {key}", "X-Workspace-slug": workspace_slug}
        return _http_entry(client, remote_url + API_KEY_PATH, headers), inputs
    assert workspace_slug is not None
    argv = list(command or DEFAULT_COMMAND)
    if not argv or not argv[0]:
        raise MCPConfigError("empty stdio command (--command): e.g. 'plane-mcp-server stdio'")
    entry: dict[str, Any] = {}
    if client in ("claude", "vscode"):
        entry["type"] = "stdio"
    entry["command"] = argv[0]
    entry["args"] = argv[1:]
    entry["env"] = {
        API_KEY_ENV: key,
        "PLANE_WORKSPACE_SLUG": workspace_slug,
        "PLANE_BASE_URL": base_url,
    }
    return entry, inputs


def config_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    resolve_secrets: bool = True,
    secret_policy: SecretPolicy | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """:func:`build_config` from ``PLANE_*`` environment variables and ``overrides``."""
    s = MCPSettings.from_env(environ, **overrides)
    # MCPSettings' fields are build_config's parameters, one for one.
    values = {f.name: getattr(s, f.name) for f in fields(s)}
    return build_config(**values, resolve_secrets=resolve_secrets, secret_policy=secret_policy)


def merge_config(existing: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``existing`` with the servers (and VS Code inputs) of ``new`` added or replaced.

    Other servers and top-level keys are kept: a user's config file usually lists more than
    one server.
    """
    merged = dict(existing)
    for section in ("mcpServers", "servers"):
        if section in new:
            current = merged.get(section)
            if current is not None and not isinstance(current, dict):
                raise MCPConfigError(f"existing config has a non-object {section!r} section")
            merged[section] = {**(current or {}), **new[section]}
    if "inputs" in new:
        current_inputs = merged.get("inputs") or []
        if not isinstance(current_inputs, list):
            raise MCPConfigError("existing config has a non-list 'inputs' section")
        new_ids = {i.get("id") for i in new["inputs"]}
        kept = [i for i in current_inputs if not (isinstance(i, dict) and i.get("id") in new_ids)]
        merged["inputs"] = kept + list(new["inputs"])
    return merged


def holds_secret(config: Mapping[str, Any]) -> bool:
    """True when ``config`` carries a resolved API key rather than a client placeholder."""
    for section in ("mcpServers", "servers"):
        for entry in (config.get(section) or {}).values():
            values = [
                (entry.get("headers") or {}).get("Authorization", ""),
                (entry.get("env") or {}).get(API_KEY_ENV, ""),
            ]
            if any(v and "${" not in v for v in values):
                return True
    return False


def write_config(
    path: str | os.PathLike[str], config: Mapping[str, Any], *, allow_unignored: bool = False
) -> Path:
    """Merge ``config`` into the JSON file at ``path`` atomically, readable by the owner only.

    The file may hold an API key, so it is created with mode 0600 and replaced in one rename,
    never left half-written. A key is not written into a git work tree where the file is not
    ignored (project ``.mcp.json`` files are usually committed) unless ``allow_unignored``.
    """
    target = Path(path)
    if holds_secret(config) and not allow_unignored and _exposed_to_git(target):
        raise MCPConfigError(
            f"{target} is in a git work tree and not ignored, and this config holds the API "
            "key: add it to .gitignore, write to your user-level config instead, or print the "
            "config without --write (it then uses the client's placeholder for the key)"
        )
    existing: dict[str, Any] = {}
    if target.exists():
        try:
            loaded = json.loads(target.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError) as exc:
            raise MCPConfigError(f"cannot read existing MCP config {target}: {exc}") from None
        if not isinstance(loaded, dict):
            raise MCPConfigError(f"existing MCP config {target} is not a JSON object")
        existing = loaded
    merged = merge_config(existing, config)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(merged, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _exposed_to_git(target: Path) -> bool:
    """True when ``target`` lies in a git work tree and git does not ignore it."""
    folder = target.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the file's folder may not exist yet
    try:
        inside = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return False
        ignored = subprocess.run(
            ["git", "-C", str(folder), "check-ignore", "-q", str(target.absolute())],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False  # no git: nothing to protect from
    return ignored.returncode != 0


def _check_client(client: str) -> str:
    name = (client or "").strip().lower()
    if name == "claude-code":
        name = "claude"
    if name == "code":
        name = "vscode"
    if name not in CLIENTS:
        raise MCPConfigError(
            f"unknown MCP client {client!r} (--client): expected one of {', '.join(CLIENTS)}"
        )
    return name


def _http_url(text: str, what: str, where: str, shape: str, example: str) -> SplitResult:
    """``text`` split, or an error naming the setting when it is not an http(s) URL with a host."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MCPConfigError(f"bad {what} {text!r} ({where}): expected {shape}, e.g. {example}")
    return parts


def _normalize_base_url(base_url: str) -> str:
    text = base_url.strip()
    parts = _http_url(text, "Plane base URL", "PLANE_BASE_URL / --base-url",
                      "http(s)://host[:port]", "https://api.plane.so")
    if parts.query or parts.fragment:
        raise MCPConfigError(f"bad Plane base URL {text!r}: no query or fragment allowed")
    path = parts.path.rstrip("/")
    # The server appends /api/v1 itself (plane-python-sdk), so a base given with it would
    # double it.
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _remote_root(mcp_url: str | None, base_url: str) -> str | None:
    """Root URL of the remote MCP server (without the transport path), if known."""
    if mcp_url:
        text = mcp_url.strip()
        _http_url(text, "MCP server URL", "PLANE_MCP_URL / --mcp-url",
                  "http(s)://host[:port][/prefix]", "https://mcp.example.com")
        root = text.rstrip("/")
        # Accept a full transport URL too, as copied from Plane's docs.
        for suffix in (API_KEY_PATH, OAUTH_PATH):
            if root.endswith(suffix):
                return root[: -len(suffix)]
        return root
    if is_plane_cloud(base_url):
        return HOSTED_MCP_URL
    return None


def _missing_message(mode: str, missing: list[str], base_url: str) -> str:
    pieces = []
    for name in missing:
        hint = _SOURCES[name]
        if name == "mcp_url":
            hint += (
                f"; the hosted MCP server serves Plane Cloud only and {base_url} is "
                "self-hosted, so give the URL of your own plane-mcp-server"
            )
        pieces.append(f"{name} ({hint})")
    why = ""
    if mode == "oauth" and "mcp_url" in missing:
        why = " (the open-source Plane has no OAuth: use 'api-key' or 'stdio' there)"
    return f"MCP mode {mode!r} is missing: {'; '.join(pieces)}{why}"


def _http_entry(client: str, url: str, headers: dict[str, str] | None) -> dict[str, Any]:
    # Cursor infers the transport from "url"; Claude Code and VS Code want it spelled out.
    entry: dict[str, Any] = {"type": "http"} if client in ("claude", "vscode") else {}
    entry["url"] = url
    if headers:
        entry["headers"] = headers
    return entry


def _api_key_value(
    api_key_ref: str, client: str, resolve_secrets: bool, policy: SecretPolicy | None
) -> tuple[str, list[dict[str, Any]]]:
    """The API key (resolved) or the client's placeholder for it, plus VS Code inputs."""
    from plane_connector.secrets import parse, resolve

    # Rejects a pasted key (also one pasted after a scheme, which would otherwise end up in the
    # config as a variable name) and a reference the policy does not admit, before anything else.
    ref = policy.check(api_key_ref) if policy is not None else parse(api_key_ref)
    if resolve_secrets:
        return resolve(ref, policy=policy), []
    var = ref.target if ref.scheme == "env" else API_KEY_ENV
    if client == "claude":
        return "${" + var + "}", []
    if client == "cursor":
        return "${env:" + var + "}", []
    prompt = {
        "type": "promptString",
        "id": VSCODE_INPUT_ID,
        "description": f"Plane API key (stored as {ref})",
        "password": True,
    }
    return "${input:" + VSCODE_INPUT_ID + "}", [prompt]
