"""``plane-connector webhook``: a small stdlib HTTP server around the webhook receiver.

For the demo and for users without Odoo: ``POST /plane/webhook`` goes through
:class:`plane_connector.webhooks.WebhookReceiver` into a SQLite or PostgreSQL delivery store;
``GET /healthz`` reports the store's row counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from plane_connector.dedupe import Delivery, describe_error, open_store
from plane_connector.webhooks import WebhookReceiver

_log = logging.getLogger("plane_connector.cli.webhook")

DEFAULT_STORE = "sqlite:plane-webhooks.sqlite3"
DEFAULT_PATH = "/plane/webhook"

#: PostgreSQL connections the webhook server keeps open between deliveries.
WEBHOOK_POOL_SIZE = 8


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "webhook",
        help="run a Plane webhook receiver (HTTP) storing deliveries in SQLite or PostgreSQL",
        description="Receive Plane webhooks on POST PATH: signature check, validation, durable "
        "dedupe (delivery id, body SHA-256, v2 event_id). Deliveries wait in the store for "
        "processing; --log-events logs each accepted one.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    p.add_argument("--path", default=DEFAULT_PATH, help=f"URL path (default {DEFAULT_PATH})")
    p.add_argument(
        "--secret-ref",
        help="reference to the webhook signing secret: env:NAME, file:/path, keyring:svc/name, "
        "vault:name (never the secret itself)",
    )
    p.add_argument(
        "--store",
        default=DEFAULT_STORE,
        help=f"sqlite:PATH or postgresql://... (default {DEFAULT_STORE})",
    )
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="accept deliveries without a signature when no secret is given (testing only)",
    )
    p.add_argument("--max-body", type=int, default=1_048_576, help="body size limit in bytes")
    p.add_argument(
        "--drop-on-store-error",
        action="store_true",
        help="when the store is down, close the connection instead of answering 503 "
        "(Plane CE retries connection failures but never a 5xx)",
    )
    p.add_argument(
        "--log-events",
        action="store_true",
        help="log each accepted delivery and mark it done (inline processing)",
    )
    p.set_defaults(func=run)


def resolve_secret(ref: str) -> Any:
    """Resolve a secret reference through plane_connector.secrets (a ``Redacted`` holder), else
    ``env:NAME`` inline."""
    try:
        from plane_connector.secrets import resolve_redacted  # noqa: PLC0415 - optional module
    except ImportError:
        scheme, _, name = ref.partition(":")
        if scheme != "env" or not name:
            raise ValueError(f"unsupported secret reference {ref.split(':', 1)[0]!r}") from None
        value = os.environ.get(name)
        if not value:
            raise ValueError(f"environment variable {name} is not set") from None
        return value
    return resolve_redacted(ref)


def make_server(
    receiver: WebhookReceiver,
    host: str = "127.0.0.1",
    port: int = 0,
    path: str = DEFAULT_PATH,
    *,
    drop_on_store_error: bool = False,
) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) routing ``POST path`` to ``receiver.handle``.

    ``drop_on_store_error``: when the store is down, close the connection without an answer
    instead of a 503. Plane CE retries only connection failures, never a 5xx, so this is what
    makes it deliver again once the database is back.
    """

    class Handler(BaseHTTPRequestHandler):
        server_version = "plane-connector-webhook"
        protocol_version = "HTTP/1.1"
        timeout = 30  # a sender that stalls mid-body must not hold a thread forever

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            _log.debug("%s " + format, self.address_string(), *args)

        def _answer(self, status: int, body: dict[str, Any], *, close: bool = False) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if self.path.split("?", 1)[0] != "/healthz":
                self._answer(404, {"status": "rejected", "reason": "not found"})
                return
            try:
                counts = receiver.store.counts()  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                self._answer(503, {"status": "error", "reason": describe_error(exc)})
                return
            self._answer(200, {"status": "ok", "deliveries": counts})

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            if self.path.split("?", 1)[0] != path:
                self._answer(404, {"status": "rejected", "reason": "not found"}, close=True)
                return
            headers = dict(self.headers.items())
            early = receiver.precheck(headers)
            if early is not None:
                # The body is not read, so the connection cannot be reused.
                self._answer(*early, close=True)
                return
            if self.headers.get("Content-Length") is None:
                self._answer(
                    411, {"status": "rejected", "reason": "Content-Length required"}, close=True
                )
                return
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, answer = receiver.handle(headers, body)
            if status == 503 and drop_on_store_error:
                _log.warning("store unavailable: dropping the connection so Plane retries")
                self.close_connection = True
                return
            self._answer(status, answer)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _log_event(delivery: Delivery) -> None:
    data = delivery.data if isinstance(delivery.data, dict) else {}
    _log.info(
        "event %s.%s delivery=%s entity=%s",
        delivery.event,
        delivery.action,
        delivery.delivery_id,
        data.get("id"),
    )


def run(args: argparse.Namespace) -> int:
    secret = None
    if args.secret_ref:
        try:
            secret = resolve_secret(args.secret_ref)
        except Exception as exc:  # noqa: BLE001 - the message names the reference, not the value
            _log.error("cannot resolve --secret-ref: %s", exc)
            return 2
    elif not args.allow_unsigned:
        _log.error("give --secret-ref REF (or --allow-unsigned for a test setup)")
        return 2
    try:
        # The server's threads reuse their PostgreSQL connections (a new one per delivery
        # capped it at about 120 deliveries/s on a local server).
        store = open_store(args.store, pool_size=WEBHOOK_POOL_SIZE)
    except Exception as exc:  # noqa: BLE001 - any store error is fatal at start-up
        _log.error("cannot open the delivery store: %s", describe_error(exc))
        return 2
    receiver = WebhookReceiver(
        store,
        secret,
        allow_unsigned=args.allow_unsigned,
        max_body=args.max_body,
        on_accepted=_log_event if args.log_events else None,
    )
    server = make_server(
        receiver, args.host, args.port, args.path, drop_on_store_error=args.drop_on_store_error
    )
    host, port = server.server_address[:2]
    _log.info("listening on http://%s:%s%s (store %s)", host, port, args.path, type(store).__name__)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        _log.info("stopped")
    finally:
        server.server_close()
    return 0
