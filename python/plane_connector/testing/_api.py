"""Plane's behaviour behind the emulator's HTTP layer: auth, throttle, views, paginator, OAuth.

``PlaneApi`` is the request-handling half of :class:`~plane_connector.testing.PlaneEmulator`;
the emulator adds the lifecycle and the test-facing helpers.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from plane_connector.testing import _store
from plane_connector.testing._http import (
    Response,
    finish,
    gzip_response,
    mangle,
    oauth_response,
    proxy_error,
)
from plane_connector.testing._oauth import OAuthError, OAuthServer
from plane_connector.testing._store import (
    PRIORITIES,
    STATE_GROUPS,
    Entity,
    PlaneStore,
    WorkItem,
    compact,
)
from plane_connector.testing._throttle import RateThrottle
from plane_connector.testing.faults import DOWN, Fault, FaultInjector
from plane_connector.testing.webhook_sender import Webhook, WebhookEvent, WebhookSender

log = logging.getLogger("plane_connector.testing.emulator")

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
#: Project.FORBIDDEN_IDENTIFIER_CHARS_PATTERN (CE 4ca6d6c7), applied with re.match to project
#: names and identifiers on create and update.
FORBIDDEN_PROJECT_CHARS = re.compile(r"^.*[&+,:;$^}{*=?@#|'<>.()%!-].*$")
PROJECT_NAME_TAKEN = {"name": "The project name is already taken"}

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_WS = r"/api/v1/workspaces/(?P<slug>[^/]+)"
_P = _WS + rf"/projects/(?P<pid>{_UUID})"
_WI = r"(?:work-items|issues)"
_GP = ("GET", "POST")
_GPD = ("GET", "PATCH", "DELETE")
ROUTES: list[tuple[re.Pattern[str], tuple[str, ...], str]] = [
    (re.compile(p + r"\Z"), methods, name)
    for p, methods, name in (
        (r"/api/v1/users/me/", ("GET",), "me"),
        (_WS + r"/members/", ("GET",), "workspace_members"),
        (_WS + r"/projects/", _GP, "projects"),
        (_P + r"/", _GPD, "project"),
        (_P + r"/archive/", ("POST", "DELETE"), "project_archive"),
        (_P + r"/(?:project-)?members/", ("GET",), "project_members"),
        (_P + r"/states/", _GP, "states"),
        (_P + rf"/states/(?P<oid>{_UUID})/", _GPD, "state"),
        (_P + r"/labels/", _GP, "labels"),
        (_P + rf"/labels/(?P<oid>{_UUID})/", _GPD, "label"),
        (_P + rf"/{_WI}/", _GP, "work_items"),
        (_P + rf"/{_WI}/(?P<oid>{_UUID})/", _GPD, "work_item"),
        (_P + rf"/{_WI}/(?P<iid>{_UUID})/comments/", _GP, "comments"),
        (_P + rf"/{_WI}/(?P<iid>{_UUID})/comments/(?P<oid>{_UUID})/", _GPD, "comment"),
        (_P + r"/cycles/", _GP, "cycles"),
        (_P + rf"/cycles/(?P<oid>{_UUID})/", _GPD, "cycle"),
        (_P + rf"/cycles/(?P<cid>{_UUID})/cycle-issues/", _GP, "cycle_items"),
        (_P + rf"/cycles/(?P<cid>{_UUID})/cycle-issues/(?P<oid>{_UUID})/", ("GET", "DELETE"),
         "cycle_item"),
        (_P + r"/modules/", _GP, "modules"),
        (_P + rf"/modules/(?P<oid>{_UUID})/", _GPD, "module"),
        (_P + rf"/modules/(?P<cid>{_UUID})/module-issues/", _GP, "module_items"),
        (_P + rf"/modules/(?P<cid>{_UUID})/module-issues/(?P<oid>{_UUID})/", ("DELETE",),
         "module_item"),
        (_WS + rf"/{_WI}/search/", ("GET",), "search"),
        (_WS + rf"/{_WI}/(?P<ident>[^/]+)-(?P<seq>[^/]+)/", ("GET",), "by_identifier"),
    )
]  # fmt: skip
ORDER_BY_ALLOWED = (
    "created_at", "updated_at", "sequence_id", "name", "priority", "state__group", "state__name",
    "sort_order", "start_date", "target_date", "completed_at", "labels__name",
    "assignees__first_name",
)  # fmt: skip

# Detail views that only read, patch the listed fields and delete: (webhook event, store table,
# writable fields).
_EXT = ("external_id", "external_source")
SIMPLE_DETAILS: dict[str, tuple[str | None, str, tuple[str, ...]]] = {
    "state": (None, "states", ("name", "color", "group", "description", *_EXT)),
    "label": (None, "labels", ("name", "color", "description", "parent", *_EXT)),
    "cycle": ("cycle", "cycles", ("name", "description", "start_date", "end_date", *_EXT)),
    "module": (
        "module",
        "modules",
        ("name", "description", "start_date", "target_date", "status", "lead", "members", *_EXT),
    ),
}


@dataclass
class RecordedRequest:
    """One request as the emulator saw it (``emu.requests``); secrets replaced by their hash."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
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
class _Ctx:
    """Per-request view context."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
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


class PlaneApi:
    """Request handling and Plane-side effects; state lives on the emulator instance."""

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

    # -- webhooks (internal) -----------------------------------------------------------------
    def _webhook_data(self, event: str, entity: Entity) -> dict[str, Any]:
        if event == "issue" and isinstance(entity, WorkItem):
            return self.store.webhook_work_item(entity)
        return dict(entity.data)

    def _activity(
        self, actor_id: str, field_: str | None = None, old: Any = None, new: Any = None
    ) -> dict[str, Any]:
        return {
            "field": field_,
            "new_value": new,
            "old_value": old,
            "actor": self.store.user_lite(actor_id),
            "old_identifier": None,
            "new_identifier": None,
        }

    def _emit_created(self, event: str, entity: Entity, actor_id: str) -> None:
        self._dispatch_event(WebhookEvent(
            event, "created", self._webhook_data(event, entity), self._activity(actor_id),
            entity.id, self._v2(event, "created", entity),
        ))  # fmt: skip

    def _emit_deleted(self, event: str, entity: Entity, actor_id: str) -> None:
        # Plane's v1 webhooks (CE 4ca6d6c7, web app and API alike) report a deletion only for
        # projects: deleting a work item, comment, cycle or module queues the activity log and
        # nothing else (checked live). The v2 payloads of Plane's docs (cloud) do have
        # `*.deleted` events.
        versions = ("v1", "v2") if event == "project" else ("v2",)
        self._dispatch_event(WebhookEvent(
            event, "deleted", {"id": entity.id}, self._activity(actor_id), entity.id,
            self._v2(event, "deleted", entity),
        ), versions=versions)  # fmt: skip

    def _emit_updated(
        self,
        event: str,
        entity: Entity,
        before: dict[str, Any],
        requested: dict[str, Any],
        actor_id: str,
    ) -> None:
        # Plane's model_activity: one delivery per requested key whose value differs from the
        # instance before the save, each carrying the whole current object.
        changed = [k for k in requested if k in before and before[k] != requested[k]]
        if not changed:
            return
        data = self._webhook_data(event, entity)
        for key in changed:
            v1 = WebhookEvent(
                event,
                "updated",
                data,
                self._activity(actor_id, key, before[key], requested[key]),
                entity.id,
            )
            self._dispatch_event(v1, versions=("v1",))
        # v2 (cloud): one event per update carrying the old values of the changed fields.
        previous = {_store.V2_NAMES.get(k, k): _store.pg_text(before[k]) for k in changed}
        v2 = WebhookEvent(event, "updated", data, self._activity(actor_id), entity.id,
                          self._v2(event, "updated", entity, previous))  # fmt: skip
        self._dispatch_event(v2, versions=("v2",))

    def _v2(
        self, event: str, action: str, entity: Entity, previous: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The Cloud v2 view of a change (None in CE, which has no v2 webhooks)."""
        if self.edition != "cloud":
            return None
        if event == "issue_comment":
            item = self.store.find_work_item(entity.data["issue"])
            comment = entity.data
            row = {
                "id": comment["issue"],
                "name": item.data["name"] if item else None,
                "comment": _store.jsonb_order({
                    "id": comment["id"], "access": comment["access"],
                    "actor_id": comment["actor"], "issue_id": comment["issue"],
                    "edited_at": comment["edited_at"],
                    "comment_stripped": _store.strip_html(comment["comment_html"]),
                }),
            }  # fmt: skip
            entity_id = comment["issue"]
        else:
            row = _store.v2_row(entity.data, work_item=event == "issue")
            entity_id = entity.id
        if action == "deleted":
            data, previous = {}, row  # the docs: the full record before deletion
        else:
            data = row
        return {
            "event": f"{_store.V2_EVENT_PREFIX[event]}.{action}",
            "entity_type": _store.V2_ENTITY_TYPES[event],
            "entity_id": entity_id,
            "data": data,
            "previous_attributes": previous or {},
        }

    def _dispatch_event(self, ev: WebhookEvent, versions: tuple[str, ...] = ("v1", "v2")) -> None:
        hooks = [
            h for h in self._webhooks.values()
            if h.is_active and ev.event in h.events and h.version in versions
        ]  # fmt: skip
        if not hooks:
            return
        target = f"{ev.event}.{ev.action}"
        duplicate = self.faults.take("WEBHOOK", target, ("webhook_duplicate",))
        reorder = self.faults.take("WEBHOOK", target, ("webhook_reorder",))
        for hook in hooks:
            if reorder is not None:
                self._held_events.append((hook, ev))
            else:
                self._sender.enqueue(hook, ev)
                if duplicate is not None:
                    self._sender.enqueue(hook, ev)
        if reorder is not None and reorder.count == 0:
            self.flush_held_webhooks()

    def flush_held_webhooks(self) -> None:
        """Send events held by a ``webhook_reorder`` fault now, newest first."""
        with self._lock:
            held, self._held_events = self._held_events, []
        for hook, ev in reversed(held):
            self._sender.enqueue(hook, ev)

    def _bot_user(self) -> str:
        bot = next((u for u in self.store.users.values() if u.display_name == "app-bot"), None)
        if bot is None:
            bot = _store.User(
                self.store.new_id(), "App", "Bot", "bot@plane-emulator.local", "app-bot"
            )
            self.store.users[bot.id] = bot
        return bot.id

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

    # -- request handling --------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one HTTP request (called from the server threads)."""
        parts = urlsplit(target)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        auth_kind, key_id = _auth_identity(headers)
        fault = self.faults.take(method, path)
        post_fault: Fault | None = None
        resp: Response
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "reset":
            resp = Response(0, [], b"", action="reset")
        elif fault is not None and fault.kind == "status":
            resp = self._fault_response(fault)
        else:
            post_fault = fault
            resp = self._route(method, path, query, headers, body, parts.query)
            if post_fault is not None:
                resp = mangle(resp, post_fault.kind)
        if (
            self.gzip_responses
            and "gzip" in headers.get("accept-encoding", "")
            and len(resp.body) >= 200
            and resp.action is None
        ):
            resp = gzip_response(resp)
        with self._lock:
            self._requests.append(RecordedRequest(
                method, path, query, _redact(headers), resp.status, auth_kind, key_id,
            ))  # fmt: skip
        return resp

    def _fault_response(self, fault: Fault) -> Response:
        if fault.body is DOWN:
            return proxy_error(fault.status)
        if fault.status == 429:
            body = compact(fault.body if fault.body is not None else RATE_LIMITED)
            return finish(429, body, "normal", None, None, retry_after=fault.retry_after)
        if fault.body is not None:
            body = fault.body if isinstance(fault.body, bytes) else compact(fault.body)
        else:
            body = compact(SERVER_ERROR)
        return finish(fault.status, body, "normal", None, None)

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        raw_query: str,
    ) -> Response:
        if path.startswith("/auth/o/"):
            if self.edition != "cloud":
                return finish(404, compact(PAGE_NOT_FOUND), "normal", None, None)
            return self._oauth(method, path, query, headers, body)
        if path == "/api/instances/" and self.edition == "ce" and method == "GET":
            return finish(200, compact(self._instance()), "normal", None, None)
        if not self.serves_work_items and "/work-items/" in path:
            # Plane <= 1.0 has no such route: Django's 404 before any authentication.
            return finish(404, compact(PAGE_NOT_FOUND), "normal", None, None)
        match = _match(path)
        if match is None:
            slashed = _match(path + "/") if not path.endswith("/") else None
            if slashed is not None:
                # Django's APPEND_SLASH answers a slash-less URL with a permanent redirect.
                location = path + "/" + ("?" + raw_query if raw_query else "")
                return Response(
                    301,
                    [
                        ("Content-Type", "text/html; charset=utf-8"),
                        ("Location", location),
                        ("Content-Length", "0"),
                    ],
                )
            return finish(404, compact(PAGE_NOT_FOUND), "normal", None, None)
        m, allowed, route = match
        allow = ", ".join(allowed)
        try:
            actor_id, rate = self._authenticate(headers, m.groupdict(), route)
        except _Reply as reply:
            return finish(reply.status, compact(reply.body), reply.kind, allow, None)
        if rate is not None and not rate.allowed:
            return finish(
                429, compact(RATE_LIMITED), "normal", allow, None, retry_after=rate.retry_after
            )
        rate_headers = None if rate is None else (rate.remaining, rate.reset)
        if method not in allowed:
            body_ = compact({"detail": f'Method "{method}" not allowed.'})
            return finish(405, body_, "normal", allow, rate_headers)
        ctx = _Ctx(method, path, query, headers, body, m.groupdict(), actor_id, route)
        try:
            with self._lock:
                status, payload = getattr(self, "_v_" + route)(ctx)
        except _Reply as reply:
            status, payload = reply.status, reply.body
        except Exception:
            log.exception("emulator view %s crashed", route)
            status, payload = 500, SERVER_ERROR
        out = (
            payload
            if isinstance(payload, bytes)
            else (b"" if payload is None else compact(payload))
        )
        return finish(status, out, "normal", allow, rate_headers)

    def _authenticate(
        self, headers: dict[str, str], params: dict[str, str], route: str
    ) -> tuple[str, Any]:
        """DRF order: authentication, then permission, then the throttle."""
        api_key = headers.get("x-api-key")
        actor_id: str
        rate = None
        if api_key:
            with self._lock:
                meta = self._api_keys.get(api_key)
            expired = (
                meta is not None
                and meta["expires_at"] is not None
                and (meta["expires_at"] <= time.monotonic())
            )
            if meta is None or not meta["is_active"] or expired:
                raise _Reply(403, INVALID_KEY, "auth")
            actor_id = self.store.admin.id
            limit = SERVICE_RATE_LIMIT if meta["is_service"] else self.rate_limit
        else:
            authz = headers.get("authorization", "")
            token = None
            if self.edition == "cloud" and authz[:7].lower() == "bearer ":
                token = self.oauth.bearer(authz[7:].strip())
            if token is None:
                raise _Reply(401, NOT_AUTHENTICATED, "auth")
            actor_id = token.user_id
        slug = params.get("slug")
        if slug is not None and slug != self.store.workspace_slug:
            raise _Reply(403, NO_PERMISSION, "permission")
        pid = params.get("pid")
        if pid is not None and route != "project" and pid not in self.store.projects:
            raise _Reply(403, NO_PERMISSION, "permission")
        if api_key:
            rate = self.throttle.check(api_key, limit)
        return actor_id, rate

    # -- views: users, members, projects -----------------------------------------------------
    def _v_me(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, self.store.user_lite(ctx.actor_id)

    def _v_workspace_members(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, self.store.members(self.store.users)

    def _v_project_members(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, self.store.members(self.store.project_members[ctx.params["pid"]])

    def _v_projects(self, ctx: _Ctx) -> tuple[int, Any]:
        if ctx.method == "GET":
            rows = sorted(
                self.store.projects.values(), key=lambda e: e.data["created_at"], reverse=True
            )
            return 200, self._page(ctx, [self.store.project_api(e) for e in rows])
        data = _project_input(ctx.data(), None, special_chars_check=self.checks_project_chars)
        # Both unique constraints (name, identifier among live projects) end in the same
        # IntegrityError branch of the view, which names the name whichever clashed (seen live).
        if self._project_clash(data, None):
            raise _Reply(409, PROJECT_NAME_TAKEN)
        project = self.store.create_project(
            data["name"], data["identifier"], str(data.get("description", "")),
            views_on=not self.serves_work_items,
        )
        self._emit_created("project", project, ctx.actor_id)
        return 201, self.store.project_api(project)

    def _v_project(self, ctx: _Ctx) -> tuple[int, Any]:
        project = self.store.projects.get(ctx.params["pid"])
        if project is None:
            # GET looks the project up (404); PATCH and DELETE first check that the caller is
            # a member of it, which nobody is of a missing or deleted project (403).
            raise _Reply(404, NOT_FOUND) if ctx.method == "GET" else _Reply(403, NO_PERMISSION)
        if ctx.method == "GET":
            return 200, self.store.project_api(project)
        if ctx.method == "DELETE":
            self.store.projects.pop(project.id, None)
            self._emit_deleted("project", project, ctx.actor_id)
            return 204, None
        if project.data["archived_at"]:
            raise _Reply(400, {"error": "Archived project cannot be updated"})
        data = _project_input(ctx.data(), project, special_chars_check=self.checks_project_chars)
        if self._project_clash(data, project):
            raise _Reply(409, PROJECT_NAME_TAKEN)
        before = dict(project.data)
        for key in ("name", "description", "identifier"):
            if key in data:
                project.data[key] = data[key]
        project.data["updated_at"] = self.store.timestamp()
        project.data["updated_by"] = ctx.actor_id
        self._emit_updated("project", project, before, ctx.data(), ctx.actor_id)
        return 200, self.store.project_api(project)

    def _project_clash(self, data: dict[str, Any], project: Entity | None) -> bool:
        for other in self.store.projects.values():
            if other is project:
                continue
            if data.get("name") == other.data["name"] or (
                data.get("identifier") == other.data["identifier"]
            ):
                return True
        return False

    def _v_project_archive(self, ctx: _Ctx) -> tuple[int, Any]:
        project = self.store.projects.get(ctx.params["pid"])
        if project is None:
            raise _Reply(404, NOT_FOUND)
        project.data["archived_at"] = self.store.timestamp() if ctx.method == "POST" else None
        project.data["updated_at"] = self.store.timestamp()
        project.data["updated_by"] = ctx.actor_id
        return 204, None

    # -- views: states, labels ---------------------------------------------------------------
    def _v_states(self, ctx: _Ctx) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        if ctx.method == "GET":
            rows = sorted(self.store.states[pid].values(), key=lambda e: e.data["sequence"])
            return 200, self._page(ctx, [e.data for e in rows])
        data = ctx.data()
        errors = _required(data, ("name", "color"))
        if data.get("group", "backlog") not in STATE_GROUPS:
            errors["group"] = [f'"{data["group"]}" is not a valid choice.']
        if errors:
            raise _Reply(400, errors)
        self._external_conflict("State", self.store.states[pid].values(), data)
        for state in self.store.states[pid].values():
            if state.data["name"] == data["name"]:
                raise _Reply(409, {
                    "error": "State with the same name already exists in the project",
                    "id": state.id,
                })  # fmt: skip
        state = self.store.create_state(
            pid, str(data["name"]), str(data["color"]), data.get("group", "backlog"),
            external_id=data.get("external_id"), external_source=data.get("external_source"),
        )  # fmt: skip
        return 200, state.data  # sic: Plane's state create answers 200, not 201

    def _delete_state(self, state: Entity) -> None:
        pid = state.data["project"]
        if state.data["default"]:
            raise _Reply(400, {"error": "Default state cannot be deleted"})
        if any(i.data["state"] == state.id for i in self.store.work_items[pid].values()):
            raise _Reply(400, {"error": "The state is not empty, only empty states can be deleted"})
        self.store.states[pid].pop(state.id, None)

    def _v_state(self, ctx: _Ctx) -> tuple[int, Any]:
        state = self._get(self.store.states[ctx.params["pid"]], ctx.params["oid"])
        _, _, writable = SIMPLE_DETAILS["state"]
        status, body = self._detail(ctx, None, state, writable, self._delete_state)
        if ctx.method == "PATCH":
            state.data["slug"] = _store.slugify(state.data["name"])  # State.save
        return status, body

    def _v_labels(self, ctx: _Ctx) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        labels = self.store.labels[pid]
        if ctx.method == "GET":
            rows = sorted(labels.values(), key=lambda e: e.data["created_at"])
            return 200, self._page(ctx, [e.data for e in rows])
        data = ctx.data()
        errors = _required(data, ("name",))
        if errors:
            raise _Reply(400, errors)
        for label in labels.values():
            if label.data["name"] == data["name"]:
                raise _Reply(
                    409,
                    {
                        "error": "Label with the same name already exists in the project",
                        "id": label.id,
                    },
                )
        self._external_conflict("Label", labels.values(), data)
        label = self.store.create_label(
            pid,
            str(data["name"]),
            str(data.get("color") or ""),
            **{k: data.get(k) for k in ("description", "parent", "external_id", "external_source")},
        )
        return 201, label.data

    def _v_label(self, ctx: _Ctx) -> tuple[int, Any]:
        labels = self.store.labels[ctx.params["pid"]]
        label = self._get(labels, ctx.params["oid"])
        if ctx.method == "PATCH" and not self.serves_work_items:
            self._label_patch_conflict_1_0(labels, label, ctx.data())
        if ctx.method == "PATCH":
            name = ctx.data().get("name")
            if any(o.data["name"] == name for o in labels.values() if o is not label):
                raise _Reply(400, PAYLOAD_INVALID)  # the unique (project, name) constraint
        return self._simple_detail(ctx, "label")

    @staticmethod
    def _label_patch_conflict_1_0(labels: dict[str, Entity], label: Entity,
                                  data: dict[str, Any]) -> None:
        """Plane 1.0.0's LabelDetailAPIEndpoint.patch: it tests ``str(external_id)``, so a body
        without one looks for another label with external id and source both NULL (the label's
        own source when the body names none), and any such label is a 409 naming this label."""
        raw = data.get("external_id")
        wanted = None if raw is None else str(raw)
        if label.data.get("external_id") == str(raw):
            return
        source = data.get("external_source", label.data.get("external_source"))
        for other in labels.values():
            if other is label:
                continue
            if (other.data.get("external_id") == wanted
                    and other.data.get("external_source") == source):
                raise _Reply(409, {"error": "Label with the same external id and external "
                                            "source already exists", "id": label.id})

    # -- views: work items -------------------------------------------------------------------
    def _v_work_items(self, ctx: _Ctx) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        if ctx.method == "POST":
            return self._create_work_item(ctx, pid)
        fields, expand = ctx.csv("fields"), ctx.csv("expand")
        ext_id, ext_source = ctx.q("external_id"), ctx.q("external_source")
        if ext_id and ext_source:
            found = self.store.find_by_external(pid, ext_id, ext_source)
            if found is None:
                raise _Reply(404, NOT_FOUND)
            return 200, self.store.serialize_work_item(found, fields, expand)
        items = self._ordered_items(pid, ctx.q("order_by", "-created_at") or "-created_at")
        if self.store.projects[pid].data["archived_at"]:
            items = []
        if fields or expand:
            rows: list[Any] = [self.store.serialize_work_item(i, fields, expand) for i in items]
            return 200, self._page(ctx, rows)
        return 200, self._page(ctx, items, raw=self.store.work_item_json)

    def _ordered_items(self, pid: str, order_by: str) -> list[WorkItem]:
        base = self.store.ordered_work_items(pid)
        desc = order_by.startswith("-")
        key = order_by.lstrip("-")
        if key not in ORDER_BY_ALLOWED:
            return base  # Plane replaces an unknown order_by with -created_at
        if key == "created_at":
            return base if desc else base[::-1]
        states = self.store.states[pid]

        def value(item: WorkItem) -> Any:
            d = item.data
            if key == "priority":
                return PRIORITIES.index(d["priority"])
            if key in ("state__group", "state__name"):
                state = states.get(d["state"])
                if state is None:
                    return len(STATE_GROUPS)
                return (
                    STATE_GROUPS.index(state.data["group"])
                    if key == "state__group"
                    else (state.data["name"])
                )
            if key == "labels__name":
                names = [
                    self.store.labels[pid][x].data["name"]
                    for x in d["labels"]
                    if x in self.store.labels[pid]
                ]
                return max(names) if names else None
            if key == "assignees__first_name":
                names = [
                    self.store.users[x].first_name for x in d["assignees"] if x in self.store.users
                ]
                return max(names) if names else None
            return d.get(key)

        # Plane orders priority/state by their fixed rank lists (reversed for "-"); other keys
        # like PostgreSQL: NULLs last ascending, first descending. Ties keep -created_at.
        return sorted(base, key=lambda i: (value(i) is None, value(i)), reverse=desc)

    def _create_work_item(self, ctx: _Ctx, pid: str) -> tuple[int, Any]:
        data = self._validate_work_item(pid, ctx.data(), partial=False)
        ext_id, ext_source = data.get("external_id"), data.get("external_source")
        if ext_id and ext_source:
            existing = self.store.find_by_external(pid, str(ext_id), str(ext_source))
            if existing is not None:
                raise _Reply(
                    409,
                    {
                        "error": "Issue with the same external id and external "
                        "source already exists",
                        "id": existing.id,
                    },
                )
        item = self.store.create_work_item(pid, data, ctx.actor_id)
        self._emit_created("issue", item, ctx.actor_id)
        return 201, self.store.serialize_work_item(item)

    def _validate_work_item(
        self, pid: str, data: dict[str, Any], *, partial: bool
    ) -> dict[str, Any]:
        """The API's IssueSerializer on a work item's input; returns what it keeps.

        Field errors first, all of them, keyed in the serializer's field order; then its
        ``validate``, whose first failure is a ``non_field_errors`` answer. Labels of another
        project and assignees who are not members of this one are dropped without a word
        (seen live)."""
        errors: dict[str, Any] = {}
        if not partial or "name" in data:
            name = data.get("name")
            if "name" not in data:
                errors["name"] = ["This field is required."]
            elif name is None:
                errors["name"] = ["This field may not be null."]
            elif not isinstance(name, str) or not name.strip():
                errors["name"] = ["This field may not be blank."]
            elif len(name) > 255:
                errors["name"] = ["Ensure this field has no more than 255 characters."]
        if "priority" in data:
            if data["priority"] is None:
                errors["priority"] = ["This field may not be null."]
            elif data["priority"] not in PRIORITIES:
                errors["priority"] = [f'"{data["priority"]}" is not a valid choice.']
        # The related-field querysets span the whole workspace, not this project.
        tables = {"state": self.store.states, "parent": self.store.work_items,
                  "labels": self.store.labels, "assignees": {"": self.store.users}}
        for key in ("state", "parent"):
            problem = _pk_problem(data.get(key), tables[key])
            if problem:
                errors[key] = [problem]
        for key in ("labels", "assignees"):
            known = tables[key]
            if key not in data:
                continue
            values = data[key]
            if not isinstance(values, list):
                kind = type(values).__name__
                errors[key] = [f'Expected a list of items but got type "{kind}".']
                continue
            bad = {str(i): [msg] for i, v in enumerate(values) if (msg := _pk_problem(v, known))}
            if bad:
                errors[key] = bad
        for key in ("start_date", "target_date"):
            value = data.get(key)
            if value is not None and not _is_date(value):
                errors[key] = [
                    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
                ]
        if errors:
            raise _Reply(400, {k: errors[k] for k in sorted(errors, key=_field_rank)})
        clean = dict(data)
        if data.get("start_date") and data.get("target_date") and (
            data["start_date"] > data["target_date"]
        ):
            raise _Reply(400, {"non_field_errors": ["Start date cannot exceed target date"]})
        if data.get("assignees"):
            members = set(self.store.project_members.get(pid, ()))
            clean["assignees"] = [a for a in data["assignees"] if a in members]
        if data.get("labels"):
            clean["labels"] = [x for x in data["labels"] if x in self.store.labels[pid]]
        if data.get("state") and data["state"] not in self.store.states[pid]:
            raise _Reply(400, {"non_field_errors": [
                "State is not valid please pass a valid state_id"]})
        if data.get("parent") and data["parent"] not in self.store.work_items[pid]:
            raise _Reply(400, {"non_field_errors": [
                "Parent is not valid issue_id please pass a valid issue_id"]})
        return clean

    def _v_work_item(self, ctx: _Ctx) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        if self.store.projects[pid].data["archived_at"]:
            raise _Reply(404, NOT_FOUND)  # Plane's work-item manager hides archived projects
        item = self._get(self.store.work_items[pid], ctx.params["oid"])
        assert isinstance(item, WorkItem)
        if ctx.method == "GET":
            return 200, self.store.serialize_work_item(item, ctx.csv("fields"), ctx.csv("expand"))
        if ctx.method == "DELETE":
            self.store.delete_work_item(item)
            self._emit_deleted("issue", item, ctx.actor_id)
            return 204, None
        data = ctx.data()
        clean = self._validate_work_item(pid, data, partial=True)
        ext_id = data.get("external_id")
        if ext_id and item.data["external_id"] != str(ext_id):
            source = data.get("external_source", item.data["external_source"])
            if self.store.find_by_external(pid, str(ext_id), str(source)) is not None:
                raise _Reply(
                    409,
                    {
                        "error": "Issue with the same external id and external "
                        "source already exists",
                        "id": item.id,
                    },
                )
        # Plane 1.0.0's API v1 work-item PATCH never calls model_activity: no "updated" webhook
        # (recorded live; its web app's edits, update_work_item here, still send one).
        self._apply_work_item_update(item, clean, ctx.actor_id, requested=data,
                                     webhook=self.serves_work_items)
        return 200, self.store.serialize_work_item(item)

    def _apply_work_item_update(
        self,
        item: WorkItem,
        data: dict[str, Any],
        actor: str,
        requested: dict[str, Any] | None = None,
        webhook: bool = True,
    ) -> None:
        """Store the cleaned values; the webhooks compare the *requested* ones (Plane's
        model_activity diffs the request against the object as it was)."""
        before = dict(item.data)
        self.store.update_work_item(item, data, actor)
        if webhook:
            self._emit_updated("issue", item, before,
                               data if requested is None else requested, actor)

    def _v_search(self, ctx: _Ctx) -> tuple[int, Any]:
        term = (ctx.q("search") or "").strip()
        if not term:
            raise _Reply(400, {"error": "Search query is required"})
        try:
            limit = int(ctx.q("limit", "10") or 10)
        except ValueError:
            limit = 10
        hits = []
        for pid in self.store.projects:
            ident = self.store.projects[pid].data["identifier"]
            for item in self.store.ordered_work_items(pid):
                d = item.data
                if term.lower() in d["name"].lower() or term == str(d["sequence_id"]):
                    hits.append(
                        {
                            "name": d["name"],
                            "id": d["id"],
                            "sequence_id": d["sequence_id"],
                            "project__identifier": ident,
                            "project_id": pid,
                            "workspace__slug": self.store.workspace_slug,
                        }
                    )
        return 200, {"issues": hits[:limit]}

    def _v_by_identifier(self, ctx: _Ctx) -> tuple[int, Any]:
        seq = ctx.params["seq"]
        if not seq.isdecimal():
            raise _Reply(404, {"error": "Work item not found"})
        project = self.store.project_by_identifier(ctx.params["ident"])
        if project is not None:
            for item in self.store.work_items[project.id].values():
                if item.data["sequence_id"] == int(seq):
                    return 200, self.store.serialize_work_item(
                        item, ctx.csv("fields"), ctx.csv("expand")
                    )
        raise _Reply(404, NOT_FOUND)

    # -- views: comments, cycles, modules ----------------------------------------------------
    def _v_comments(self, ctx: _Ctx) -> tuple[int, Any]:
        pid, iid = ctx.params["pid"], ctx.params["iid"]
        comments = self.store.comments[pid]
        if ctx.method == "GET":
            # The list filters comments by the item id: an unknown item has none (200).
            rows = [_comment_read(c.data) for c in comments.values() if c.data["issue"] == iid]
            return 200, self._page(ctx, sorted(rows, key=lambda r: r["created_at"], reverse=True))
        data = ctx.data()
        self._external_conflict("Work item comment", comments.values(), data)
        if iid not in self.store.work_items[pid]:
            raise _Reply(400, PAYLOAD_INVALID)  # the comment's foreign key fails on insert
        comment = self.store.create_comment(pid, iid, data, ctx.actor_id)
        self._emit_created("issue_comment", comment, ctx.actor_id)
        # The view saves the new comment once more (created_at, created_by only): the answer
        # shows the updated_by that second save set in memory; the row keeps NULL (seen live).
        return 201, {**comment.data, "updated_by": ctx.actor_id}

    def _v_comment(self, ctx: _Ctx) -> tuple[int, Any]:
        comments = self.store.comments[ctx.params["pid"]]
        comment = self._get(comments, ctx.params["oid"])
        if comment.data["issue"] != ctx.params["iid"]:
            raise _Reply(404, NOT_FOUND)
        if ctx.method == "GET":
            return 200, _comment_read(comment.data)
        return self._detail(
            ctx,
            "issue_comment",
            comment,
            ("comment_html", "access", "external_id", "external_source"),
            lambda e: comments.pop(e.id, None),
        )

    def _v_cycles(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._collection(ctx, "cycle", self.store.cycles, self.store.create_cycle)

    def _v_cycle(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._simple_detail(ctx, "cycle")

    def _v_modules(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._collection(ctx, "module", self.store.modules, self.store.create_module)

    def _v_module(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._simple_detail(ctx, "module")

    def _v_cycle_items(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._membership(ctx, self.store.cycles, self.store.cycle_items)

    def _v_module_items(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._membership(ctx, self.store.modules, self.store.module_items)

    def _v_cycle_item(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._membership_item(ctx, self.store.cycles, self.store.cycle_items)

    def _v_module_item(self, ctx: _Ctx) -> tuple[int, Any]:
        return self._membership_item(ctx, self.store.modules, self.store.module_items)

    # -- view building blocks ----------------------------------------------------------------
    def _collection(
        self,
        ctx: _Ctx,
        event: str,
        table: dict[str, dict[str, Entity]],
        create: Callable[[str, dict[str, Any]], Entity],
    ) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        rows = table[pid]
        if ctx.method == "GET":
            ordered = sorted(rows.values(), key=lambda e: e.data["created_at"], reverse=True)
            return 200, self._page(ctx, [e.data for e in ordered])
        data = ctx.data()
        errors = _required(data, ("name",))
        if errors:
            raise _Reply(400, errors)
        self._external_conflict(event.capitalize(), rows.values(), data)
        entity = create(pid, data)
        self._emit_created(event, entity, ctx.actor_id)
        return 201, entity.data

    def _membership(
        self, ctx: _Ctx, table: dict[str, dict[str, Entity]], members: dict[str, list[str]]
    ) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        container = self._get(table[pid], ctx.params["cid"])
        ids = members[container.id]
        items = self.store.work_items[pid]
        if ctx.method == "GET":
            rows = [self.store.serialize_work_item(items[i]) for i in ids if i in items]
            return 200, self._page(ctx, rows)
        data = ctx.data()
        wanted = data.get("issues")
        if not isinstance(wanted, list) or not wanted:
            raise _Reply(400, {"error": "Issues are required"})
        missing = [i for i in wanted if i not in items]
        if missing:
            raise _Reply(404, NOT_FOUND)
        for i in wanted:
            if i not in ids:
                ids.append(i)
        return 201, [self.store.serialize_work_item(items[i]) for i in wanted]

    def _membership_item(
        self, ctx: _Ctx, table: dict[str, dict[str, Entity]], members: dict[str, list[str]]
    ) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        container = self._get(table[pid], ctx.params["cid"])
        ids = members[container.id]
        if ctx.params["oid"] not in ids:
            raise _Reply(404, NOT_FOUND)
        if ctx.method == "DELETE":
            ids.remove(ctx.params["oid"])
            return 204, None
        return 200, self.store.serialize_work_item(self.store.work_items[pid][ctx.params["oid"]])

    def _simple_detail(self, ctx: _Ctx, kind: str) -> tuple[int, Any]:
        event, table_name, writable = SIMPLE_DETAILS[kind]
        table: dict[str, Entity] = getattr(self.store, table_name)[ctx.params["pid"]]
        entity = self._get(table, ctx.params["oid"])
        return self._detail(ctx, event, entity, writable, lambda e: table.pop(e.id, None))

    def _detail(
        self,
        ctx: _Ctx,
        event: str | None,
        entity: Entity,
        writable: tuple[str, ...],
        delete: Callable[[Entity], Any],
    ) -> tuple[int, Any]:
        if ctx.method == "GET":
            return 200, entity.data
        if ctx.method == "DELETE":
            delete(entity)
            if event:
                self._emit_deleted(event, entity, ctx.actor_id)
            return 204, None
        data = ctx.data()
        before = dict(entity.data)
        for key, value in data.items():
            if key in writable:
                entity.data[key] = value
        entity.data["updated_at"] = self.store.timestamp()
        entity.data["updated_by"] = ctx.actor_id
        if event:
            self._emit_updated(event, entity, before, data, ctx.actor_id)
        return 200, entity.data

    @staticmethod
    def _get(table: dict[str, Any], oid: str) -> Any:
        entity = table.get(oid)
        if entity is None:
            raise _Reply(404, NOT_FOUND)
        return entity

    @staticmethod
    def _external_conflict(label: str, rows: Any, data: dict[str, Any]) -> None:
        ext_id, source = data.get("external_id"), data.get("external_source")
        if not (ext_id and source):
            return
        for row in rows:
            if row.data.get("external_id") == ext_id and row.data.get("external_source") == source:
                raise _Reply(
                    409,
                    {
                        "error": f"{label} with the same external id and external "
                        "source already exists",
                        "id": row.id,
                    },
                )

    def _page(self, ctx: _Ctx, rows: list[Any], raw: Callable[[Any], bytes] | None = None) -> bytes:
        """Plane's OffsetPaginator: the cursor's middle part is a page index times per_page."""
        raw_per_page = ctx.q("per_page")
        try:
            per_page = int(raw_per_page) if raw_per_page is not None else MAX_PER_PAGE
        except ValueError:
            raise _Reply(400, {"detail": "Invalid per_page parameter."}) from None
        if per_page > MAX_PER_PAGE:
            raise _Reply(400, {"detail": f"Invalid per_page value. Cannot exceed {MAX_PER_PAGE}."})
        cursor = ctx.q("cursor", f"{per_page}:0:0") or ""
        bits = cursor.split(":")
        try:
            if len(bits) != 3:
                raise ValueError(cursor)
            float(bits[0]) if "." in bits[0] else int(bits[0])
            page = int(bits[1])
            int(bits[2])
        except ValueError:
            raise _Reply(400, {"detail": "Invalid cursor parameter."}) from None
        offset = page * per_page
        if offset < 0:
            raise _Reply(400, {"detail": "Error in parsing"})
        total = len(rows)
        if per_page < 0 or (per_page == 0 and total):
            # Plane slices the queryset with a negative stop, or divides the total by 0: a 500.
            raise _Reply(500, SERVER_ERROR)
        chunk = rows[offset : offset + per_page]
        has_next = total > offset + per_page
        if self.faults.take(ctx.method, ctx.path, ("page_repeat",)) is not None:
            chunk, has_next = rows[:per_page], True
        meta = (
            b'{"grouped_by":null,"sub_grouped_by":null,"total_count":%d,'
            b'"next_cursor":"%d:%d:0","prev_cursor":"%d:%d:1",'
            b'"next_page_results":%s,"prev_page_results":%s,"count":%d,"total_pages":%d,'
            b'"total_results":%d,"extra_stats":null,"results":['
        ) % (
            total, per_page, page + 1, per_page, page - 1,
            b"true" if has_next else b"false", b"true" if page > 0 else b"false", len(chunk),
            -(-total // per_page) if total else 0, total,
        )  # fmt: skip
        encode = raw or compact
        return meta + b",".join(encode(r) for r in chunk) + b"]}"

    # -- OAuth endpoints ---------------------------------------------------------------------
    def _oauth(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        params = {k: v[0] for k, v in query.items()}
        try:
            if path == "/auth/o/authorize-app/" and method == "GET":
                out = self.oauth.authorize(
                    params, self.store.admin.id, self.store.new_id, self._bot_user()
                )
                redirect_uri = out.pop("_redirect_uri")
                sep = "&" if "?" in redirect_uri else "?"
                return Response(
                    302,
                    [("Location", redirect_uri + sep + urlencode(out)), ("Content-Length", "0")],
                )
            if path == "/auth/o/token/" and method == "POST":
                params.update(_form_or_json(headers, body))
                token = self.oauth.token(params, headers.get("authorization"))
                return oauth_response(200, compact(token))
            if path == "/auth/o/revoke-token/" and method == "POST":
                params.update(_form_or_json(headers, body))
                self.oauth.revoke(params, headers.get("authorization"))
                return oauth_response(200, b"")
            if path == "/auth/o/app-installation/" and method == "GET":
                return self._installation(params, headers)
        except OAuthError as exc:
            return oauth_response(exc.status, compact(exc.body))
        return finish(404, compact(PAGE_NOT_FOUND), "normal", None, None)

    def _installation(self, params: dict[str, str], headers: dict[str, str]) -> Response:
        authz = headers.get("authorization", "")
        token = self.oauth.bearer(authz[7:].strip()) if authz[:7].lower() == "bearer " else None
        if token is None:
            return finish(401, compact(NOT_AUTHENTICATED), "auth", "GET", None)
        installation = self.oauth.installations.get(params.get("id", ""))
        rows = []
        if installation is not None:
            rows.append(
                {
                    "id": installation.id,
                    "workspace": self.store.workspace_id,
                    "workspace_detail": {
                        "name": self.store.workspace_name,
                        "slug": self.store.workspace_slug,
                        "id": self.store.workspace_id,
                    },
                    "app_bot": installation.bot_user_id,
                    "status": "installed",
                }
            )
        return oauth_response(200, compact(rows))


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.0.0"`` -> ``(1, 0, 0)``; ValueError for anything else."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)", version.strip())
    if m is None:
        raise ValueError(f"a Plane version is X.Y.Z (e.g. 1.0.0), got {version!r}")
    return tuple(int(g) for g in m.groups())


def _match(path: str) -> tuple[re.Match[str], tuple[str, ...], str] | None:
    for pattern, methods, name in ROUTES:
        m = pattern.match(path)
        if m:
            return m, methods, name
    return None


def _project_input(
    data: dict[str, Any], project: Entity | None, *, special_chars_check: bool = True
) -> dict[str, Any]:
    """ProjectCreateSerializer / ProjectUpdateSerializer on name and identifier (CE 4ca6d6c7).

    Field checks first (DRF CharField: required, trimmed, blank, max length), then the
    serializer's ``validate``: the forbidden characters, name before identifier. The identifier
    is stored stripped and upper-cased (Project.save). Returns the cleaned values."""
    errors: dict[str, list[str]] = {}
    out = dict(data)
    for key, limit in (("name", 255), ("identifier", 12)):
        if key not in data:
            if project is None:
                errors[key] = ["This field is required."]
            continue
        value = data[key]
        if value is None:
            errors[key] = ["This field may not be null."]
            continue
        text = str(value).strip()
        if not text:
            errors[key] = ["This field may not be blank."]
        elif len(text) > limit:
            errors[key] = [f"Ensure this field has no more than {limit} characters."]
        out[key] = text.upper() if key == "identifier" else text
    if errors:
        raise _Reply(400, errors)
    for key, label in (("name", "name"), ("identifier", "identifier")):
        # Plane 1.0.0's serializers have no such check: R&D is a project name there (recorded).
        if special_chars_check and key in out and FORBIDDEN_PROJECT_CHARS.match(out[key]):
            raise _Reply(400, {"non_field_errors": [
                f"Project {label} cannot contain special characters."]})
    return out


def _comment_read(data: dict[str, Any]) -> dict[str, Any]:
    """A comment as the read views give it: their queryset adds ``is_member`` (seen live)."""
    return {"id": data["id"], "is_member": True, **{k: v for k, v in data.items() if k != "id"}}


def _pk_problem(value: Any, known: dict[str, dict[str, Any]]) -> str | None:
    """DRF's error for a related-object id (a UUID primary key), or None when it is fine.

    ``known``: rows by project (or any grouping); the id may be in any of them."""
    if value is None:
        return None
    try:
        uuid.UUID(str(value))
    except ValueError:
        return f"\u201c{value}\u201d is not a valid UUID."
    if not any(str(value) in rows for rows in known.values()):
        return f'Invalid pk "{value}" - object does not exist.'
    return None


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _required(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, list[str]]:
    return {n: ["This field is required."] for n in names if n not in data}


#: IssueSerializer's writable fields in DRF's order (declared fields, then the model's plain
#: fields, then its foreign keys): the order of the keys of a 400 answer.
_ERROR_ORDER = (
    "assignees", "labels", "type_id", "name", "description_html", "priority", "start_date",
    "target_date", "sort_order", "is_draft", "external_source", "external_id", "parent",
    "state", "estimate_point",
)  # fmt: skip


def _field_rank(name: str) -> int:
    return _ERROR_ORDER.index(name) if name in _ERROR_ORDER else len(_ERROR_ORDER)


def _form_or_json(headers: dict[str, str], body: bytes) -> dict[str, str]:
    if not body:
        return {}
    if "json" in headers.get("content-type", ""):
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise OAuthError(400, "invalid_request", "Malformed JSON body.") from exc
        if not isinstance(value, dict):
            raise OAuthError(400, "invalid_request", "Expected a JSON object.")
        return {str(k): str(v) for k, v in value.items() if v is not None}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _auth_identity(headers: dict[str, str]) -> tuple[str | None, str | None]:
    key = headers.get("x-api-key")
    if key:
        return "api_key", hashlib.sha256(key.encode("utf-8")).hexdigest()
    authz = headers.get("authorization", "")
    if authz[:7].lower() == "bearer ":
        return "bearer", hashlib.sha256(authz[7:].strip().encode("utf-8")).hexdigest()
    return None, None


_SECRET_HEADERS = ("x-api-key", "authorization", "cookie")


def _redact(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if k in _SECRET_HEADERS else v) for k, v in headers.items()}
