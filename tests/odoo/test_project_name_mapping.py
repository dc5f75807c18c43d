"""The Odoo -> Plane project name and identifier mapping (pure functions, no Odoo needed).

Plane CE refuses ``& + , : ; $ ^ } { * = ? @ # | ' < > . ( ) % ! -`` in project names and
identifiers (400), which ordinary Odoo names contain. The table is checked against the same
rule the emulator enforces, and that rule against the live recordings."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "project_sync_mapping", ROOT / "odoo_addons/ipai_plane_project_sync/mapping.py")
mapping = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mapping)  # type: ignore[union-attr]

from plane_connector.testing._api import FORBIDDEN_PROJECT_CHARS  # noqa: E402

TABLE = [
    ("R&D", "R and D", "RD"),
    ("ACME Inc.", "ACME Inc", "AI"),
    ("Website - Phase 2 (2026)", "Website Phase 2 2026", "WP22"),
    ("R&D: Website (Phase 2) - ACME Inc.", "R and D Website Phase 2 ACME Inc", "RDWP2AI"),
    ("Client's site", "Clients site", "CS"),
    ("Release 2.1 / QA", "Release 2_1 / QA", "R21Q"),
    ("50% off!", "50 percent off", "5O"),
    ("C++ rewrite", "C plus plus rewrite", "CR"),
    ("support@acme", "support at acme", "SA"),
    ("Über Projekt", "Über Projekt", "UP"),
    ("Ops", "Ops", "OPS"),
    ("  spaced\tout \n name ", "spaced out name", "SON"),
    ("!!!", "Odoo project", "ODOO"),
    ("", "Odoo project", "ODOO"),
    (None, "Odoo project", "ODOO"),
]


@pytest.mark.parametrize(("odoo", "plane", "identifier"), TABLE)
def test_odoo_names_map_to_valid_readable_plane_names(odoo, plane, identifier) -> None:
    name = mapping.plane_project_name(odoo)
    assert name == plane
    assert not FORBIDDEN_PROJECT_CHARS.match(name) and name == name.strip() and name
    assert mapping.plane_project_name(name) == name, "idempotent"
    ident = mapping.plane_identifier(odoo or "")
    assert ident == identifier
    assert re.fullmatch(r"[A-Z0-9]{1,12}", ident)


def test_every_forbidden_character_is_mapped() -> None:
    for char in mapping.PLANE_FORBIDDEN_CHARS:
        name = mapping.plane_project_name(f"a{char}b")
        assert not FORBIDDEN_PROJECT_CHARS.match(name), (char, name)
    assert set(mapping.PLANE_FORBIDDEN_CHARS) == set("&+,:;$^}{*=?@#|'<>.()%!-")


def test_length_limits() -> None:
    words = " ".join(["word"] * 80)  # 399 characters
    name = mapping.plane_project_name(words)
    assert len(name) <= 255 and name.endswith("word") and mapping.plane_project_name(name) == name
    assert len(mapping.plane_project_name("x" * 300)) == 255
    assert len(mapping.unique_project_name("y" * 255, {"y" * 255})) == 255
    assert mapping.plane_identifier("Marketing Launch", {"ML"}) == "ML2"
    taken = {"ML"} | {f"ML{n}" for n in range(2, 40)}
    assert len(mapping.plane_identifier("Marketing Launch", taken)) <= 12


def test_unique_names_are_case_sensitive_like_plane() -> None:
    assert mapping.unique_project_name("R and D", {"R and D"}) == "R and D 2"
    assert mapping.unique_project_name("R and D", {"R and D", "R and D 2"}) == "R and D 3"
    assert mapping.unique_project_name("R and D", {"r and d"}) == "R and D"


def test_the_description_keeps_the_full_odoo_name() -> None:
    assert "R&D: Website (Phase 2) - ACME Inc." in mapping.plane_project_description(
        "R&D: Website (Phase 2) - ACME Inc.")
