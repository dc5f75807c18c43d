"""The secrets / schema guard behind ``plane-connector guard``.

Run from a repository root against a base revision, it fails (naming file and line, never printing
a secret) on:

- a secret in the lines the diff adds (Plane API keys, webhook secrets, OAuth tokens, private
  keys, credentials in URLs, high-entropy literals assigned to secret-like names), unless the
  exact value is in the reviewed allowlist ``ssot/secrets/allowlist.yaml``;
- a secrets registry ``ssot/secrets/registry.yaml`` that is missing, malformed, lacks a required
  entry, or does not list a ``plane.*_ref`` config key / ``PLANE_*_REF`` variable the diff uses;
- the Odoo model ``plane.webhook.delivery`` without its unique constraint on exactly
  ``(delivery_id)`` (Odoo 19: ``models.Constraint``; up to 18: ``_sql_constraints``), and, given a
  DSN, a live table ``plane_webhook_delivery`` without a unique index on exactly that column.

The library returns a :class:`GuardReport`; printing is the CLI's job.

The package, by job: :mod:`.diff` (what the change adds, read from git with unidiff),
:mod:`.scan` (secrets and the allowlist), :mod:`.registry`, :mod:`.schema` (model source and live
table), :mod:`.yamlfile` and :mod:`.report`; imports run from here down to them, never back.
"""

from __future__ import annotations

import os
from pathlib import Path

from plane_connector.guard.diff import _Repo
from plane_connector.guard.registry import _check_registry
from plane_connector.guard.report import (
    CONNECTOR_ADDON,
    DEFAULT_ALLOWLIST,
    DEFAULT_REGISTRY,
    DELIVERY_MODEL,
    DELIVERY_TABLE,
    MAX_FILE_BYTES,
    REGISTRY_FIELDS,
    REGISTRY_STORES,
    REQUIRED_ENTRIES,
    Finding,
    GuardReport,
    GuardUsageError,
)
from plane_connector.guard.scan import _load_allowlist, _scan_key_stores, _scan_secrets
from plane_connector.guard.schema import _check_live_schema, _check_model_source

__all__ = [
    "CONNECTOR_ADDON",
    "DEFAULT_ALLOWLIST",
    "DEFAULT_REGISTRY",
    "DELIVERY_MODEL",
    "DELIVERY_TABLE",
    "MAX_FILE_BYTES",
    "REGISTRY_FIELDS",
    "REGISTRY_STORES",
    "REQUIRED_ENTRIES",
    "Finding",
    "GuardReport",
    "GuardUsageError",
    "run",
]


def run(
    root: str | os.PathLike[str],
    base: str,
    *,
    include_untracked: bool = True,
    dsn: str | None = None,
    registry: str | None = None,
    allowlist: str | None = None,
    require_model: bool = False,
) -> GuardReport:
    """Run every check on the repository at ``root`` against ``base`` (any git revision or tree)."""
    repo = _Repo(Path(root))
    report = GuardReport()
    added = list(repo.added_lines(base, include_untracked, report))
    allowed = _load_allowlist(repo, allowlist)
    used = _scan_secrets(added, allowed, report)
    used |= _scan_key_stores(repo, allowed, report)
    if repo.full_scan:
        # Only a whole-tree scan can tell that an entry no longer matches anything.
        for entry in allowed:
            if entry not in used:
                report.notes.append(
                    f"allowlist entry for {entry.path} (sha256 {entry.sha256[:12]}…) matched "
                    "nothing: remove it if the value is gone"
                )
    _check_registry(repo, added, registry, report)
    _check_model_source(repo, require_model, report)
    if dsn:
        _check_live_schema(dsn, report)
    return report
