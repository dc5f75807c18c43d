"""The secrets registry check: ssot/secrets/registry.yaml is complete and lists every
``plane.*_ref`` key and ``PLANE_*_REF`` variable the change uses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from plane_connector.guard.diff import _Added, _Repo
from plane_connector.guard.report import (
    CONNECTOR_ADDON,
    DEFAULT_REGISTRY,
    REGISTRY_FIELDS,
    REGISTRY_STORES,
    REQUIRED_ENTRIES,
    Finding,
    GuardReport,
)
from plane_connector.guard.yamlfile import _load_yaml, _YamlError
from plane_connector.secrets import SCHEMES, SecretError, parse

_CONFIG_KEY_USE = re.compile(r"(?<![\w.])plane\.[a-z0-9_]+(?:\.[a-z0-9_]+)*_ref\b")
_ENV_REF_USE = re.compile(r"\bPLANE_[A-Z0-9_]*_REF\b")
_CODE_SUFFIXES = {
    ".py", ".xml", ".csv", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".conf", ".sh",
    ".js", ".ts", ".env", ".rs",
}  # fmt: skip


def _check_registry(
    repo: _Repo, added: list[_Added], path: str | None, report: GuardReport
) -> None:
    rel = path or DEFAULT_REGISTRY
    full = repo.root / rel
    if not full.is_file():
        if path or (repo.root / "ssot").is_dir() or _declares_connector(repo.root):
            report.findings.append(Finding(rel, None, "registry", "secrets registry is missing"))
        else:
            report.notes.append(f"no {rel}: registry check skipped (pass --registry to require it)")
        return
    text = full.read_text(encoding="utf-8")
    try:
        data = _load_yaml(text)
    except _YamlError as exc:
        report.findings.append(Finding(rel, exc.line, "registry", f"unreadable: {exc}"))
        return
    entries = data.get("secrets") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        report.findings.append(Finding(rel, None, "registry", "no `secrets:` mapping"))
        return
    lines = text.splitlines()

    def line_of(name: str) -> int | None:
        pattern = re.compile(rf"^\s*['\"]?{re.escape(name)}['\"]?\s*:")
        return next((i for i, ln in enumerate(lines, start=1) if pattern.match(ln)), None)

    for name in REQUIRED_ENTRIES:
        if name not in entries:
            report.findings.append(Finding(rel, None, "registry", f"entry {name} is missing"))
    config_keys: set[str] = set()
    env_names: set[str] = set()
    for name, entry in entries.items():
        for problem in _entry_problems(entry):
            report.findings.append(Finding(rel, line_of(name), "registry", f"{name}: {problem}"))
        if isinstance(entry, dict):
            config_keys.update(str(k) for k in entry.get("config_keys") or [])
            env_names.update(str(k) for k in entry.get("env") or [])
    reported: set[tuple[str, str]] = set()
    for item in added:
        if PurePosixPath(item.path).suffix.lower() not in _CODE_SUFFIXES:
            continue
        uses = [("config key", k, config_keys) for k in _CONFIG_KEY_USE.findall(item.text)]
        uses += [("variable", v, env_names) for v in _ENV_REF_USE.findall(item.text)]
        for what, used, known in uses:
            if used in known or (item.path, used) in reported:
                continue
            reported.add((item.path, used))
            report.findings.append(
                Finding(
                    item.path,
                    item.line,
                    "registry",
                    f"secret reference {what} {used} is not listed in {rel}",
                )
            )


def _entry_problems(entry: Any) -> Iterator[str]:
    if not isinstance(entry, dict):
        yield "must be a mapping"
        return
    for key in REGISTRY_FIELDS:
        if entry.get(key) in (None, "", []):
            yield f"field {key} is missing"
    if "value" in entry or "values" in entry:
        yield "holds a value: the registry lists names and references only"
    if "secret" in entry and not isinstance(entry["secret"], bool):
        yield "field secret must be true or false"
    stores = entry.get("stores") or []
    if not isinstance(stores, list):
        yield "field stores must be a list"
        stores = []
    unknown = [s for s in stores if s not in REGISTRY_STORES]
    if unknown:
        yield f"unknown store {unknown[0]!r} (known: {', '.join(REGISTRY_STORES)})"
    if "config" in stores and entry.get("secret") is not False:
        yield "store config (a plain value in configuration) is only for entries with secret: false"
    reference = entry.get("reference")
    if isinstance(reference, str) and reference.partition(":")[0] in SCHEMES:
        try:
            parsed = parse(reference)
        except SecretError as exc:
            yield f"reference: {exc}"
        else:
            if stores and parsed.scheme not in stores:
                yield f"reference uses {parsed.scheme}: which is not among its stores"
    elif isinstance(reference, str) and reference.partition(":")[0] not in REGISTRY_STORES:
        yield "reference must be a secret reference (env:, keyring:, vault:, file:)"
    for key in ("config_keys", "env", "consumers"):
        if key in entry and not isinstance(entry[key] or [], list):
            yield f"field {key} must be a list"


def _declares_connector(root: Path) -> bool:
    return (root / "python" / "plane_connector" / "__init__.py").is_file() or any(
        (root / "odoo_addons" / CONNECTOR_ADDON / m).is_file()
        for m in ("__manifest__.py", "__openerp__.py")
    )
