"""Webhook delivery as Plane does it: signed POSTs, a new delivery id per attempt, Celery's retry.

CE (``bgtasks/webhook_task.py`` @ 4ca6d6c7): retry only on a connection error or timeout, at most
5 retries, each after a full-jitter wait uniform in [0, min(600, 600 * 2**n)] seconds, then the
webhook is deactivated; an HTTP error answer (any status) is logged and never retried. Cloud (per
Plane's docs): also retries 5xx answers and sends the v2 payload. Waits follow the time scale.

The POST itself is made with ``requests``, as Plane makes it (the ``[testing]`` extra; Odoo ships
it): its default headers, their order, and its redirect handling are requests' own.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import ipaddress
import itertools
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from plane_connector._optional import require
from plane_connector.testing._throttle import ScaledClock

log = logging.getLogger(__name__)

V1_EVENTS = ("project", "issue", "cycle", "module", "issue_comment")


@dataclass
class Webhook:
    """A registered webhook (Plane's ``Webhook`` model, the fields that matter)."""

    id: str
    url: str
    secret_key: str
    workspace_id: str
    events: frozenset[str]
    version: str = "v1"
    is_active: bool = True

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "url": self.url, "is_active": self.is_active}
        d.update({name: name in self.events for name in V1_EVENTS})
        d.update({"secret_key": self.secret_key, "version": self.version})
        return d


@dataclass
class WebhookEvent:
    """One change that Plane turns into one delivery per subscribed webhook."""

    event: str
    action: str  # created | updated | deleted
    data: dict[str, Any]
    activity: dict[str, Any]
    entity_id: str
    # Cloud v2 view of the same change: event, entity_type, entity_id, data, previous_attributes.
    v2: dict[str, Any] | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class WebhookAttempt:
    """The log of one POST attempt (``emu.deliveries``)."""

    webhook_id: str
    url: str
    event: str
    action: str
    delivery_id: str
    event_id: str
    headers: dict[str, str]
    body: bytes
    retry: int  # 0 for the first attempt, n for the n-th retry
    outcome: str  # delivered | http_error | connection_error | timeout | blocked
    status: int | None = None
    error: str | None = None
    webhook_disabled: bool = False
    # Wall-clock (time.time()) moments the POST started and its answer (or error) came back:
    # the webhook hop as Plane would see it, e.g. for latency measurements.
    sent_at: float = 0.0
    answered_at: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    webhook: Webhook = field(compare=False)
    event: WebhookEvent = field(compare=False)
    retry: int = field(default=0, compare=False)


