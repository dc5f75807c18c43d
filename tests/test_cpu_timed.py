"""The ``cpu_timed`` marker (tests/conftest.py): such a test starts only once the file named by
PLANE_TIMED_TESTS_AFTER exists (./dev.sh test: the addon tests' end mark), outside its own
timeout; other tests do not wait."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

INNER = '''
import os
from pathlib import Path

import pytest

MARK = Path(os.environ["PLANE_TIMED_TESTS_AFTER"])


def test_untimed():
    assert not MARK.exists()


@pytest.mark.cpu_timed
@pytest.mark.timeout(5)
def test_timed():
    assert MARK.exists(), "started before the mark existed"
'''


def test_a_timed_test_waits_for_the_mark_and_others_do_not(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    mark = tmp_path / "addon-tests.end"
    env = dict(os.environ, PLANE_TIMED_TESTS_AFTER=str(mark),
               PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    # The mark is made only when the hook says it waits: without the hook nobody makes it and
    # the timed test fails; the untimed one runs first and must not wait.
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-v", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-o", "addopts=", "test_inner.py"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    out = []
    for line in proc.stdout:
        out.append(line)
        if "waiting for" in line and "PLANE_TIMED_TESTS_AFTER" in line:
            mark.write_text("")
    proc.wait(timeout=120)
    text = "".join(out)
    assert proc.returncode == 0, text
    assert text.index("test_untimed PASSED") < text.index("test_inner.py::test_timed: waiting")
    assert "test_timed PASSED" in text
