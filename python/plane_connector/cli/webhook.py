"""``plane-connector webhook``: a small stdlib HTTP server around the webhook receiver.

For the demo and for users without Odoo: ``POST /plane/webhook`` goes through
:class:`plane_connector.webhooks.WebhookReceiver` into a SQLite or PostgreSQL delivery store;
``GET /healthz`` reports the store's row counts.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import time
from typing import Any

from plane_connector._graceful import (
    DEFAULT_GRACE,
    CountedHandler,
    ThreadingServer,
    install_stop_handlers,
    serve_until_stopped,
)
from plane_connector.dedupe import Delivery, describe_error, open_store
from plane_connector.webhooks import WebhookReceiver

_log = logging.getLogger("plane_connector.cli.webhook")

DEFAULT_STORE = "sqlite:plane-webhooks.sqlite3"
DEFAULT_PATH = "/plane/webhook"

#: PostgreSQL connections the webhook server keeps open between deliveries.
WEBHOOK_POOL_SIZE = 8
#: Seconds a whole request may take, from the wait for its first line to its last body byte.
DEFAULT_REQUEST_TIMEOUT = 30.0
MAX_REQUEST_TIMEOUT = 3600.0
#: Connections handled at once; more are answered 503. Each holds at most max_body bytes.
DEFAULT_MAX_CONNECTIONS = 64
#: Bytes read from the socket per call while reading a body.
READ_SLICE = 65536


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
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT,
        help="seconds one request may take in all, headers and body (default "
        f"{DEFAULT_REQUEST_TIMEOUT:g}); a slower body is answered 408",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"connections handled at once; beyond it the answer is 503 (default "
        f"{DEFAULT_MAX_CONNECTIONS})",
    )
    p.add_argument(
        "--drop-on-store-error",
        action="store_true",
        help="when the store is down, close the connection instead of answering 503 "
        "(Plane CE retries connection failures but never a 5xx)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        help=f"on SIGTERM/SIGINT, seconds the deliveries in flight get to finish "
        f"(default {DEFAULT_GRACE:g})",
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
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> ThreadingServer:
    """An HTTP server (not yet serving) routing ``POST path`` to ``receiver.handle``.

    ``drop_on_store_error``: when the store is down, close the connection without an answer
    instead of a 503. Plane CE retries only connection failures, never a 5xx, so this is what
    makes it deliver again once the database is back.

    A body is never held beyond ``receiver.max_body`` bytes. The headers are judged by
    ``receiver.precheck`` before any body byte is read: several ``Content-Length`` headers, or
    one with ``Transfer-Encoding``, are a 400; a ``Content-Length`` above the limit a 413; neither
    header a 411. The body is then read in slices, never more than ``max_body + 1`` bytes (a
    chunked one chunk by chunk, refused with 413 as soon as it would pass the limit); one
    shorter than its ``Content-Length`` is a 400. Every POST answer closes the connection, so
    bytes a sender put after its declared body are never read as another request.

    ``request_timeout`` bounds a whole request (the wait for it included), not each read: a
    sender trickling a byte now and then is answered 408 once it is used up.
    ``max_connections`` caps the connections handled at once; the next ones are answered 503.
    """
    max_body = receiver.max_body
    if not 0 < request_timeout <= MAX_REQUEST_TIMEOUT or max_connections < 1:
        raise ValueError(
            f"--request-timeout must be in (0, {MAX_REQUEST_TIMEOUT:g}] seconds and "
            "--max-connections at least 1"
        )

    class Handler(CountedHandler):
        server_version = "plane-connector-webhook"
        protocol_version = "HTTP/1.1"
        # Writes only (the answer to a peer that does not read): reads follow the deadline.
        timeout = 30
        _deadline = 0.0

        def setup(self) -> None:
            super().setup()
            # Every read goes through the request's deadline (the socket timeout alone is per
            # read: one byte every 29 s held a thread forever).
            self.rfile.close()
            self.rfile = io.BufferedReader(_DeadlineReader(self), READ_SLICE)

        def handle_one_request(self) -> None:
            self._deadline = time.monotonic() + request_timeout
            super().handle_one_request()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            _log.debug("%s " + format, self.address_string(), *args)

        def _answer(self, status: int, body: dict[str, Any], *, close: bool = False) -> None:
            data = json.dumps(body).encode()
            self.connection.settimeout(self.timeout)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _refuse(self, status: int, reason: str) -> None:
            """Answer without (fully) reading the body, then close the connection."""
            self._answer(status, {"status": "rejected", "reason": reason}, close=True)
            self.wfile.flush()
            _discard_unread(self.connection)

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
                self._refuse(404, "not found")
                return
            # The parsed headers keep repeated ones: precheck sees every Content-Length.
            early = receiver.precheck(self.headers, wire=True)
            if early is not None:
                self._refuse(early[0], early[1].get("reason", "rejected"))
                return
            headers = dict(self.headers.items())  # no repeated framing header is left
            body = self._read_body()
            if body is None:
                return  # refused already
            status, answer = receiver.handle(headers, body)
            if status == 503 and drop_on_store_error:
                _log.warning("store unavailable: dropping the connection so Plane retries")
                self.close_connection = True
                return
            self._answer(status, answer, close=True)
            if status >= 400:
                # Refused (a lying Content-Length fails the signature): bytes may still be
                # coming, and closing on them would reset the connection before our answer.
                self.wfile.flush()
                _discard_unread(self.connection)

        def _read_body(self) -> bytes | None:
            """The body, at most ``max_body`` bytes of it held at any time; None once refused.

            The framing headers passed ``precheck``: exactly one of them, a valid one."""
            try:
                if self.headers.get("Transfer-Encoding") is not None:
                    body = read_chunked(self.rfile, max_body)
                    if body is None:
                        self._refuse(413, f"body larger than {max_body} bytes")
                    return body
                expected = int(self.headers["Content-Length"])
                body = read_limited(self.rfile, expected, max_body)
            except ValueError as exc:
                self._refuse(400, f"malformed chunked body: {exc}")
                return None
            except TimeoutError:
                self._refuse(408, "the request did not arrive in time")
                return None
            if body is None:
                self._refuse(413, f"body larger than {max_body} bytes")
                return None
            if len(body) < expected:
                self._refuse(400, "body shorter than its Content-Length")
                return None
            return body

    server = ThreadingServer((host, port), Handler)
    server.max_connections = max_connections
    return server


class _DeadlineReader(io.RawIOBase):
    """The socket of a handler, read with whatever is left of the handler's ``_deadline``."""

    def __init__(self, handler: Any) -> None:
        super().__init__()
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._handler._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        conn = self._handler.connection
        conn.settimeout(left)
        return int(conn.recv_into(buffer))


