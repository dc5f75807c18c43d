"""The release wheel (``./dev.sh dist``) as a user gets it: the file itself, installed into a fresh
venv on a PATH without cargo or rustc, no index, no dependencies.

It checks the platform tag (manylinux2014, i.e. glibc 2.17) and that no OpenSSL is linked, then
imports the package, runs ``plane-connector --version`` and a health check against a
``plane-connector emulate`` process, all from the installed wheel.

When ``dist/`` does not hold a wheel built from this very tree (``dist/TREE``, see
scripts/tree_stamp.py), it is built first: minutes, once (``./dev.sh test`` builds it before
pytest, so there this only reuses it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
DEV_BIN = Path(sys.executable).parent

# Libraries the extension may need: the C runtime that every manylinux system has.
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                  "libgcc_s.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}  # fmt: skip


def _tree_digest() -> str:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "tree_stamp.py"), str(ROOT)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


@pytest.fixture(scope="module")
def wheel() -> Path:
    stamp = DIST / "TREE"
    wheels = sorted(DIST.glob("*.whl"))
    if not (wheels and stamp.is_file() and stamp.read_text().strip() == _tree_digest()):
        subprocess.run([str(ROOT / "dev.sh"), "dist"], check=True, timeout=1800)
        wheels = sorted(DIST.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _cargoless_env() -> dict[str, str]:
    """The environment without cargo, rustc or the dev venv on PATH."""
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not any(Path(d, tool).exists() for tool in ("cargo", "rustc", "maturin"))
            and Path(d) != DEV_BIN]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(keep)
    return env


def test_wheel_is_manylinux2014_abi3_without_openssl(wheel: Path, tmp_path: Path) -> None:
    assert re.search(r"-cp310-abi3-manylinux(2014|_2_17)_x86_64", wheel.name) or re.search(
        r"-cp310-abi3-manylinux_2_(1[7-9]|2[0-8])_", wheel.name
    ), wheel.name
    shown = subprocess.run([str(DEV_BIN / "auditwheel"), "show", str(wheel)],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert re.search(r'"manylinux_2_17_x86_64"|manylinux_2_17', shown), shown
    assert "libssl" not in shown and "libcrypto" not in shown, shown
    with zipfile.ZipFile(wheel) as zf:
        [so] = [n for n in zf.namelist() if n.endswith(".so")]
        zf.extract(so, tmp_path)
    if shutil.which("readelf"):
        dynamic = subprocess.run(["readelf", "-d", str(tmp_path / so)], capture_output=True,
                                 text=True, check=True).stdout  # fmt: skip
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic))
        assert needed <= ALLOWED_NEEDED, needed
    if shutil.which("nm"):
        symbols = subprocess.run(["nm", "-D", "--undefined-only", str(tmp_path / so)],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert not re.search(r"\b(SSL_|EVP_|OPENSSL_)", symbols)


def test_wheel_installs_and_runs_without_cargo(wheel: Path, tmp_path: Path) -> None:
    env = _cargoless_env()
    assert shutil.which("cargo", path=env["PATH"]) is None
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    py, exe = venv / "bin" / "python", venv / "bin" / "plane-connector"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--disable-pip-version-check", str(wheel)],
                   check=True, env=env, timeout=300)  # fmt: skip
    imported = subprocess.run(
        [str(py), "-c", "import plane_connector, sys; print(plane_connector.__file__); "
         "print(plane_connector.__version__)"],
        capture_output=True, text=True, check=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    location, version = imported.stdout.split()
    assert Path(location).is_relative_to(venv), location  # the installed wheel, not the tree
    assert subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env,
                          check=True).stdout.strip() == f"plane-connector {version}"  # fmt: skip

    emulator = subprocess.Popen([str(exe), "emulate", "--port", "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert emulator.stdout is not None
        info = json.loads(emulator.stdout.readline())
        health = subprocess.run(
            [str(exe), "health", "--base-url", info["base_url"], "--api-key-ref",
             "env:PLANE_DIST_TEST_KEY", "--json"],
            capture_output=True, text=True, timeout=120,
            env={**env, "PLANE_DIST_TEST_KEY": info["api_key"]},
        )  # fmt: skip
        assert health.returncode == 0, health.stdout + health.stderr
        assert json.loads(health.stdout)["ok"] is True
        emulator.send_signal(signal.SIGTERM)
        assert emulator.wait(timeout=30) == 0
    finally:
        if emulator.poll() is None:
            emulator.kill()
        emulator.communicate(timeout=30)
