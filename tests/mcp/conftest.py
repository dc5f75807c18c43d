"""The real ``plane-mcp-server`` from PyPI, in a virtualenv of its own.

Its dependencies (fastmcp, pydantic, boto3, ...) must not mix with the connector's test
environment, so it lives in ``$PLANE_MCP_VENV`` (default ``~/.cache/plane-connector/mcp-venv``),
created on first use and reused afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from plane_connector.testing import PlaneEmulator

SERVER_SPEC = os.environ.get("PLANE_MCP_SERVER_SPEC", "plane-mcp-server==0.3.5")
VENV = Path(
    os.environ.get("PLANE_MCP_VENV") or Path.home() / ".cache" / "plane-connector" / "mcp-venv"
)


@pytest.fixture(scope="session")
def mcp_server_bin() -> Path:
    """Directory holding the ``plane-mcp-server`` executable."""
    bindir = VENV / "bin"
    exe = bindir / "plane-mcp-server"
    if not exe.exists():
        VENV.parent.mkdir(parents=True, exist_ok=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        proc = subprocess.run(
            [str(bindir / "python"), "-m", "pip", "install", "-q", SERVER_SPEC],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0 or not exe.exists():
            pytest.fail(
                f"could not install {SERVER_SPEC} into {VENV} (pip exit {proc.returncode}):\n"
                + proc.stderr[-2000:]
            )
    assert sys.platform != "win32"
    return bindir


@pytest.fixture
def emulator() -> Iterator[PlaneEmulator]:
    """A CE emulator with three work items in its project."""
    with PlaneEmulator(seed=7) as emu:
        emu.seed_work_items(3)
        yield emu


@pytest.fixture
def client_env(mcp_server_bin: Path) -> dict[str, str]:
    """What a desktop MCP client passes down: PATH and HOME, none of our PLANE_* settings."""
    return {
        "PATH": f"{mcp_server_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
