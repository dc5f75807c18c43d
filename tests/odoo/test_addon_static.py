"""Static checks of the Odoo addons for the traps that make them fail silently on 18.0 or 19.0.

These run without Odoo; scripts/odoo-tests.sh installs the addons on real 18.0 and 19.0 servers.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET  # noqa: S405 - our own files
from pathlib import Path

import pytest

ADDONS = Path(__file__).resolve().parents[2] / "odoo_addons"
ADDON_DIRS = sorted(p.parent for p in ADDONS.glob("*/__manifest__.py"))
# ir.cron fields that exist in both 18.0 and 19.0 (numbercall/doall are gone since 17/18).
CRON_FIELDS = {"name", "model_id", "state", "code", "interval_number", "interval_type",
               "active", "priority", "user_id", "nextcall"}


def _manifest(addon: Path) -> dict:
    return ast.literal_eval((addon / "__manifest__.py").read_text(encoding="utf-8"))


def _ids(paths):
    return [p.name for p in paths]


def test_the_addons_exist():
    names = {p.name for p in ADDON_DIRS}
    assert {"ipai_plane_connector", "ipai_bir_plane_sync"} <= names


@pytest.mark.parametrize("addon", ADDON_DIRS, ids=_ids(ADDON_DIRS))
def test_manifest_is_series_free_and_complete(addon):
    manifest = _manifest(addon)
    # "18.0.1.0.0" makes the addon uninstallable on 19.0 (and the reverse), silently.
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"]), manifest["version"]
    assert manifest["license"] == "LGPL-3"
    assert "plane_connector" in manifest["external_dependencies"]["python"]
    for data in manifest.get("data", []):
        assert (addon / data).is_file(), f"{addon.name}: missing data file {data}"


@pytest.mark.parametrize("addon", ADDON_DIRS, ids=_ids(ADDON_DIRS))
def test_views_valid_in_both_series(addon):
    xmls = sorted(addon.rglob("*.xml"))
    assert xmls, f"{addon.name}: no XML found (a glob that matches nothing passes any check)"
    for xml in xmls:
        root = ET.parse(xml).getroot()  # noqa: S314 - our own files
        assert not root.findall(".//tree"), f"{xml}: <tree> is <list> since 18.0"
        assert not root.findall(".//*[@attrs]"), f"{xml}: attrs= is gone since 17.0"
        assert not root.findall(".//*[@states]"), f"{xml}: states= is gone since 17.0"
        for action in root.findall(".//record[@model='ir.actions.act_window']"):
            for target in action.findall("field[@name='target']"):
                assert target.text != "inline", f"{xml}: target 'inline' does not exist in 19.0"
        for cron in root.findall(".//record[@model='ir.cron']"):
            fields = {f.get("name") for f in cron.findall("field")}
            extra = fields - CRON_FIELDS
            assert not extra, f"{xml}: ir.cron fields not in both 18.0 and 19.0: {extra}"


@pytest.mark.parametrize("addon", ADDON_DIRS, ids=_ids(ADDON_DIRS))
def test_sql_constraints_also_declared_for_19(addon):
    # 19.0 ignores _sql_constraints: each must sit in the else branch of a models.Constraint
    # declaration, never alone.
    pys = sorted(addon.rglob("*.py"))
    assert pys, f"{addon.name}: no Python file found"
    for py in pys:
        text = py.read_text(encoding="utf-8")
        if "_sql_constraints = [" not in text:
            continue
        assert 'if hasattr(models, "Constraint"):' in text, py
        assert text.count("_sql_constraints = [") <= text.count('hasattr(models, "Constraint")'), py


@pytest.mark.parametrize("addon", ADDON_DIRS, ids=_ids(ADDON_DIRS))
def test_test_classes_run_post_install(addon):
    tests = list((addon / "tests").glob("test_*.py"))
    assert tests, f"{addon.name} has no tests"
    init = (addon / "tests" / "__init__.py").read_text(encoding="utf-8")
    for test in tests:
        assert test.stem in init, f"{test} is not imported by tests/__init__.py (never runs)"
        text = test.read_text(encoding="utf-8")
        classes = re.findall(r"^class (\w+)\(", text, re.M)
        tagged = re.findall(
            # further tags allowed (the browser tours add one the test script selects on)
            r'^@tagged\("post_install", "-at_install"(?:, \w+)*\)\nclass (\w+)\(', text, re.M
        )
        assert set(classes) == set(tagged), f"{test}: untagged classes {set(classes) - set(tagged)}"
