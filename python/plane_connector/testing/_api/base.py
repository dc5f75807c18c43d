"""What every part of the emulator's Plane side shares: Plane's answers, the request context,
and the state the views work on (it lives on the emulator instance)."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from plane_connector.testing._oauth import OAuthServer
from plane_connector.testing._store import PlaneStore
from plane_connector.testing._throttle import RateThrottle
from plane_connector.testing.faults import FaultInjector
from plane_connector.testing.webhook_sender import Webhook, WebhookEvent, WebhookSender

EDITIONS = ("ce", "cloud")
#: Plane releases the emulator plays: the oldest users still run (only ``/issues/`` routes) and
#: the newest recorded (master 4ca6d6c7 reports 1.3.1; ``/work-items/`` and ``/issues/``).
PLANE_VERSIONS = ("1.0.0", "1.3.1")
NEWEST_VERSION = PLANE_VERSIONS[-1]
#: The first release with ``/work-items/`` routes.
WORK_ITEMS_SINCE = (1, 1, 0)
#: ``instance.instance_id`` in the emulator's ``/api/instances/`` (a real one is random): with the
#: ``Server: PlaneEmulator`` header, how a recorder knows it is not talking to Plane.
EMULATOR_INSTANCE_ID = "plane-connector-emulator"
MAX_PER_PAGE = 1000
SERVICE_RATE_LIMIT = 300

# Bodies exactly as Plane answers them (recorded).
NOT_AUTHENTICATED = {"detail": "Authentication credentials were not provided."}
INVALID_KEY = {"detail": "Given API token is not valid"}
NO_PERMISSION = {"detail": "You do not have permission to perform this action."}
NOT_FOUND = {"error": "The requested resource does not exist."}
PAGE_NOT_FOUND = {"error": "Page not found."}
RATE_LIMITED = {"error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"}
SERVER_ERROR = {"error": "Something went wrong please try again later"}
PAYLOAD_INVALID = {"error": "The payload is not valid"}  # an IntegrityError, caught by the view


@dataclass
class _RequestLine:
    """What every view of a request starts with."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class RecordedRequest(_RequestLine):
    """One request as the emulator saw it (``emu.requests``); secrets replaced by their hash."""

    status: int
    auth: str | None  # "api_key" | "bearer" | None
    key_id: str | None  # sha256 hex of the X-API-Key or Bearer value, never the value
    at: float = field(default_factory=time.time)


class _Reply(Exception):
    """Raised inside a view to answer at once (Plane's exception-to-response path)."""

    def __init__(self, status: int, body: Any, kind: str = "normal") -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.kind = kind  # normal | auth | permission


@dataclass
class _Ctx(_RequestLine):
    """Per-request view context."""

    raw_body: bytes
    params: dict[str, str]
    actor_id: str
    route: str

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def csv(self, name: str) -> list[str] | None:
        values = [v for v in (self.q(name) or "").split(",") if v]
        return values or None

    def data(self) -> dict[str, Any]:
        try:
            value = json.loads(self.raw_body or b"{}")
        except (UnicodeDecodeError, ValueError) as exc:
            raise _Reply(400, {"detail": f"JSON parse error - {exc}"}) from exc
        if not isinstance(value, dict):
            raise _Reply(
                400,
                {
                    "non_field_errors": [
                        f"Invalid data. Expected a dictionary, but got {type(value).__name__}."
                    ]
                },
            )
        return value


class ApiBase:
    """The state the views work on (it lives on the emulator instance) and what they ask of it."""

    edition: str
    version: str
    rate_limit: int
    gzip_responses: bool
    store: PlaneStore
    faults: FaultInjector
    throttle: RateThrottle
    oauth: OAuthServer
    _lock: threading.RLock
    _sender: WebhookSender
    _webhooks: dict[str, Webhook]
    _held_events: list[tuple[Webhook, WebhookEvent]]
    _api_keys: dict[str, dict[str, Any]]
    _requests: list[RecordedRequest]

    @property
    def serves_work_items(self) -> bool:
        """Whether this version has the ``/work-items/`` routes (1.1.0 and later)."""
        return version_tuple(self.version) >= WORK_ITEMS_SINCE

    @property
    def checks_project_chars(self) -> bool:
        """Whether project names/identifiers with special characters are refused (400). Not on
        1.0.0, recorded live (tests/contract/recordings/1.0.0/project.*.json)."""
        return self.serves_work_items

    def _instance(self) -> dict[str, Any]:
        """``GET /api/instances/`` as CE answers anyone (a subset of the keys: those a client
        reads, and enough of the rest to keep the shape)."""
        return {
            "config": {"is_self_managed": True, "enable_signup": False,
                       "file_size_limit": 5242880.0, "app_base_url": None},
            "instance": {
                "id": self.store.workspace_id, "instance_id": EMULATOR_INSTANCE_ID,
                "instance_name": "Plane Emulator",
                "current_version": self.version, "latest_version": self.version,
                "edition": "PLANE_COMMUNITY", "is_setup_done": True, "is_telemetry_enabled": False,
                "workspaces_exist": True,
            },
        }  # fmt: skip

    def _require_cloud(self) -> None:
        if self.edition != "cloud":
            raise RuntimeError("OAuth Plane Apps exist only in the cloud edition")


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.0.0"`` -> ``(1, 0, 0)``; ValueError for anything else."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", version.strip())
    if m is None:
        raise ValueError(f"a Plane version is X.Y.Z (e.g. 1.0.0), got {version!r}")
    return tuple(int(g) for g in m.groups())


def _required(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, list[str]]:
    return {n: ["This field is required."] for n in names if n not in data}
