"""MCP client configs: the three transports, the automatic choice, the client formats."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from plane_connector import mcp
from plane_connector.cli import main as cli_main

KEY = "plane_api_" + "5f" * 16
SELF_HOSTED = "http://plane.internal:8080"


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MCP_TEST_PLANE_KEY", KEY)
    return "env:MCP_TEST_PLANE_KEY"


def server(config: dict, name: str = "plane") -> dict:
    section = config.get("mcpServers") or config["servers"]
    return section[name]


def test_oauth_cloud_uses_hosted_url_and_no_credentials(key_env: str) -> None:
    config = mcp.build_config(
        "oauth", base_url="https://api.plane.so", workspace_slug="acme", api_key_ref=key_env
    )
    assert config == {
        "mcpServers": {"plane": {"type": "http", "url": "https://mcp.plane.so/http/mcp"}}
    }
    assert KEY not in json.dumps(config)


def test_oauth_self_hosted_needs_its_own_server_url() -> None:
    with pytest.raises(mcp.MCPConfigError) as err:
        mcp.build_config("oauth", base_url=SELF_HOSTED)
    assert "mcp_url" in str(err.value) and "PLANE_MCP_URL" in str(err.value)
    config = mcp.build_config("oauth", base_url=SELF_HOSTED, mcp_url="https://mcp.corp.example/")
    assert server(config)["url"] == "https://mcp.corp.example/http/mcp"


def test_api_key_mode_sends_bearer_and_workspace_headers(key_env: str) -> None:
    config = mcp.build_config(
        "api-key", base_url="https://api.plane.so", workspace_slug="acme", api_key_ref=key_env
    )
    entry = server(config)
    assert entry["url"] == "https://mcp.plane.so/http/api-key/mcp"
    assert entry["headers"] == {"Authorization": f"Bearer {KEY}", "X-Workspace-slug": "acme"}


def test_full_transport_url_is_accepted_as_mcp_url(key_env: str) -> None:
    config = mcp.build_config(
        "api-key",
        base_url=SELF_HOSTED,
        workspace_slug="acme",
        api_key_ref=key_env,
        mcp_url="https://mcp.corp.example/plane/http/api-key/mcp",
    )
    assert server(config)["url"] == "https://mcp.corp.example/plane/http/api-key/mcp"


def test_stdio_mode_puts_key_slug_and_base_url_in_env(key_env: str) -> None:
    config = mcp.build_config(
        "stdio", base_url=SELF_HOSTED + "/api/v1/", workspace_slug="acme", api_key_ref=key_env
    )
    entry = server(config)
    assert entry["command"] == "plane-mcp-server" and entry["args"] == ["stdio"]
    # The server appends /api/v1 itself; a base URL given with it must not double it.
    assert entry["env"] == {
        "PLANE_API_KEY": KEY,
        "PLANE_WORKSPACE_SLUG": "acme",
        "PLANE_BASE_URL": SELF_HOSTED,
    }


@pytest.mark.parametrize(
    ("base_url", "mcp_url", "expected"),
    [
        ("https://api.plane.so", None, "oauth"),
        ("https://api.plane.so/", "https://mcp.corp.example", "oauth"),
        (SELF_HOSTED, None, "stdio"),
        (SELF_HOSTED, "https://mcp.corp.example", "api-key"),
    ],
)
def test_automatic_choice(base_url: str, mcp_url: str | None, expected: str) -> None:
    assert mcp.choose_mode(base_url, mcp_url=mcp_url) == expected


def test_env_selects_mode_and_flags_override(key_env: str) -> None:
    env = {
        "PLANE_MCP_TRANSPORT": "api-key",
        "PLANE_BASE_URL": SELF_HOSTED,
        "PLANE_WORKSPACE_SLUG": "from-env",
        "PLANE_API_KEY_REF": key_env,
        "PLANE_MCP_URL": "http://127.0.0.1:8211",
    }
    config = mcp.config_from_env(env)
    assert server(config)["url"] == "http://127.0.0.1:8211/http/api-key/mcp"
    config = mcp.config_from_env(env, mode="stdio", workspace_slug="from-flag")
    assert server(config)["env"]["PLANE_WORKSPACE_SLUG"] == "from-flag"
    # Unset transport: self-hosted without an MCP URL falls back to the local server.
    env.pop("PLANE_MCP_TRANSPORT")
    env.pop("PLANE_MCP_URL")
    assert "command" in server(mcp.config_from_env(env))


@pytest.mark.parametrize(
    ("mode", "kwargs", "names"),
    [
        ("stdio", {}, ["workspace_slug", "api_key_ref"]),
        ("api-key", {"workspace_slug": "acme"}, ["api_key_ref"]),
        ("api-key", {"base_url": SELF_HOSTED}, ["workspace_slug", "api_key_ref", "mcp_url"]),
    ],
)
def test_missing_pieces_are_named(mode: str, kwargs: dict, names: list[str]) -> None:
    with pytest.raises(mcp.MCPConfigError) as err:
        mcp.build_config(mode, **kwargs)
    message = str(err.value)
    for name in names:
        assert name in message
    assert f"{mode!r}" in message


def test_bad_inputs_get_clear_errors(key_env: str) -> None:
    with pytest.raises(mcp.MCPConfigError, match="unknown MCP transport"):
        mcp.build_config("websocket", workspace_slug="acme", api_key_ref=key_env)
    with pytest.raises(mcp.MCPConfigError, match="unknown MCP client"):
        mcp.build_config("oauth", client="emacs")
    with pytest.raises(mcp.MCPConfigError, match="bad Plane base URL"):
        mcp.build_config("stdio", base_url="plane.local", workspace_slug="a", api_key_ref=key_env)
    with pytest.raises(mcp.MCPConfigError, match="bad workspace slug"):
        mcp.build_config("stdio", workspace_slug="a/b", api_key_ref=key_env)


def test_pasted_key_instead_of_reference_is_refused_without_echo() -> None:
    with pytest.raises(ValueError) as err:
        mcp.build_config("stdio", workspace_slug="acme", api_key_ref=KEY)
    assert KEY not in str(err.value) and "reference" in str(err.value)


@pytest.mark.parametrize("client", ["claude", "cursor", "vscode"])
@pytest.mark.parametrize("scheme", ["env", "vault"])
def test_key_pasted_after_a_scheme_never_becomes_a_placeholder_name(
    client: str, scheme: str
) -> None:
    # With resolve_secrets=False, env:NAME becomes ${NAME} and any reference is quoted in the VS
    # Code prompt: a key pasted as the "name" would be written into the config file.
    ref = f"{scheme}:{KEY}"
    for mode in ("stdio", "api-key"):
        with pytest.raises(ValueError) as err:
            mcp.build_config(
                mode, client=client, resolve_secrets=False, workspace_slug="acme", api_key_ref=ref
            )
        assert KEY not in str(err.value) and "looks like a secret" in str(err.value)


def test_unresolved_secret_uses_each_clients_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The variable is unset: with resolve_secrets=False the key must never be read.
    monkeypatch.delenv("ODOO_PLANE_KEY", raising=False)
    common = {"workspace_slug": "acme", "api_key_ref": "env:ODOO_PLANE_KEY"}
    claude = mcp.build_config("stdio", client="claude", resolve_secrets=False, **common)
    assert server(claude)["env"]["PLANE_API_KEY"] == "${ODOO_PLANE_KEY}"
    assert server(claude)["type"] == "stdio"
    cursor = mcp.build_config("api-key", client="cursor", resolve_secrets=False, **common)
    assert "type" not in server(cursor)
    assert server(cursor)["headers"]["Authorization"] == "Bearer ${env:ODOO_PLANE_KEY}"
    vscode = mcp.build_config("api-key", client="vscode", resolve_secrets=False, **common)
    assert server(vscode)["headers"]["Authorization"] == "Bearer ${input:plane-api-key}"
    assert vscode["inputs"][0]["password"] is True and vscode["inputs"][0]["id"] == "plane-api-key"
    keyring = mcp.build_config(
        "stdio", resolve_secrets=False, workspace_slug="acme", api_key_ref="keyring:plane/key"
    )
    assert server(keyring)["env"]["PLANE_API_KEY"] == "${PLANE_API_KEY}"


def test_vscode_format_uses_servers_section(key_env: str) -> None:
    config = mcp.build_config("oauth", client="vscode")
    assert config == {
        "servers": {"plane": {"type": "http", "url": "https://mcp.plane.so/http/mcp"}}
    }


def test_write_merges_keeps_other_servers_and_is_private(tmp_path: Path, key_env: str) -> None:
    path = tmp_path / ".mcp.json"
    path.write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}, "extra": 1}))
    config = mcp.build_config("stdio", workspace_slug="acme", api_key_ref=key_env)
    mcp.write_config(path, config)
    written = json.loads(path.read_text())
    assert written["mcpServers"]["other"] == {"command": "x"} and written["extra"] == 1
    assert written["mcpServers"]["plane"]["env"]["PLANE_API_KEY"] == KEY
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.write_text("[1, 2]")
    with pytest.raises(mcp.MCPConfigError, match="not a JSON object"):
        mcp.write_config(path, config)
    assert path.read_text() == "[1, 2]"  # a bad existing file is left as it was


def test_cli_prints_placeholders_never_the_key(
    key_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLANE_BASE_URL", SELF_HOSTED)
    monkeypatch.setenv("PLANE_WORKSPACE_SLUG", "acme")
    monkeypatch.setenv("PLANE_API_KEY_REF", key_env)
    monkeypatch.delenv("PLANE_MCP_TRANSPORT", raising=False)
    monkeypatch.delenv("PLANE_MCP_URL", raising=False)
    assert cli_main(["mcp-config", "--client", "cursor"]) == 0
    out, err = capsys.readouterr()
    assert KEY not in out + err
    entry = json.loads(out)["mcpServers"]["plane"]
    assert entry["env"]["PLANE_API_KEY"] == "${env:MCP_TEST_PLANE_KEY}"


def test_cli_write_resolves_key_into_file_only(
    tmp_path: Path,
    key_env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "vscode" / "mcp.json"
    argv = ["mcp-config", "--mode", "stdio", "--client", "vscode", "--workspace-slug", "acme"]
    argv += ["--api-key-ref", key_env, "--command", "uvx plane-mcp-server stdio"]
    assert cli_main([*argv, "--write", str(target)]) == 0
    out, err = capsys.readouterr()
    assert KEY not in out + err
    entry = json.loads(target.read_text())["servers"]["plane"]
    assert entry["command"] == "uvx" and entry["args"] == ["plane-mcp-server", "stdio"]
    assert entry["env"]["PLANE_API_KEY"] == KEY


def test_cli_error_names_missing_piece(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("PLANE_WORKSPACE_SLUG", "PLANE_API_KEY_REF", "PLANE_MCP_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    assert cli_main(["mcp-config", "--mode", "stdio"]) == 2
    err = capsys.readouterr().err
    assert "workspace_slug" in err and "PLANE_API_KEY_REF" in err


def git_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def test_write_refuses_key_in_unignored_git_file(
    tmp_path: Path, key_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = git_repo(tmp_path / "project")
    argv = ["mcp-config", "--mode", "stdio", "--workspace-slug", "acme", "--api-key-ref", key_env]
    target = repo / "sub" / ".mcp.json"
    assert cli_main([*argv, "--write", str(target)]) == 2
    assert ".gitignore" in capsys.readouterr().err
    assert not target.exists()
    # Ignored: fine. Explicitly allowed: fine.
    (repo / ".gitignore").write_text("sub/.mcp.json\n")
    assert cli_main([*argv, "--write", str(target)]) == 0
    other = repo / "other.json"
    assert cli_main([*argv, "--write", str(other), "--allow-unignored"]) == 0
    assert KEY in other.read_text()


def test_write_without_secret_is_allowed_in_git(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "project")
    config = mcp.build_config("oauth")
    assert not mcp.holds_secret(config)
    mcp.write_config(repo / ".mcp.json", config)
    placeholder = mcp.build_config(
        "api-key", workspace_slug="acme", api_key_ref="env:X", resolve_secrets=False
    )
    assert not mcp.holds_secret(placeholder)
    mcp.write_config(repo / ".mcp.json", placeholder)
    assert "${X}" in (repo / ".mcp.json").read_text()
