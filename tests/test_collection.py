"""The suite collects every test file under tests/: a folder that pytest skips silently (it skips
any folder named ``dist`` by default, and tests/dist is the release wheel's suite) would let a
green run claim checks that never ran."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def test_every_test_file_is_collected() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in TESTS.rglob("test_*.py")}
    assert "tests/dist/test_wheel.py" in files
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         str(TESTS)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    collected = {line.split("::", 1)[0] for line in proc.stdout.splitlines() if "::" in line}
    assert files - collected == set(), proc.stdout[-2000:]
