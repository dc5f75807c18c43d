"""``PlaneEmulator``: Plane's REST API, webhooks and OAuth on a loopback port, in pure stdlib.

It reproduces what Plane CE @ 4ca6d6c7 really does (see tests/fixtures/plane-samples/ and the
project's plane-api-contract.md): auth order and bodies, DRF's sliding-window throttle with Plane's
headers, the offset-in-a-cursor paginator, external-id conflicts, webhook payloads byte-for-byte
and Celery's retry rule. The ``cloud`` edition adds OAuth Plane Apps, Bearer tokens and v2 webhooks.
"""

from __future__ import annotations

import logging
import random
import secrets
import socket
import threading
import time
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from plane_connector.testing import _store
from plane_connector.testing._api import (
    EDITIONS,
    NEWEST_VERSION,
    PlaneApi,
    RecordedRequest,
    _Reply,
    version_tuple,
)
from plane_connector.testing._http import EmulatorHandler, EmulatorServer, TestCA
from plane_connector.testing._oauth import OAuthServer
from plane_connector.testing._store import PRIORITIES, PlaneStore
from plane_connector.testing._throttle import RateThrottle, ScaledClock
from plane_connector.testing.faults import FaultInjector, Outage
from plane_connector.testing.webhook_sender import (
    V1_EVENTS,
    Webhook,
    WebhookAttempt,
    WebhookEvent,
    WebhookSender,
    require_requests,
)

log = logging.getLogger(__name__)


