"""scripts/odoo_log_check.py: what makes an Odoo test run count as failed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "odoo_log_check.py"
_spec = importlib.util.spec_from_file_location("odoo_log_check", SCRIPT)
assert _spec and _spec.loader
log_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(log_check)

TS = "2026-11-26 08:27:30,241 18262"
MODULES = ["ipai_plane_connector", "ipai_bir_plane_sync"]


def _start(module: str, test: str) -> str:
    return (f"{TS} INFO db odoo.addons.{module}.tests.test_x: Starting {test} ... ")


GOOD = "\n".join([
    _start("ipai_plane_connector", "TestSchema.test_unique"),
    _start("ipai_plane_connector", "TestWebhook.test_post"),
    _start("ipai_bir_plane_sync", "TestBir.test_round_trip"),
    f"{TS} INFO db odoo.service.server: 3 post-tests in 1.20s, 456 queries",
    f"{TS} INFO db odoo.tests.result: 0 failed, 0 error(s) of 3 tests when loading database 'db'",
])


def test_a_clean_run_passes(tmp_path):
    problems, facts = log_check.check(GOOD, MODULES)
    assert problems == []
    assert "ipai_plane_connector: 2 tests ran in TestSchema, TestWebhook" in facts
    log = tmp_path / "odoo.log"
    log.write_text(GOOD)
    assert log_check.main([str(log), *MODULES, "--series", "19"]) == 0


def test_zero_tests_for_one_module_fails():
    # What a series-specific manifest version does: the module is skipped, odoo-bin exits 0.
    text = GOOD.replace(_start("ipai_bir_plane_sync", "TestBir.test_round_trip"), "")
    text += (f"\n{TS} WARNING db odoo.modules.module: The module ipai_bir_plane_sync has an "
             "incompatible version, setting installable=False")
    problems, _ = log_check.check(text, MODULES)
    assert any("ipai_bir_plane_sync: zero tests ran" in p for p in problems)
    assert any("incompatible version" in p for p in problems)


def test_error_lines_and_failed_summary_fail(tmp_path):
    text = GOOD.replace("0 failed, 0 error(s) of 3", "1 failed, 0 error(s) of 3") + (
        f"\n{TS} ERROR db odoo.addons.ipai_plane_connector.tests.test_x: FAIL: TestX.test_y"
    )
    problems, _ = log_check.check(text, MODULES)
    assert any(p.startswith("tests failed") for p in problems)
    assert any("FAIL: TestX.test_y" in p for p in problems)
    log = tmp_path / "odoo.log"
    log.write_text(GOOD)
    assert log_check.main([str(log), *MODULES, "--rc", "1"]) == 1, "a non-zero exit fails"


def test_no_summary_at_all_fails():
    problems, _ = log_check.check(_start("ipai_plane_connector", "T.t"), ["ipai_plane_connector"])
    assert any("no test summary" in p for p in problems)


def test_a_skipped_test_of_ours_fails():
    # Odoo skips a browser tour it cannot run (no websocket-client, Chromium not starting)
    # after logging "Starting": it must not count as a passed test.
    text = GOOD + (
        f"\n{TS} INFO db odoo.addons.ipai_plane_connector.tests.test_x: skipped "
        "TestSchema.test_unique : websocket-client module is not installed"
        f"\n{TS} INFO db odoo.addons.base.tests.test_x: skipped TestBase.test_z : not ours"
    )
    problems, _ = log_check.check(text, MODULES)
    assert problems == [
        "ipai_plane_connector: TestSchema.test_unique was skipped: websocket-client module is "
        "not installed"
    ]
