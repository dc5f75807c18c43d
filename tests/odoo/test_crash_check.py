"""bench/odoo_db.crashed_outside_logging: a live server whose child process crashes outside Odoo's
logging (the gevent child respawned over and over) fails its tests and benchmarks instead of
running them short of CPU. The texts are what real Python processes print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import odoo_db  # noqa: E402

# Odoo's log format (odoo/netsvc.py): a record, then the traceback logging.exception adds.
ODOO_FORMAT = "%(asctime)s %(process)s %(levelname)s db %(name)s: %(message)s"


def stderr_of(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode != 0
    return done.stderr.splitlines()


def logged_error() -> list[str]:
    """An error Odoo itself reports: a log record with its traceback under it."""
    return stderr_of(
        "import logging, sys\n"
        f"logging.basicConfig(format={ODOO_FORMAT!r}, level=logging.INFO)\n"
        "log = logging.getLogger('odoo.service.server')\n"
        "log.info('Worker WorkerCron alive')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('cron failed')\n"
        "sys.exit(1)\n"
    )


def crashed_child() -> list[str]:
    """A child that died importing what its monkey-patching needs, before any logging."""
    return stderr_of("import importlib.metadata as m; m.distribution('zope.interface.nowhere')")


def test_a_clean_log_and_odoos_own_errors_are_no_crash() -> None:
    assert odoo_db.crashed_outside_logging([], "18") == ""
    assert odoo_db.crashed_outside_logging(logged_error() * 3, "18") == ""


def test_a_child_that_died_outside_logging_fails_the_server_and_says_why() -> None:
    lines = logged_error() + crashed_child() * 4 + logged_error()
    why = odoo_db.crashed_outside_logging(lines, "19")
    assert why.startswith("Odoo 19.0: a process of the server crashed")
    assert "4 crash(es)" in why
    # The first crash's last line names the cause, and the hint names the fix.
    assert "PackageNotFoundError" in why and "zope.interface.nowhere" in why
    assert "setuptools" in why
