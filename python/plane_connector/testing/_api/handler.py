"""Request handling: faults, routing, authentication, the throttle, the recorded requests."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from plane_connector.testing._api.base import (
    INVALID_KEY,
    NO_PERMISSION,
    NOT_AUTHENTICATED,
    PAGE_NOT_FOUND,
    RATE_LIMITED,
    SERVER_ERROR,
    SERVICE_RATE_LIMIT,
    RecordedRequest,
    _Ctx,
    _Reply,
)
from plane_connector.testing._api.comments import CommentViews
from plane_connector.testing._api.cycles_modules import CycleModuleViews
from plane_connector.testing._api.oauth import OAuthEndpoints
from plane_connector.testing._api.projects import ProjectViews
from plane_connector.testing._api.states_labels import StateLabelViews
from plane_connector.testing._api.work_items import WorkItemViews
from plane_connector.testing._http import Response, finish, gzip_response, mangle, proxy_error
from plane_connector.testing._store import compact
from plane_connector.testing.faults import DOWN, Fault

log = logging.getLogger("plane_connector.testing.emulator")


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


class PlaneApi(
    ProjectViews, StateLabelViews, WorkItemViews, CommentViews, CycleModuleViews, OAuthEndpoints
):
    """Request handling and Plane-side effects; state lives on the emulator instance.

    Each resource's views are a class of their own (``_v_<route>`` methods, see ``ROUTES``)."""

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
            params = {k: v[0] for k, v in query.items()}
            return self._oauth(method, path, params, headers, body)
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


def _match(path: str) -> tuple[re.Match[str], tuple[str, ...], str] | None:
    for pattern, methods, name in ROUTES:
        m = pattern.match(path)
        if m:
            return m, methods, name
    return None


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
