"""What the guard reports, and the names it checks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

from plane_connector._optional import require
from plane_connector.secrets import SCHEMES

DEFAULT_REGISTRY = "ssot/secrets/registry.yaml"
DEFAULT_ALLOWLIST = "ssot/secrets/allowlist.yaml"
REQUIRED_ENTRIES = ("plane_api_key", "plane_webhook_secret")
DELIVERY_MODEL = "plane.webhook.delivery"
DELIVERY_TABLE = "plane_webhook_delivery"
# The addon that declares the delivery model; where it exists the schema gate may not be skipped.
CONNECTOR_ADDON = "ipai_plane_connector"
# Besides the reference schemes: values the connector writes itself (encrypted in Odoo's
# database) and, for identifiers that are not secret, plain configuration.
REGISTRY_STORES = (*SCHEMES, "odoo_db_encrypted", "config")
REGISTRY_FIELDS = ("description", "secret", "stores", "reference", "consumers", "rotation")

MAX_FILE_BYTES = 5 * 1024 * 1024


class GuardUsageError(Exception):
    """The guard cannot run as asked (not a git repository, unknown base, bad allowlist...)."""


@dataclass(frozen=True)
class Finding:
    """One problem; ``str()`` is ``path:line: kind: message`` and never holds a secret."""

    path: str
    line: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class GuardReport:
    """Findings (fail the guard), notes (informational) and what was scanned."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: why", each also a note
    files_scanned: int = 0
    lines_scanned: int = 0
    allowlisted: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.findings

    def skip(self, path: str, why: str) -> None:
        """Record a file the secret scan did not read (every one is reported)."""
        self.skipped.append(f"{path}: {why}")
        self.notes.append(f"skipped {path} ({why}): not scanned for secrets")


def require_extra(module: str, purpose: str) -> ModuleType:
    """A library of the ``[guard]`` extra, or GuardUsageError (exit 2) saying how to install it."""
    try:
        return require(module, "guard", purpose)
    except ImportError as exc:
        raise GuardUsageError(str(exc)) from None