class PlaneEmulator(PlaneApi):
    """A Plane API server on a free loopback port for tests and demos.

    ``edition``: ``"ce"`` (X-API-Key only, v1 webhooks) or ``"cloud"`` (adds OAuth Plane Apps,
    Bearer tokens and v2 webhooks). ``rate_limit``: requests per Plane minute per API key.
    ``time_scale``: real seconds per Plane second (0.01 runs a rate window in 0.6 s).
    ``seed``: makes ids reproducible. Webhook retry knobs are in Plane seconds.
    ``version``: the Plane release to play (``"1.0.0"`` serves only the ``/issues/`` routes and
    answers ``/work-items/`` with Django's 404; 1.1.0 and later serve both). ``/api/instances/``
    reports it (CE only).
    """

    def __init__(
        self,
        edition: str = "ce",
        *,
        version: str = NEWEST_VERSION,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: int = 60,
        time_scale: float = 1.0,
        seed: int | None = None,
        workspace_slug: str = "plane-emulator",
        project_identifier: str = "ERP",
        webhook_backoff: float = 600.0,
        webhook_backoff_max: float = 600.0,
        webhook_max_retries: int | None = None,
        webhook_jitter: bool = True,
        webhook_timeout: float = 30.0,
        webhook_block_private: bool = False,
        webhook_workers: int = 1,
        token_expires_in: int = 86400,
        gzip_responses: bool = True,
        tls: bool = False,
    ) -> None:
        if edition not in EDITIONS:
            raise ValueError(f"edition must be one of {EDITIONS}, got {edition!r}")
        version_tuple(version)  # a ValueError for anything but X.Y.Z
        if rate_limit < 1:
            raise ValueError("rate_limit must be >= 1")
        self.edition = edition
        self.host = host
        self._port = port
        self.rate_limit = rate_limit
        self.clock = ScaledClock(time_scale)
        self.gzip_responses = gzip_responses
        self._rng = random.Random(seed)  # noqa: S311 - ids for a test double
        self._lock = threading.RLock()
        self.store = PlaneStore(self._rng, workspace_slug, "Plane Emulator")
        self.version = version.strip().lstrip("v")
        self.faults = FaultInjector()
        self.throttle = RateThrottle(self.clock)
        self.oauth = OAuthServer(self.clock, expires_in=token_expires_in)
        self._sender = WebhookSender(
            self.clock,
            retry_on_5xx=edition == "cloud",
            # CE: Celery's max_retries=5 (6 attempts). Cloud docs: disabled "after 5 failed
            # attempts", i.e. 4 retries.
            max_retries=(5 if edition == "ce" else 4)
            if webhook_max_retries is None
            else webhook_max_retries,
            backoff=webhook_backoff,
            backoff_max=webhook_backoff_max,
            jitter=webhook_jitter,
            timeout=webhook_timeout,
            block_private=webhook_block_private,
            workers=webhook_workers,
            rng=random.Random(None if seed is None else seed + 1),  # noqa: S311
        )
        self._webhooks: dict[str, Webhook] = {}
        self._held_events: list[tuple[Webhook, WebhookEvent]] = []
        self._api_keys: dict[str, dict[str, Any]] = {}
        self._requests: list[RecordedRequest] = []
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        # TLS mode: https:// with a certificate from a throwaway CA; `ca_bundle` is its PEM path.
        self._tls = TestCA(host) if tls else None
        self.ca_bundle: str | None = self._tls.ca_bundle if self._tls else None
        self.api_key = self.add_api_key()
        project = self.store.create_project(
            "ERP Sync Lab", project_identifier, "Project for Odoo connector tests"
        )
        self.project_id = project.id
        for name, color in (("bug", "#EF4444"), ("feature", "#22C55E"), ("invoice", "#3B82F6")):
            self.store.create_label(project.id, name, color)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> PlaneEmulator:
        if self._server is not None:
            return self
        server = EmulatorServer((self.host, self._port), EmulatorHandler)
        server.emulator = self
        server.ssl_context = self._tls.context if self._tls else None
        self._server = server
        self._sender.start()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name="plane-emulator", daemon=True,
        )  # fmt: skip
        self._thread.start()
        log.debug("Plane emulator (%s %s) serving on %s", self.edition, self.version, self.base_url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(timeout=5)
        self._sender.stop()
        if self._tls:
            self._tls.cleanup()

    def __enter__(self) -> PlaneEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def version(self) -> str:
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        # A test may swap the version of a running emulator (an upgrade or a restore in
        # place): the store's serialisation follows.
        self._version = value
        self.store.plane_1_0 = version_tuple(value) < version_tuple("1.1.0")

    def __repr__(self) -> str:  # never shows the key
        where = self.base_url if self._server else "(stopped)"
        return f"<PlaneEmulator {self.edition} {self.version} {where}>"

    # -- public attributes -------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The value for ``plane.base_url`` (no ``/api/v1``)."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def workspace_slug(self) -> str:
        return self.store.workspace_slug

    @property
    def workspace_id(self) -> str:
        return self.store.workspace_id

    @property
    def user(self) -> dict[str, Any]:
        return self.store.admin.lite()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def deliveries(self) -> list[WebhookAttempt]:
        return self._sender.attempts

    @property
    def token_requests(self) -> dict[str, int]:
        """Calls to ``/auth/o/token/`` by grant type."""
        with self.oauth.lock:
            return dict(self.oauth.token_requests)

    # -- set-up helpers ----------------------------------------------------------------------
    def add_api_key(
        self, *, is_service: bool = False, is_active: bool = True, expires_in: float | None = None
    ) -> str:
        """Create another API key (``plane_api_`` + 32 hex) for the admin user; returns it."""
        key = "plane_api_" + secrets.token_hex(16)
        expires_at = None if expires_in is None else time.monotonic() + expires_in
        with self._lock:
            self._api_keys[key] = {
                "is_service": is_service, "is_active": is_active, "expires_at": expires_at,
            }  # fmt: skip
        return key

    def add_member(
        self, first_name: str, last_name: str = "", email: str | None = None, role: int = 15
    ) -> dict[str, Any]:
        """Add a workspace and project member (e.g. to assign work items); returns UserLite."""
        with self._lock:
            display = first_name.lower()
            user = _store.User(
                self.store.new_id(), first_name, last_name,
                email or f"{display}@plane-emulator.local", display, role,
            )  # fmt: skip
            self.store.users[user.id] = user
            for members in self.store.project_members.values():
                members.append(user.id)
            return user.lite()

    def revoke_api_key(self, key: str) -> None:
        with self._lock:
            if key in self._api_keys:
                self._api_keys[key]["is_active"] = False

    def add_project(self, name: str, identifier: str, description: str = "") -> dict[str, Any]:
        """Add a project (with Plane's default states) without sending a webhook."""
        with self._lock:
            if self.store.project_by_identifier(identifier):
                raise ValueError(f"project identifier {identifier!r} is taken")
            return dict(self.store.create_project(name, identifier, description).data)

    def seed_work_items(self, k: int, project_id: str | None = None) -> list[str]:
        """Add ``k`` work items (no webhooks), oldest first; returns their ids."""
        pid = project_id or self.project_id
        with self._lock:
            states = list(self.store.states[pid].values())
            labels = list(self.store.labels[pid])
            width = max(3, len(str(k)))
            ids = []
            for i in range(1, k + 1):
                item = self.store.create_work_item(
                    pid,
                    {
                        "name": f"Seed work item {i:0{width}d}",
                        "description_html": f"<p>Seeded item {i}</p>",
                        "priority": PRIORITIES[(i - 1) % len(PRIORITIES)],
                        "state": states[(i - 1) % len(states)].id,
                        "external_source": "plane-emulator-seed",
                        "external_id": f"SEED-{i:0{width}d}",
                        "assignees": [self.store.admin.id] if i % 2 else [],
                        "labels": [labels[i % len(labels)]] if labels and i % 3 == 0 else [],
                    },
                    None,
                )
                ids.append(item.id)
            return ids

    def register_webhook(
        self,
        url: str,
        secret: str | None = None,
        *,
        events: tuple[str, ...] = V1_EVENTS,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Register a workspace webhook; returns it (with ``secret_key``, ``plane_wh_`` + hex)."""
        unknown = set(events) - set(V1_EVENTS)
        if unknown:
            raise ValueError(f"unknown webhook events {sorted(unknown)}; known: {V1_EVENTS}")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("webhook url must be http or https")
        version = version or ("v2" if self.edition == "cloud" else "v1")
        if version not in ("v1", "v2") or (version == "v2" and self.edition == "ce"):
            raise ValueError("version must be v1 (ce) or v1/v2 (cloud)")
        require_requests()  # fail here, not in the sender thread at the first delivery
        hook = Webhook(
            self.store.new_id(), url, secret or "plane_wh_" + secrets.token_hex(16),
            self.workspace_id, frozenset(events), version,
        )  # fmt: skip
        with self._lock:
            self._webhooks[hook.id] = hook
        return hook.as_dict()

    def webhook(self, webhook_id: str) -> dict[str, Any]:
        with self._lock:
            return self._webhooks[webhook_id].as_dict()

    def set_webhook_active(self, webhook_id: str, active: bool = True) -> None:
        with self._lock:
            self._webhooks[webhook_id].is_active = active

    def wait_for_deliveries(self, n: int, timeout: float = 10.0) -> list[WebhookAttempt]:
        """Block until at least ``n`` webhook attempts finished; TimeoutError otherwise."""
        return self._sender.wait_for(n, timeout)

    def wait_webhooks_idle(self, timeout: float = 10.0) -> bool:
        """Block until no webhook is queued, scheduled for retry or in flight."""
        return self._sender.wait_idle(timeout)

    def register_oauth_app(
        self,
        name: str = "Odoo connector",
        redirect_uri: str = "http://127.0.0.1/oauth/callback",
        *,
        scopes: str = "read write",
        redirect_uris: tuple[str, ...] = (),
    ) -> tuple[str, str]:
        """Register a Plane App (cloud only); returns ``(client_id, client_secret)``."""
        self._require_cloud()
        return self.oauth.register_app(name, (redirect_uri, *redirect_uris), scopes)

    def install_oauth_app(self, client_id: str) -> str:
        """Install an app in the workspace without the browser step; returns the installation id."""
        self._require_cloud()
        app = self.oauth.apps[client_id]
        out = self.oauth.authorize(
            {"client_id": client_id, "redirect_uri": app.redirect_uris[0]},
            self.store.admin.id, self.store.new_id, self._bot_user(),
        )  # fmt: skip
        return out["app_installation_id"]

    def revoke_all_tokens(self) -> None:
        self.oauth.revoke_all()

    def reset_rate_limits(self) -> None:
        self.throttle.reset()

    def set_down(self, mode: str | None) -> None:
        """Plane down until ``set_down(None)``: ``"502"``/``"503"``/``"504"`` (the reverse
        proxy's error page) or ``"reset"`` (connections closed without an answer)."""
        self.faults.set_down(mode)

    def outage(self, *phases: tuple[str, float], delay: float = 0.0) -> Outage:
        """A down window that ends by itself, e.g. ``outage(("502", 60), ("reset", 60))``."""
        return self.faults.outage(*phases, delay=delay)

    # -- acting as a Plane user (emits webhooks, as an edit in Plane's UI would) --------------
    def create_work_item(
        self, name: str, *, project_id: str | None = None, **values: Any
    ) -> dict[str, Any]:
        """Create a work item as the admin user would in Plane (validated; sends webhooks)."""
        pid = project_id or self.project_id
        with self._lock:
            if pid not in self.store.projects:
                raise KeyError(f"no project {pid}")
            data = self._validate_for_helper(pid, {"name": name, **values}, partial=False)
            item = self.store.create_work_item(pid, data, self.store.admin.id)
            self._emit_created("issue", item, self.store.admin.id)
            return self.store.serialize_work_item(item)

    def update_work_item(self, item_id: str, **changes: Any) -> dict[str, Any]:
        with self._lock:
            item = self.store.find_work_item(item_id)
            if item is None:
                raise KeyError(item_id)
            clean = self._validate_for_helper(item.data["project"], changes, partial=True)
            self._apply_work_item_update(item, clean, self.store.admin.id, requested=changes)
            return self.store.serialize_work_item(item)

    def delete_work_item(self, item_id: str) -> None:
        with self._lock:
            item = self.store.find_work_item(item_id)
            if item is None:
                raise KeyError(item_id)
            self.store.delete_work_item(item)
            self._emit_deleted("issue", item, self.store.admin.id)

    def add_comment(self, item_id: str, comment_html: str) -> dict[str, Any]:
        with self._lock:
            item = self.store.find_work_item(item_id)
            if item is None:
                raise KeyError(item_id)
            comment = self.store.create_comment(
                item.data["project"], item.id, {"comment_html": comment_html},
                self.store.admin.id,
            )  # fmt: skip
            self._emit_created("issue_comment", comment, self.store.admin.id)
            return dict(comment.data)

    def _validate_for_helper(
        self, pid: str, data: dict[str, Any], *, partial: bool
    ) -> dict[str, Any]:
        unknown = set(data) - set(_store.WORK_ITEM_WRITABLE)
        if unknown:
            raise ValueError(f"not writable on a work item: {sorted(unknown)}")
        try:
            return self._validate_work_item(pid, data, partial=partial)
        except _Reply as reply:
            raise ValueError(f"invalid work item: {reply.body}") from None

    def states(self, project_id: str | None = None) -> list[dict[str, Any]]:
        """The project's states (API shape), by sequence."""
        with self._lock:
            rows = self.store.states[project_id or self.project_id].values()
            return [dict(e.data) for e in sorted(rows, key=lambda e: e.data["sequence"])]

    def labels(self, project_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e.data) for e in self.store.labels[project_id or self.project_id].values()]

    def work_items(self, project_id: str | None = None) -> list[dict[str, Any]]:
        """All work items of the project (API shape), newest first."""
        with self._lock:
            items = self.store.ordered_work_items(project_id or self.project_id)
            return [self.store.serialize_work_item(i) for i in items]

    def work_item(self, item_id: str) -> dict[str, Any] | None:
        with self._lock:
            item = self.store.find_work_item(item_id)
            return None if item is None else self.store.serialize_work_item(item)
