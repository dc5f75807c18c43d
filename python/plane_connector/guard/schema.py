"""The schema gate: the Odoo model ``plane.webhook.delivery`` declares its unique constraint on
``(delivery_id)`` for its Odoo series, and a live table carries a unique index on it."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from plane_connector.guard.diff import _Repo
from plane_connector.guard.report import (
    CONNECTOR_ADDON,
    DELIVERY_MODEL,
    DELIVERY_TABLE,
    Finding,
    GuardReport,
    GuardUsageError,
)
from plane_connector.secrets import SecretError, dereference_dsn

# NOT DEFERRABLE only: ON CONFLICT DO NOTHING (the delivery claim) cannot use a deferrable
# constraint as its arbiter, so a duplicate would fail at commit instead of being skipped.
_UNIQUE_DELIVERY = re.compile(
    r'\s*unique\s*(?:nulls\s+(?:not\s+)?distinct\s*)?\(\s*"?delivery_id"?\s*\)'
    r"\s*(?:not\s+deferrable\s*)?",
    re.IGNORECASE | re.DOTALL,
)
_INDEX_DELIVERY = re.compile(r'\s*\(\s*"?delivery_id"?\s*\)\s*', re.DOTALL)


@dataclass
class _ModelForms:
    sql_constraints: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)  # models.Constraint / UniqueIndex


def _check_model_source(repo: _Repo, require_model: bool, report: GuardReport) -> None:
    found = False
    for path in repo.files():
        if not path.endswith(".py"):
            continue
        full = repo.root / path
        try:
            source = full.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if DELIVERY_MODEL not in source:
            continue
        try:
            tree = ast.parse(source, filename=path)
        except SyntaxError as exc:
            report.findings.append(Finding(path, exc.lineno, "schema", "cannot parse the file"))
            continue
        for cls, name_line in _delivery_models(tree):
            found = True
            version = _odoo_major(repo.root, full)
            problem = _constraint_problem(_collect_forms(cls.body), version)
            if problem:
                report.findings.append(Finding(path, name_line, "schema", problem))
    if not found:
        addon = any(
            (repo.root / d / CONNECTOR_ADDON).is_dir() for d in ("", "odoo_addons", "addons")
        )
        if require_model or addon:
            report.findings.append(
                Finding(
                    ".",
                    None,
                    "schema",
                    f"no model declares _name = {DELIVERY_MODEL!r} (the dedupe table is gone)",
                )
            )
        else:
            report.notes.append(
                f"no {DELIVERY_MODEL} model in this repository: schema gate skipped"
            )


def _delivery_models(tree: ast.AST) -> Iterator[tuple[ast.ClassDef, int]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            value, target = _assignment(stmt)
            if target == "_name" and _const_str(value) == DELIVERY_MODEL:
                yield node, stmt.lineno


def _assignment(stmt: ast.stmt) -> tuple[ast.expr | None, str | None]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        return stmt.value, target.id if isinstance(target, ast.Name) else None
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.value, stmt.target.id
    return None, None


def _const_str(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) or node is None:
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "unique(" "delivery_id)"
        left, right = _const_str(node.left), _const_str(node.right)
        return left + right if left is not None and right is not None else None
    return None


def _collect_forms(body: Iterable[ast.stmt]) -> _ModelForms:
    forms = _ModelForms()
    for stmt in body:
        # Version switches (`if odoo_version >= 19:`) and try/except live in class bodies too.
        if isinstance(stmt, ast.If):
            nested = _collect_forms([*stmt.body, *stmt.orelse])
        elif isinstance(stmt, ast.Try):
            nested = _collect_forms([*stmt.body, *stmt.orelse, *stmt.finalbody])
            for handler in stmt.handlers:
                more = _collect_forms(handler.body)
                nested.sql_constraints += more.sql_constraints
                nested.constraints += more.constraints
        else:
            value, target = _assignment(stmt)
            if target == "_sql_constraints" and isinstance(value, (ast.List, ast.Tuple)):
                for elt in value.elts:
                    if isinstance(elt, (ast.Tuple, ast.List)) and len(elt.elts) >= 2:
                        definition = _const_str(elt.elts[1])
                        if definition is not None:
                            forms.sql_constraints.append(definition)
            elif target and isinstance(value, ast.Call):
                kind = _call_name(value.func)
                definition = _const_str(value.args[0]) if value.args else None
                if kind in ("Constraint", "UniqueIndex") and definition is not None:
                    forms.constraints.append(f"{kind}:{definition}")
            continue
        forms.sql_constraints += nested.sql_constraints
        forms.constraints += nested.constraints
    return forms


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _constraint_problem(forms: _ModelForms, version: int | None) -> str | None:
    sql_ok = any(_UNIQUE_DELIVERY.fullmatch(d) for d in forms.sql_constraints)
    new_ok = any(
        (kind == "Constraint" and _UNIQUE_DELIVERY.fullmatch(d))
        or (kind == "UniqueIndex" and _INDEX_DELIVERY.fullmatch(d))
        for kind, _, d in (c.partition(":") for c in forms.constraints)
    )
    if version is not None and version >= 19:
        if new_ok:
            return None
        if sql_ok:
            return (
                f"Odoo {version} ignores _sql_constraints: declare "
                "models.Constraint('unique(delivery_id)') for the delivery_id unique constraint"
            )
    elif version is not None:
        if sql_ok:
            return None
        if new_ok:
            return (
                f"Odoo {version} has no models.Constraint: declare "
                "_sql_constraints = [(..., 'unique(delivery_id)', ...)]"
            )
    elif forms.constraints and forms.sql_constraints:
        # Declared both ways (one addon for 18 and 19): each Odoo reads only its own form, so a
        # drop from either branch silently loses the constraint on that series.
        if sql_ok and new_ok:
            return None
        if sql_ok or new_ok:
            missing = "models.Constraint (Odoo 19+)" if sql_ok else "_sql_constraints (Odoo <= 18)"
            return (
                f"{DELIVERY_MODEL} declares unique(delivery_id) in one form only: the "
                f"{missing} declaration lacks it"
            )
    elif sql_ok or new_ok:
        return None
    seen = [d for d in forms.sql_constraints] + [c.partition(":")[2] for c in forms.constraints]
    near = [d.strip() for d in seen if "delivery_id" in d]
    detail = f" (found {near[0]!r}, which does not cover exactly (delivery_id))" if near else ""
    return f"{DELIVERY_MODEL} declares no unique constraint on (delivery_id){detail}"


def _odoo_major(root: Path, model_file: Path) -> int | None:
    folder = model_file.parent
    while True:
        for name in ("__manifest__.py", "__openerp__.py"):
            manifest = folder / name
            if manifest.is_file():
                try:
                    data = ast.literal_eval(manifest.read_text(encoding="utf-8"))
                    version = str(data.get("version", ""))
                except (ValueError, SyntaxError, OSError, AttributeError):
                    return None
                match = re.match(r"(\d+)\.\d+\.\d+\.\d+", version)
                return int(match.group(1)) if match else None
        if folder == root or folder.parent == folder:
            return None
        folder = folder.parent


# --- schema gate: live database -------------------------------------------------------------

_UNIQUE_INDEXES_SQL = """
SELECT ic.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = %s::regclass
  AND i.indisunique AND i.indisvalid AND i.indimmediate
  AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indnkeyatts = 1 AND a.attname = 'delivery_id'