class WebhookSender:
    """Background sender: a due-time queue served by ``workers`` daemon threads."""

    def __init__(
        self,
        clock: ScaledClock,
        *,
        retry_on_5xx: bool,
        max_retries: int = 5,
        backoff: float = 600.0,
        backoff_max: float = 600.0,
        jitter: bool = True,
        timeout: float = 30.0,
        block_private: bool = False,
        workers: int = 1,
        rng: random.Random | None = None,
        on_disable: Callable[[Webhook], None] | None = None,
    ) -> None:
        self._clock = clock
        self.retry_on_5xx = retry_on_5xx
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.timeout = timeout
        self.block_private = block_private
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._on_disable = on_disable
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._attempts: list[WebhookAttempt] = []
        self._running = False
        self._threads: list[threading.Thread] = []
        self._workers = max(1, workers)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            self._running = True
        for n in range(self._workers):
            t = threading.Thread(target=self._worker, name=f"plane-emu-webhook-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    # -- queueing ----------------------------------------------------------------------------
    def enqueue(self, webhook: Webhook, event: WebhookEvent, delay: float = 0.0) -> None:
        with self._cond:
            due = self._clock.monotonic() + delay
            heapq.heappush(self._heap, _Job(due, next(self._seq), webhook, event))
            self._cond.notify()

    @property
    def attempts(self) -> list[WebhookAttempt]:
        with self._cond:
            return list(self._attempts)

    def wait_for(self, n: int, timeout: float) -> list[WebhookAttempt]:
        deadline = self._clock.monotonic() + timeout
        with self._cond:
            while len(self._attempts) < n:
                left = deadline - self._clock.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"expected {n} webhook attempts within {timeout}s, "
                        f"got {len(self._attempts)}"
                    )
                self._cond.wait(left)
            return list(self._attempts)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or in flight (scheduled retries count as queued)."""
        deadline = self._clock.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                left = deadline - self._clock.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def clear_log(self) -> None:
        with self._cond:
            self._attempts.clear()

    # -- the worker --------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            with self._cond:
                job = None
                while self._running:
                    now = self._clock.monotonic()
                    if self._heap and self._heap[0].due <= now:
                        job = heapq.heappop(self._heap)
                        self._in_flight += 1
                        break
                    self._cond.wait(self._heap[0].due - now if self._heap else None)
                if job is None:
                    return
            try:
                self._attempt(job)
            except Exception:  # a sender thread must survive anything; log it
                log.exception("webhook attempt crashed")
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _attempt(self, job: _Job) -> None:
        hook, ev = job.webhook, job.event
        delivery_id = str(uuid.uuid4())  # Plane makes a new one on every attempt
        body = build_body(hook, ev, delivery_id)
        event_header = ev.v2["event"] if hook.version == "v2" and ev.v2 else ev.event
        # The headers Plane's webhook task gives requests; requests adds its own defaults.
        plane_headers = {
            "Content-Type": "application/json",
            "User-Agent": "Autopilot",
            "X-Plane-Delivery": delivery_id,
            "X-Plane-Event": event_header,
        }
        if hook.secret_key:
            plane_headers["X-Plane-Signature"] = sign(hook.secret_key, body)
        request = _prepare(hook.url, plane_headers, body)
        headers = dict(request.headers)
        attempt = WebhookAttempt(
            hook.id, hook.url, ev.event, ev.action, delivery_id, ev.event_id, headers, body,
            job.retry, "delivered",
        )  # fmt: skip
        retryable = False
        attempt.sent_at = time.time()
        if self.block_private and _is_private(hook.url):
            # Plane's send-time SSRF check drops the delivery silently, without a retry.
            attempt.outcome, attempt.error = "blocked", "private or loopback address"
        else:
            requests = require_requests()
            try:
                attempt.status = _send(request, self.timeout)
                if not 200 <= attempt.status < 300:
                    attempt.outcome = "http_error"
                    retryable = self.retry_on_5xx and attempt.status >= 500
            except requests.Timeout as exc:
                attempt.outcome, attempt.error, retryable = "timeout", str(exc) or "timeout", True
            except requests.RequestException as exc:  # refused, reset, DNS, too many redirects
                attempt.outcome, attempt.error, retryable = "connection_error", str(exc), True
        attempt.answered_at = time.time()
        if retryable:
            if job.retry < self.max_retries:
                cap = min(self.backoff_max, self.backoff * (2**job.retry))
                wait = self._rng.uniform(0, cap) if self.jitter else cap
                retry_job = _Job(
                    self._clock.monotonic() + self._clock.scaled(wait),
                    next(self._seq), hook, ev, job.retry + 1,
                )  # fmt: skip
                with self._cond:
                    heapq.heappush(self._heap, retry_job)
            else:
                hook.is_active = False
                attempt.webhook_disabled = True
                if self._on_disable:
                    self._on_disable(hook)
        with self._cond:
            self._attempts.append(attempt)
            self._cond.notify_all()


def sign(secret: str, body: bytes) -> str:
    """Plane's X-Plane-Signature: hex HMAC-SHA256 of the body keyed with the secret's UTF-8."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def build_body(hook: Webhook, ev: WebhookEvent, delivery_id: str) -> bytes:
    """The request body: Python's default ``json.dumps`` (", " / ": ", ASCII escapes)."""
    payload: dict[str, Any]
    if hook.version == "v1":
        payload = {
            "event": ev.event,
            "action": ev.action,
            "webhook_id": hook.id,
            "workspace_id": hook.workspace_id,
            "data": ev.data,
            "activity": ev.activity,
        }
    else:
        # Key order of the payload structure in Plane's webhook docs.
        v2 = ev.v2 or {}
        payload = {
            "version": "v2",
            "delivery_id": delivery_id,
            "event_id": ev.event_id,
            "entity_id": v2.get("entity_id", ev.entity_id),
            "entity_type": v2.get("entity_type"),
            "event": v2.get("event"),
            "webhook_id": hook.id,
            "workspace_id": hook.workspace_id,
            "data": v2.get("data", {}),
            "previous_attributes": v2.get("previous_attributes", {}),
        }
    return json.dumps(payload).encode("utf-8")


def _is_private(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if addr.is_private or addr.is_loopback or addr.is_reserved or addr.is_link_local:
            return True
    return False


def require_requests() -> Any:
    """The ``requests`` module, or ImportError saying how to install it."""
    return require("requests", "testing", "the emulator sends webhooks with requests, like Plane")


def _session() -> Any:
    session = require_requests().Session()
    # The receiver is the test's own: a proxy or .netrc from the developer's environment must not
    # come between (Plane's worker has none configured for its webhook targets either).
    session.trust_env = False
    return session


def _prepare(url: str, headers: dict[str, str], body: bytes) -> Any:
    """The request as ``requests.post(url, data=body, headers=headers)`` would send it."""
    requests = require_requests()
    with _session() as session:
        return session.prepare_request(requests.Request("POST", url, headers, data=body))


def _send(request: Any, timeout: float) -> int:
    """Send a prepared POST; requests follows redirects (a 301/302/303 becomes a GET)."""
    with _session() as session:
        return int(session.send(request, timeout=timeout, allow_redirects=True).status_code)