def read_limited(rfile: Any, length: int, limit: int) -> bytes | None:
    """``length`` bytes (fewer if the stream ends first), read in slices; None beyond ``limit``.

    Never reads more than ``limit + 1`` bytes whatever ``length`` claims, so what is held stays
    bounded even if a caller skipped the Content-Length check."""
    body = bytearray()
    want = min(length, limit + 1)
    while len(body) < want:
        data = rfile.read(min(READ_SLICE, want - len(body)))
        if not data:
            break
        body += data
    if len(body) > limit:
        return None
    return bytes(body)


def read_chunked(rfile: Any, limit: int) -> bytes | None:
    """A chunked body read incrementally; None as soon as it would exceed ``limit`` bytes.

    A chunk is only read once its declared size fits what is left of ``limit``, so the memory
    held never passes ``limit`` (plus one size line). Raises ``ValueError`` on bad framing.
    """
    body = bytearray()
    while True:
        line = rfile.readline(_MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            raise ValueError("a chunk size line is too long or cut short")
        size_field = line.split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise ValueError("a chunk size is not hexadecimal") from None
        if size < 0:
            raise ValueError("a chunk size is negative")
        if size == 0:
            for _ in range(_MAX_TRAILERS):  # trailers, ignored, up to the blank line
                trailer = rfile.readline(_MAX_CHUNK_LINE + 1)
                if trailer in (b"\r\n", b"\n"):
                    return bytes(body)
                if not trailer.endswith(b"\n"):
                    raise ValueError("the body ends without its final blank line")
            raise ValueError("too many trailer lines")
        if len(body) + size > limit:
            return None
        data = read_limited(rfile, size, size)
        if data is None or len(data) < size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise ValueError("a chunk is cut short")
        body += data


#: Longest chunk-size (or trailer) line accepted, and most trailer lines.
_MAX_CHUNK_LINE = 4096
_MAX_TRAILERS = 32


def _discard_unread(conn: socket.socket, *, seconds: float = 2.0) -> None:
    """Half-close, then read and drop what the sender is still sending, for a bounded time.

    Closing a socket with unread data sends a reset, which can destroy our answer before the
    sender reads it; draining (without keeping anything) lets a 413 or 411 arrive.
    """
    try:
        conn.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            if not conn.recv(65536):
                break
    except OSError:
        pass


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
    # Before "listening" is announced: a stop signal from then on is always handled.
    stop = install_stop_handlers()
    try:
        server = make_server(
            receiver,
            args.host,
            args.port,
            args.path,
            drop_on_store_error=args.drop_on_store_error,
            request_timeout=args.request_timeout,
            max_connections=args.max_connections,
        )
    except ValueError as exc:
        _log.error("%s", exc)
        return 2
    except OSError as exc:
        _log.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 2
    host, port = server.server_address[:2]
    _log.info("listening on http://%s:%s%s (store %s)", host, port, args.path, type(store).__name__)
    close = getattr(store, "close", None)
    try:
        return serve_until_stopped(server, stop, log=_log, grace=args.grace, on_close=close)
    finally:
        server.server_close()
