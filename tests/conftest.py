"""Shared pytest fixtures. Area-specific fixtures live in each tests/<area>/conftest.py."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = FIXTURES / "plane-samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Real responses and webhook deliveries recorded from a Plane CE server (see its README)."""
    return SAMPLES


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """DSN of the real PostgreSQL server the suite runs against (./dev.sh test starts it)."""
    return os.environ.get("PLANE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


# -- live Odoo servers (tests/odoo, the bench's Odoo smoke run): their modules are installed
# once per series into template databases (bench/odoo_db.py), here before the first test so
# that no test's timeout pays for an install; a test names what it needs with the marker
# ``odoo_templates(modules, ...)`` (each a list of modules, the heavy one first).


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "odoo_templates(*module_lists): the Odoo databases the test's servers get "
        "(templates built before the first test, tests/conftest.py)")
    config.addinivalue_line(
        "markers", "cpu_timed: a test whose goals are timings on the CPU it assumes (waits for "
        "PLANE_TIMED_TESTS_AFTER, tests/conftest.py)")


#: Seconds a cpu_timed test waits for PLANE_TIMED_TESTS_AFTER before it runs anyway.
TIMED_WAIT = 900.0


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item):
    """A ``cpu_timed`` test starts only once the file PLANE_TIMED_TESTS_AFTER names exists.

    ./dev.sh test starts the live Odoo tests beside the tail of the addon tests (their first
    minutes build templates and wait on servers), and names the addon step's end mark here: a
    timed goal (the chaos run's convergence) is then measured with the CPU to itself, as if the
    steps ran one after the other. Outermost (tryfirst), so that the wait is not in the test's
    own timeout."""
    after = os.environ.get("PLANE_TIMED_TESTS_AFTER")
    if after and item.get_closest_marker("cpu_timed") is not None and not Path(after).exists():
        reporter = item.config.pluginmanager.get_plugin("terminalreporter")
        say = reporter.write_line if reporter is not None else print
        say(f"{item.nodeid}: waiting for {after} (PLANE_TIMED_TESTS_AFTER) before it starts")
        deadline = time.monotonic() + TIMED_WAIT
        while not Path(after).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        if not Path(after).exists():
            say(f"{item.nodeid}: {after} did not appear in {TIMED_WAIT:.0f} s: running anyway")
    yield


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    needs = [(item, tuple(modules)) for item in session.items
             for mark in item.iter_markers("odoo_templates") for modules in mark.args]
    if not needs:
        return
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:  # bench/ lives at the repository root, outside the package
        sys.path.insert(0, root)
    from bench import odoo_db
    from bench.odoo_live import locate, wanted_series

    found = {s: o for s, o in locate()[0].items()
             if not wanted_series() or s in wanted_series()}
    wanted: dict[str, set[tuple[str, ...]]] = {}
    for item, modules in needs:
        # A test parametrized by series needs its own; any other, every series found.
        params = getattr(getattr(item, "callspec", None), "params", {})
        for series in [p for p in params.values() if p in found] or list(found):
            wanted.setdefault(series, set()).add(modules)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for failure in odoo_db.prepare(found, wanted):
        if reporter is not None:
            reporter.write_line(f"template not built (its tests will say why): {failure}")


def pytest_terminal_summary(terminalreporter) -> None:
    odoo_db = sys.modules.get("bench.odoo_db")
    if odoo_db is not None and any(odoo_db.stats.values()):
        s = odoo_db.stats
        terminalreporter.write_line(
            f"live Odoo (this process): {s['installs']} module installs into templates, "
            f"{s['copies']} database copies, {s['syncs']} plane_connector syncs")