"""


def _check_live_schema(dsn: str, report: GuardReport) -> None:
    try:
        psycopg2 = importlib.import_module("psycopg2")
    except ImportError:
        raise GuardUsageError("--dsn needs psycopg2 (pip install psycopg2-binary)") from None
    try:
        dsn = dereference_dsn(dsn)
    except SecretError as exc:
        raise GuardUsageError(f"--dsn: {exc}") from None
    try:
        conn = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or ["error"])[0]
        raise GuardUsageError(
            f"cannot connect to the database: {first.replace(dsn, '***')}"
        ) from None
    try:
        params = conn.get_dsn_parameters()
        where = (
            f"postgresql://{params.get('user', '')}@{params.get('host', '')}:"
            f"{params.get('port', '')}/{params.get('dbname', '')}"
        )
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)::text", (DELIVERY_TABLE,))
            table = cur.fetchone()[0]
            if table is None:
                report.findings.append(
                    Finding(where, None, "schema", f"live database has no table {DELIVERY_TABLE}")
                )
                return
            cur.execute(_UNIQUE_INDEXES_SQL, (table,))
            rows = cur.fetchall()
    finally:
        conn.close()
    if rows:
        report.notes.append(f"live schema: {table} unique on (delivery_id) via {rows[0][0]}")
    else:
        report.findings.append(
            Finding(
                where,
                None,
                "schema",
                f"live table {table} has no unique constraint or index on exactly (delivery_id) "
                "(valid, not partial, not deferrable)",
            )
        )
