"""The framework-agnostic Plane webhook receiver: ``(headers, raw_body) -> (status, json_body)``.

Pipeline, in this order, each step refusing before the next one reads anything:

1. framing and size (400 for repeated or conflicting length headers, 413), before the body is
   looked at (:meth:`WebhookReceiver.precheck`, which adapters call before reading);
2. ``X-Plane-Signature``: HMAC-SHA256 of the raw bytes (401), before the body is parsed;
3. ``X-Plane-Delivery`` (a UUID), ``X-Plane-Event``, JSON body with event/action/data (400);
4. claim: the delivery row is inserted and committed, insert-or-nothing on delivery id, body
   fingerprint and v2 ``event_id`` (a duplicate answers 200 and does nothing else; a store
   failure answers 503 and stores nothing);
5. optional inline processing (``on_accepted``), only after the claim is committed.

Odoo's controller and any Flask/FastAPI/Django view are thin adapters over
:meth:`WebhookReceiver.handle`; see ``docs/readme/webhooks.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import plane_connector as _pc
from plane_connector.dedupe import (
    Backoff,
    ClaimResult,
    Delivery,
    DeliveryStore,
    describe_error,
)

__all__ = [
    "ClaimResult",
    "Delivery",
    "DeliveryStore",
    "EventKind",
    "WebhookReceiver",
    "normalize_event",
    "precheck_headers",
    "parse_delivery",
    "WebhookRejected",
]

_log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1_048_576
#: How long an inline-processed row stays invisible to the queue workers: the inline handler
#: marks it done or failed well before; if the process dies, a worker picks it up after this.
DEFAULT_INLINE_LEASE = 300.0

_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
# Content-Length is 1*DIGIT (RFC 9110); 20 digits pass any body size and keep int() cheap.
_DIGITS_RE = re.compile(r"[0-9]{1,20}")

try:  # the Rust core's hierarchy; older cores only had the verifier
    _ConfigError: type[Exception] = _pc.ConfigError  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - depends on the build of the core
    _ConfigError = ValueError


#: Plane Cloud v2 entity names (lower case) -> the CE v1 names handlers see.
V2_ENTITIES = {
    "workitem": "issue",
    "work_item": "issue",
    "workitem.comment": "issue_comment",
    "work_item.comment": "issue_comment",
}
_ACTIONS = frozenset({"created", "updated", "deleted"})


class EventKind(NamedTuple):
    """What an event is about and what happened, in CE v1 terms for both Plane editions."""

    entity: str
    action: str


def normalize_event(event: str, action: str | None = None) -> EventKind:
    """``(entity, action)`` of a delivery, for CE v1 and Cloud v2 alike.

    CE v1 names the entity in ``event`` (``issue``, ``issue_comment``, ``project``…) and the
    action in the body. Cloud v2 dots the action onto the event (``workitem.updated``,
    ``workitem.comment.created``; the docs also show ``…WORK_ITEM_UPDATED``) and renames the
    entities: v2 names map to the v1 ones (``workitem`` -> ``issue``), so a handler is written
    once. An action the event names wins over ``action``; the entity is lower case.
    """
    name = event.strip().lower()
    head, dot, last = name.rpartition(".")
    if dot and last in _ACTIONS:
        entity, verb = head, last
    else:
        stem, underscore, tail = last.rpartition("_")
        if dot and underscore and tail in _ACTIONS:
            # "workitem.WORK_ITEM_UPDATED": the prefix names the entity.
            entity, verb = head, tail
        else:
            entity, verb = name, None
    entity = V2_ENTITIES.get(entity, entity)
    return EventKind(entity, verb or (action.strip().lower() if isinstance(action, str) else ""))


class WebhookRejected(Exception):
    """A delivery refused by validation; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookReceiver:
    """Verifies, validates and durably claims Plane webhook deliveries.

    ``store`` is a :class:`~plane_connector.dedupe.DeliveryStore` (PostgreSQL or SQLite).
    ``secret`` is the webhook's signing secret (``plane_wh_…``; a str, bytes, or a
    ``plane_connector.secrets.Redacted`` holder), or a list of them while a regenerated secret
    rolls out. ``secret=None`` is refused unless ``allow_unsigned=True``,
    an explicit choice that is logged as a WARNING.

    ``on_accepted(delivery)`` (optional) runs inline after the claim is committed; on success
    the row is marked done, on an exception the row is marked failed and left to the queue
    (at-least-once: make it idempotent). Without it, rows wait in state ``received`` for
    ``store.process_pending`` (Odoo's cron), the exactly-once path.
    """

    def __init__(
        self,
        store: DeliveryStore,
        secret: str | bytes | Any | Iterable[str | bytes | Any] | None,
        *,
        allow_unsigned: bool = False,
        max_body: int = DEFAULT_MAX_BODY,
        on_accepted: Callable[[Delivery], object] | None = None,
        inline_lease: float = DEFAULT_INLINE_LEASE,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
    ) -> None:
        if isinstance(secret, (str, bytes)) or _is_redacted(secret):
            secrets: tuple[Any, ...] = (secret,)
        elif secret is None:
            secrets = ()
        else:
            secrets = tuple(secret)
        if any(not _reveal(s) for s in secrets):
            raise _ConfigError("webhook secret is empty: pass the webhook's signing secret")
        if not secrets and not allow_unsigned:
            raise _ConfigError(
                "no webhook secret configured: pass the webhook's signing secret, or "
                "allow_unsigned=True to accept unsigned deliveries (never in production)"
            )
        if not secrets:
            _log.warning(
                "webhook receiver accepts UNSIGNED deliveries (allow_unsigned=True, no secret): "
                "anyone who can reach the endpoint can inject events"
            )
        if max_body < 1:
            raise _ConfigError("max_body must be a positive number of bytes")
        self._store = store
        self._secrets = secrets
        self.max_body = int(max_body)
        self.on_accepted = on_accepted
        self.inline_lease = float(inline_lease)
        self.max_attempts = max_attempts
        self.backoff = backoff

    def __repr__(self) -> str:
        signed = f"{len(self._secrets)} secret(s)" if self._secrets else "UNSIGNED"
        store = type(self._store).__name__
        return f"WebhookReceiver(store={store}, {signed}, max_body={self.max_body})"

    @property
    def store(self) -> DeliveryStore:
        return self._store

    def precheck(
        self, headers: Mapping[str, str] | Any, *, wire: bool = False
    ) -> tuple[int, dict[str, Any]] | None:
        """Refuse from the headers alone, before any of the body is read; None when they pass.

        The one place that judges a request's framing, so adapters need not read a huge or
        ambiguous body: 400 for several ``Content-Length`` headers (even equal ones), for one
        that is not plain digits, for ``Content-Length`` together with ``Transfer-Encoding``;
        413 for a ``Content-Length`` above ``max_body``.

        ``headers`` may be a mapping, or, to see repeated headers, the object a server parsed
        (``email.message.Message`` from ``http.server``, anything with ``get_all`` or
        ``getlist``) or a list of ``(name, value)`` pairs: a size check on one copy of a
        repeated ``Content-Length`` and a read on another is how a 4 GB body got past a 1 MiB
        limit.

        ``wire=True`` is for an adapter that reads the body off the socket itself (the CLI
        server): it also answers 400 to a ``Transfer-Encoding`` other than one ``chunked``,
        and 411 to a request with neither ``Content-Length`` nor ``Transfer-Encoding``.
        """
        return precheck_headers(headers, self.max_body, wire=wire)

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Run the pipeline on one request; returns (HTTP status, JSON-able answer).

        200 ``accepted`` (claimed) or ``duplicate`` (already stored: nothing done); 400/401/413
        ``rejected`` with a reason (nothing stored); 503 ``error`` when the store is unavailable
        (nothing stored, the sender should retry).
        """
        early = self.precheck(headers)
        if early is not None:
            return early
        if not isinstance(body, (bytes, bytearray, memoryview)):
            return _reject(400, "body must be the raw request bytes")
        body = bytes(body)
        if len(body) > self.max_body:
            return _reject(413, f"body larger than {self.max_body} bytes")
        signature = _header(headers, "X-Plane-Signature")
        if self._secrets:
            if not signature:
                return _reject(401, "missing X-Plane-Signature")
            if not any(_pc.verify_signature(_reveal(s), body, signature) for s in self._secrets):
                return _reject(401, "X-Plane-Signature does not match the body")
        try:
            delivery = parse_delivery(headers, body)
        except WebhookRejected as exc:
            return _reject(exc.status, exc.reason)

        defer = self.inline_lease if self.on_accepted is not None else 0.0
        try:
            claim = self._store.claim(delivery, defer=defer)
        except Exception as exc:  # noqa: BLE001 - any store failure is a 503, never a half row
            _log.error(
                "webhook delivery %s (%s.%s) not stored, answering 503: %s",
                delivery.delivery_id,
                delivery.event,
                delivery.action,
                describe_error(exc),
            )
            return 503, {
                "status": "error",
                "reason": "delivery store unavailable; nothing was stored, retry later",
                "delivery_id": delivery.delivery_id,
            }
        if not claim.claimed:
            # Quiet on purpose: a retry storm is normal Plane behaviour, not news.
            _log.debug(
                "webhook delivery %s is a duplicate (same %s as %s), ignored",
                delivery.delivery_id,
                claim.duplicate_of,
                claim.existing_delivery_id,
            )
            return 200, {
                "status": "duplicate",
                "delivery_id": delivery.delivery_id,
                "duplicate_of": claim.duplicate_of,
                "original_delivery_id": claim.existing_delivery_id,
            }
        _log.debug(
            "webhook delivery %s (%s.%s) claimed",
            delivery.delivery_id,
            delivery.event,
            delivery.action,
        )
        answer: dict[str, Any] = {"status": "accepted", "delivery_id": delivery.delivery_id}
        if self.on_accepted is not None:
            answer["processed"] = self._run_inline(delivery)
        return 200, answer

    async def handle_async(
        self, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """:meth:`handle` for asyncio frameworks: the blocking store work runs in a thread."""
        return await asyncio.to_thread(self.handle, headers, body)

    def _run_inline(self, delivery: Delivery) -> bool:
        try:
            self.on_accepted(delivery)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - the row keeps the error; the queue retries
            try:
                self._store.mark_failed(
                    delivery.delivery_id,
                    exc,
                    max_attempts=self.max_attempts,
                    backoff=self.backoff,
                )
            except Exception as store_exc:  # noqa: BLE001 - the lease expiry retries it anyway
                _log.warning(
                    "could not record the failure of delivery %s: %s",
                    delivery.delivery_id,
                    describe_error(store_exc),
                )
            return False
        try:
            self._store.mark_done(delivery.delivery_id)
        except Exception as exc:  # noqa: BLE001 - processed; the row is re-run after the lease
            _log.warning(
                "delivery %s processed but not marked done (it may run again): %s",
                delivery.delivery_id,
                describe_error(exc),
            )
        return True


def precheck_headers(
    headers: Mapping[str, str] | Any, max_body: int, *, wire: bool = False
) -> tuple[int, dict[str, Any]] | None:
    """:meth:`WebhookReceiver.precheck` for a ``max_body``, without a receiver: for an adapter
    that must judge a request's framing before it can build one (Odoo's controller answers a
    request for a database it cannot serve with the same 400/413 as any other)."""
    lengths = _header_values(headers, "Content-Length")
    encodings = _header_values(headers, "Transfer-Encoding")
    if len(lengths) > 1:
        return _reject(400, "several Content-Length headers")
    if lengths and encodings:
        return _reject(400, "both Transfer-Encoding and Content-Length")
    if wire and encodings and (
        len(encodings) > 1 or encodings[0].strip().lower() != "chunked"
    ):
        return _reject(400, f"unsupported Transfer-Encoding {', '.join(encodings)[:40]!r}")
    if lengths:
        value = lengths[0].strip()
        if not _DIGITS_RE.fullmatch(value):
            return _reject(400, "Content-Length is not a non-negative integer")
        if int(value) > max_body:
            return _reject(413, f"body larger than {max_body} bytes")
    elif wire and not encodings:
        return _reject(411, "Content-Length required")
    return None


def parse_delivery(headers: Mapping[str, str], body: bytes) -> Delivery:
    """Validate the headers and the (already authenticated) body; raise WebhookRejected(400).

    Accepts Plane CE v1 payloads (``event``, ``action``, ``data``, …) and Plane Cloud v2 ones
    (dot-notation ``event`` such as ``workitem.created``, ``event_id``, ``delivery_id``; the
    action is the one the event names, see :func:`normalize_event`). ``event`` is kept as sent
    (it is stored); ``normalize_event(delivery.event, delivery.action).entity`` is the entity.
    """
    delivery_id = _header(headers, "X-Plane-Delivery")
    if not delivery_id:
        raise WebhookRejected(400, "missing X-Plane-Delivery")
    delivery_id = delivery_id.strip()
    if not _UUID_RE.match(delivery_id):
        raise WebhookRejected(400, "X-Plane-Delivery is not a UUID")
    delivery_id = delivery_id.lower()
    header_event = (_header(headers, "X-Plane-Event") or "").strip()
    if not header_event:
        raise WebhookRejected(400, "missing X-Plane-Event")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(400, "body is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "body is not a JSON object")
    event = payload.get("event")
    if not isinstance(event, str) or not _TOKEN_RE.match(event):
        raise WebhookRejected(400, "body has no valid 'event'")
    action = payload.get("action")
    is_v2 = payload.get("version") == "v2" or "event_id" in payload
    if is_v2 and (action is None or isinstance(action, str)):
        action = normalize_event(event, action).action or _action_of(event)
    if not isinstance(action, str) or not _TOKEN_RE.match(action):
        raise WebhookRejected(400, "body has no valid 'action'")
    if not isinstance(payload.get("data"), dict):
        raise WebhookRejected(400, "body has no 'data' object")
    event_id = payload.get("event_id")
    if event_id is not None and (not isinstance(event_id, str) or not _TOKEN_RE.match(event_id)):
        raise WebhookRejected(400, "body has an invalid 'event_id'")
    webhook_id = payload.get("webhook_id")
    if header_event != event:
        # Not signed, so the body wins; worth a trace when they disagree.
        _log.debug("X-Plane-Event %r differs from the body's event %r", header_event, event)
    return Delivery(
        delivery_id=delivery_id,
        event=event,
        action=action,
        fingerprint=hashlib.sha256(body).hexdigest(),
        event_id=event_id or None,
        webhook_id=webhook_id if isinstance(webhook_id, str) and webhook_id else None,
        body=body,
        payload=payload,
    )


def _is_redacted(value: object) -> bool:
    # plane_connector.secrets.Redacted (or any holder with get()), kept wrapped until use.
    return callable(getattr(value, "get", None)) and not isinstance(value, Mapping)


def _reveal(secret: Any) -> str | bytes:
    return secret.get() if _is_redacted(secret) else secret  # type: ignore[no-any-return]


def _action_of(event: str) -> str:
    # An event that names no action (and a body without one): its last word, as ever, so the
    # delivery is stored rather than refused (Plane would retry a 400 for a day).
    last = event.rsplit(".", 1)[-1]
    return last.rsplit("_", 1)[-1].lower()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lname = name.lower()
        for key, val in headers.items():
            if key.lower() == lname:
                value = val
                break
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value


def _header_values(headers: Any, name: str) -> list[str]:
    """Every value of header ``name``: repeated headers are kept where ``headers`` keeps them."""
    values: list[Any]
    get_all = getattr(headers, "get_all", None) or getattr(headers, "getlist", None)
    if callable(get_all):
        values = list(get_all(name) or [])
    elif isinstance(headers, Mapping):
        value = _header(headers, name)
        values = [] if value is None else [value]
    else:
        lname = name.lower()
        values = [v for k, v in headers if str(k).lower() == lname]
    return [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]


def _reject(status: int, reason: str) -> tuple[int, dict[str, Any]]:
    _log.info("webhook rejected with %d: %s", status, reason)
    return status, {"status": "rejected", "reason": reason}
