"""The delivery tables have two owners, the wheel's DDL and the Odoo models: they must not drift.

The Odoo model file is read with ``ast`` (no Odoo needed) and held to ``dedupe.schema``: the same
columns, NOT NULL where the model says required, mappable types, the unique constraints (both
the Odoo 19 ``models.Constraint`` and the Odoo 18 ``_sql_constraints`` forms) and the states.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import psycopg2
import pytest
from plane_connector.dedupe import (
    DELIVERY_COLUMNS,
    FINGERPRINT_COLUMNS,
    STATES,
    Column,
    DeliveryRow,
)

MODEL_FILE = (
    Path(__file__).resolve().parents[2]
    / "odoo_addons/ipai_plane_connector/models/plane_webhook_delivery.py"
)
#: Odoo field type -> the PostgreSQL column type Odoo makes for it.
ODOO_TYPES = {
    "Char": "varchar",
    "Text": "text",
    "Integer": "integer",
    "Datetime": "timestamp",
    "Selection": "varchar",
}
MODELS = {
    "plane.webhook.delivery": DELIVERY_COLUMNS,
    "plane.webhook.delivery.fingerprint": FINGERPRINT_COLUMNS,
}


def _models() -> tuple[dict[str, ast.ClassDef], ast.Module]:
    tree = ast.parse(MODEL_FILE.read_text(), str(MODEL_FILE))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if _target(stmt) == "_name" and isinstance(stmt.value, ast.Constant):
                    found[stmt.value.value] = node
    return found, tree


def _target(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        return target.id if isinstance(target, ast.Name) else None
    return None


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """A class body's statements, both branches of an ``if`` included (the per-series forms)."""
    out = []
    for stmt in body:
        if isinstance(stmt, ast.If):
            out += _statements(stmt.body) + _statements(stmt.orelse)
        else:
            out.append(stmt)
    return out


def _fields(cls: ast.ClassDef) -> dict[str, tuple[str, bool]]:
    """``name -> (Odoo field type, required)`` for every ``fields.X(...)`` of the class."""
    out = {}
    for stmt in _statements(cls.body):
        value = stmt.value if isinstance(stmt, ast.Assign) else None
        if (
            _target(stmt)
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and isinstance(value.func.value, ast.Name)
            and value.func.value.id == "fields"
        ):
            required = any(
                k.arg == "required" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in value.keywords
            )
            out[_target(stmt)] = (value.func.attr, required)
    return out


def _unique_constraints(cls: ast.ClassDef) -> tuple[dict[str, str], dict[str, str]]:
    """``constraint name -> column`` in the ``models.Constraint`` form and the
    ``_sql_constraints`` form."""

    def column(definition: str) -> str:
        assert definition.startswith("UNIQUE (") and definition.endswith(")"), definition
        return definition[len("UNIQUE (") : -1]

    new, old = {}, {}
    for stmt in _statements(cls.body):
        name, value = _target(stmt), getattr(stmt, "value", None)
        if name == "_sql_constraints":
            for item in ast.literal_eval(value):
                old[item[0]] = column(item[1])
        elif (
            name
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "Constraint"
        ):
            new[name.lstrip("_")] = column(ast.literal_eval(value.args[0]))
    return new, old


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_odoo_model_declares_the_wheels_columns(model: str) -> None:
    classes, _ = _models()
    assert model in classes, f"{MODEL_FILE.name} no longer declares {model}"
    declared = _fields(classes[model])
    columns: tuple[Column, ...] = MODELS[model]
    assert sorted(declared) == sorted(c.name for c in columns)
    for c in columns:
        odoo_type, required = declared[c.name]
        assert ODOO_TYPES.get(odoo_type) == c.type, (c.name, odoo_type, c.type)
        assert required == c.required, f"{model}.{c.name}: required={required}, DDL {c}"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_odoo_model_has_the_wheels_unique_constraints(model: str) -> None:
    classes, _ = _models()
    wanted = {f"{c.name}_uniq": c.name for c in MODELS[model] if c.unique}
    assert wanted, "the DDL declares no unique key"
    new, old = _unique_constraints(classes[model])
    assert new == wanted, "the Odoo 19 form (models.Constraint)"
    assert old == wanted, "the Odoo 18 form (_sql_constraints)"


def test_the_odoo_selection_has_the_wheels_states() -> None:
    classes, tree = _models()
    (state,) = [
        s.value
        for s in _statements(classes["plane.webhook.delivery"].body)
        if _target(s) == "state"
    ]
    assert isinstance(state.args[0], ast.Name)
    (states,) = [s.value for s in tree.body if _target(s) == state.args[0].id]
    assert tuple(key for key, _ in ast.literal_eval(states)) == STATES


PG_TYPES = {
    "varchar": "character varying",
    "text": "text",
    "integer": "integer",
    "timestamp": "timestamp without time zone",
}


def test_the_wheels_postgres_ddl_is_the_declared_one(pg_dsn, pg_schema, pg_store) -> None:
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        for table, columns in (
            ("plane_webhook_delivery", DELIVERY_COLUMNS),
            ("plane_webhook_delivery_fingerprint", FINGERPRINT_COLUMNS),
        ):
            cur.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s AND column_name <> 'id'",
                (pg_schema, table),
            )
            found = {name: (kind, nullable) for name, kind, nullable in cur.fetchall()}
            assert found == {
                c.name: (PG_TYPES[c.type], "NO" if c.required else "YES") for c in columns
            }


def test_a_fetched_row_has_the_declared_columns_in_order() -> None:
    assert [f.name for f in dataclasses.fields(DeliveryRow)] == [
        "id",
        *(c.name for c in DELIVERY_COLUMNS),
    ]
