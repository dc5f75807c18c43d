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
#: The one addon that knows the plane_connector wheel; every other one is a domain module.
CONNECTOR = "ipai_plane_connector"
DOMAIN_DIRS = [p for p in ADDON_DIRS if p.name != CONNECTOR]
WHEEL = "plane_connector"


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
    if addon.name == CONNECTOR:
        assert WHEEL in manifest["external_dependencies"]["python"]
    else:
        # A domain module reaches Plane through the connector, which declares the wheel.
        assert CONNECTOR in manifest["depends"]
        assert WHEEL not in manifest.get("external_dependencies", {}).get("python", [])
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


def _wheel_imports(source: str) -> list[str]:
    """Every way ``source`` reaches the plane_connector wheel: ``import``, ``from … import``
    (absolute; ``from . import plane_connector`` is the module's own file), and a string
    naming it handed to anything (``importlib.import_module("plane_connector")``,
    ``__import__``, ``sys.modules[...]``)."""
    def is_wheel(name) -> bool:
        return isinstance(name, str) and (name == WHEEL or name.startswith(WHEEL + "."))

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {alias.name}" for alias in node.names
                      if is_wheel(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and is_wheel(node.module):
            found.append(f"line {node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Constant) and is_wheel(node.value):
            found.append(f"line {node.lineno}: the string {node.value!r}")
    return found


def test_the_wheel_check_sees_every_form():
    for source in ("import plane_connector", "import plane_connector.dedupe as d",
                   "from plane_connector import PlaneError",
                   "from plane_connector.testing import PlaneEmulator",
                   "import importlib\nimportlib.import_module('plane_connector.webhooks')",
                   "__import__('plane_connector')"):
        assert _wheel_imports(source), source
    for source in ("from . import plane_connector", "from .plane_connector import X",
                   "from odoo.addons.ipai_plane_connector.exceptions import PlaneError",
                   "x = 'plane.connector'"):
        assert not _wheel_imports(source), source


@pytest.mark.parametrize("addon", DOMAIN_DIRS, ids=_ids(DOMAIN_DIRS))
def test_domain_modules_import_nothing_from_the_wheel(addon):
    # The connector addon is their face (docs/domain-modules.md): errors from its
    # exceptions module, everything else from plane.connector, tests from its tests.common.
    pys = sorted(addon.rglob("*.py"))
    assert pys, f"{addon.name}: no Python file found"
    found = {str(py.relative_to(ADDONS)): _wheel_imports(py.read_text(encoding="utf-8"))
             for py in pys}
    assert not {k: v for k, v in found.items() if v}


def test_the_exceptions_face_is_the_wheels_own_classes():
    # ``except NotFoundError`` in a domain module must catch what the client raises.
    import importlib.util

    import plane_connector
    from plane_connector.server import MissingRouteError

    spec = importlib.util.spec_from_file_location(
        "_face_exceptions", ADDONS / CONNECTOR / "exceptions.py")
    face = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(face)
    errors = {name for name in dir(face) if name.endswith("Error")}
    assert errors == {name for name in plane_connector.__all__ if name.endswith("Error")} | {
        "MissingRouteError"}
    for name in errors - {"MissingRouteError"}:
        assert getattr(face, name) is getattr(plane_connector, name), name
    assert face.MissingRouteError is MissingRouteError
# -- the connector's settings table (ipai_plane_connector/settings.py) is the only source

CONNECTOR_DIR = ADDONS / CONNECTOR


def _settings_rows() -> dict[str, dict]:
    """The rows of ``SETTINGS``: module-level ``NAME = Setting(name, param, **columns)`` with
    literal arguments (a validator is kept as its function's name)."""
    tree = ast.parse((CONNECTOR_DIR / "settings.py").read_text(encoding="utf-8"))
    rows = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "Setting"):
            continue
        call = node.value
        name, param = (ast.literal_eval(a) for a in call.args)
        row = {"name": name, "param": param, "field": None, "option": None,
               "secret_ref": False, "allow_option": None, "default": "", "validator": None}
        for kw in call.keywords:
            row[kw.arg] = (kw.value.id if kw.arg == "validator" else ast.literal_eval(kw.value))
        rows[node.targets[0].id] = row
    table = next(n for n in tree.body if isinstance(n, ast.AnnAssign)
                 and getattr(n.target, "id", None) == "SETTINGS")
    listed = [elt.id for elt in table.value.elts]
    assert sorted(listed) == sorted(rows), "a row is missing from SETTINGS (or not a row)"
    return rows


def test_settings_rows_spell_each_setting_one_way():
    rows = _settings_rows()
    assert len(rows) >= 13, "the table lost rows (or the parser no longer finds them)"
    for const, row in rows.items():
        name = row["name"]
        assert const == name.upper(), const
        assert row["param"] == f"plane.{name}", row
        assert row["field"] in (None, f"plane_{name}"), row
        assert row["option"] in (None, f"plane_{name}"), row
        # A secret reference is checked (reference + policy) and the operator may fix it; its
        # own pattern option is the one the wheel's policy reads (issue 21.3).
        if row["secret_ref"]:
            assert row["option"] and row["validator"] == "check_reference", row
            assert row["allow_option"] == f"plane_secret_{name}_allow", row
        else:
            assert row["allow_option"] is None, row


def test_settings_rows_match_the_wheel_policy():
    import fnmatch

    from plane_connector import secrets

    rows = _settings_rows().values()
    assert {r["name"]: r["allow_option"] for r in rows if r["secret_ref"]} == \
        secrets.SETTING_OPTIONS
    # An operator option read from the environment (PLANE_API_KEY_REF, PLANE_BASE_URL…) must
    # never be resolvable as a secret: the wheel's MACHINERY_ENV covers every one.
    for row in rows:
        if row["option"]:
            variable = row["option"].upper()
            assert any(fnmatch.fnmatchcase(variable, p) for p in secrets.MACHINERY_ENV), variable


def _config_parameter_fields(path: Path) -> dict[str, ast.expr]:
    """Field name -> the ``config_parameter=`` expression of each field declared in ``path``."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            for kw in node.value.keywords:
                if kw.arg == "config_parameter":
                    found[node.targets[0].id] = kw.value
    return found


def test_settings_fields_are_the_table():
    rows = _settings_rows()
    path = CONNECTOR_DIR / "models" / "res_config_settings.py"
    declared = _config_parameter_fields(path)
    on_page = {r["field"]: const for const, r in rows.items() if r["field"]}
    assert set(declared) == set(on_page), "Settings > Plane fields and the table differ"
    for field, expr in declared.items():
        # config_parameter=<ROW>.param: the key is never spelled in the model.
        assert isinstance(expr, ast.Attribute) and expr.attr == "param", field
        assert getattr(expr.value, "id", None) == on_page[field], field
    text = path.read_text(encoding="utf-8")
    for row in rows.values():
        if row["field"] and row["option"]:
            assert f"{row['field']}_operator = fields.Boolean(" in text, row["field"]


def test_settings_names_are_written_only_in_the_table():
    rows = _settings_rows().values()
    names = {r["param"] for r in rows} | {r["option"] for r in rows if r["option"]} | {
        r["allow_option"] for r in rows if r["allow_option"]}
    pys = [p for p in ADDONS.rglob("*.py") if "tests" not in p.parts
           and p != CONNECTOR_DIR / "settings.py"]
    assert pys
    for py in pys:
        tree = ast.parse(py.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names:
                raise AssertionError(f"{py}:{node.lineno}: {node.value!r} is spelled outside "
                                     "ipai_plane_connector/settings.py: use the table's row")
            if isinstance(node, ast.ImportFrom) and py.name != "plane_runtime.py":
                imported = [node.module or "", *(a.name for a in node.names)]
                assert not any(m.endswith("plane_runtime") for m in imported), (
                    f"{py}: imports the deprecated plane_runtime")


def test_plane_config_reads_every_row_and_operator_option():
    tree = ast.parse((CONNECTOR_DIR / "models" / "plane_connector.py").read_text(encoding="utf-8"))
    func = next(n for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef) and n.name == "_plane_config")
    names = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
    calls = {getattr(n.func, "id", getattr(n.func, "attr", None))
             for n in ast.walk(func) if isinstance(n, ast.Call)}
    assert {"SETTINGS", "OPERATOR_SETTINGS", "SECRET_SETTINGS"} <= names
    assert {"get_param", "operator_option"} <= calls
    for call in (n for n in ast.walk(func) if isinstance(n, ast.Call)):
        if getattr(call.func, "attr", None) == "get_param":
            assert not isinstance(call.args[0], ast.Constant), "a key spelled in _plane_config"


def test_docs_list_every_setting():
    text = (ADDONS.parent / "docs" / "readme" / "odoo.md").read_text(encoding="utf-8")
    for row in _settings_rows().values():
        assert f"`{row['param']}`" in text, row["param"]
        if row["option"]:
            assert f"`{row['option']}`" in text, row["option"]
