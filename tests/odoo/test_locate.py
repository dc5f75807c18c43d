"""scripts/odoo_locate.py: where the Odoo tests find their servers (nothing machine-specific)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "odoo_locate.py"
_spec = importlib.util.spec_from_file_location("odoo_locate_under_test", SCRIPT)
assert _spec and _spec.loader
locate = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = locate
_spec.loader.exec_module(locate)


def fake_odoo(root: Path, major: int) -> Path:
    """A directory shaped like a server checkout: odoo-bin and an importable odoo package
    (19.0's is a namespace package, without __init__.py)."""
    (root / "odoo").mkdir(parents=True)
    if major < 19:
        (root / "odoo" / "__init__.py").write_text("")
    (root / "odoo" / "release.py").write_text(f"version_info = ({major}, 0, 0, 'final', 0, '')\n")
    (root / "odoo-bin").write_text("#!/usr/bin/env python3\n")
    (root / "addons").mkdir()
    return root


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """An environment with no ODOO* variables and a config home of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODOO")}
    env.pop("PLANE_CONNECTOR_ODOO_ENV", None)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env.update(values)
    return env


def test_nothing_configured_is_reported_per_series(tmp_path):
    found, missing = locate.find_all(environ=clean_env(tmp_path))
    assert found == []
    assert set(missing) == {"18", "19"}
    assert "ODOO18_PATH" in missing["18"]


def test_a_checkout_from_the_environment_is_found_and_its_version_checked(tmp_path):
    o18 = fake_odoo(tmp_path / "o18", 18)
    o19 = fake_odoo(tmp_path / "o19", 19)
    env = clean_env(tmp_path, ODOO18_PATH=str(o18), ODOO19_PATH=str(o18),
                    ODOO18_PYTHON=sys.executable)
    found, missing = locate.find_all(environ=env)
    assert [(o.series, o.path, o.python) for o in found] == [("18", o18, sys.executable)]
    assert "is Odoo 18, not 19" in missing["19"]
    assert found[0].addons_dirs == [o18 / "addons"]
    env["ODOO19_PATH"] = str(o19)
    found, missing = locate.find_all(environ=env)
    assert [o.series for o in found] == ["18", "19"] and missing == {}


def test_the_per_user_file_is_read_and_the_environment_wins(tmp_path):
    o18 = fake_odoo(tmp_path / "o18", 18)
    conf = tmp_path / "config" / "plane-connector" / "odoo.env"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"# this machine's Odoo\nexport ODOO18_PATH='{o18}'\n"
                    f"ODOO18_PYTHON={sys.executable}  # its venv\nODOO19_PATH=/nowhere\n")
    found, missing = locate.find_all(environ=clean_env(tmp_path))
    assert [o.path for o in found] == [o18]
    assert "ODOO19_PATH=/nowhere holds no odoo-bin" == missing["19"]
    found, _ = locate.find_all(environ=clean_env(tmp_path, ODOO18_PATH=str(tmp_path / "none")))
    assert found == []


def test_a_python_that_imports_odoo_is_enough(tmp_path):
    o19 = fake_odoo(tmp_path / "o19", 19)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "odoo.pth").write_text(f"{o19}\n")  # what `pip install -e <checkout>` amounts to
    found, missing = locate.find_all(environ=clean_env(tmp_path, ODOO19_VENV=str(venv)))
    assert [(o.series, o.path) for o in found] == [("19", o19)]
    assert found[0].python == str(venv / "bin" / "python")
    found, missing = locate.find_all(
        environ=clean_env(tmp_path, ODOO18_PYTHON=str(venv / "bin" / "python")))
    assert found == [] and "is Odoo 19, not 18" in missing["18"]


def test_a_python_without_odoo_says_so(tmp_path):
    _, missing = locate.find_all(("18",), clean_env(tmp_path, ODOO18_PYTHON=sys.executable))
    assert "cannot import odoo" in missing["18"]
