"""Graceful stop for the command-line HTTP servers (``plane-connector webhook`` and ``emulate``).

Docker and systemd stop a service with SIGTERM, a terminal with SIGINT; both mean the same here:
stop accepting (the listening socket is closed at once), let the requests already being handled
finish within a grace period, close what the server holds (connection pools), exit 0.

The handlers are installed explicitly for both signals. A process started in the background by a
shell (``nohup cmd &``, CI runners) inherits SIGINT *ignored*, and Python then installs no
KeyboardInterrupt handler of its own: a server that relied on KeyboardInterrupt never stopped.
"""

from __future__ import annotations

import json
import logging
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer
from types import FrameType
from typing import Any

#: Seconds the requests in flight get to finish after a stop signal.
DEFAULT_GRACE = 10.0


class ThreadingServer(ThreadingHTTPServer):
    """A threading HTTP server whose accept loop can always be stopped, with an optional cap on
    the connections it handles at once.

    ``serve_forever`` calls a blocking ``accept()`` once ``select()`` says the listening socket is
    readable. Seen here once in a full test run: the accept found nothing and blocked, and
    ``shutdown()`` then waited for a connection that never came. With the listening socket
    non-blocking, such an accept raises ``BlockingIOError``, which socketserver drops, and the loop
    goes on to notice the stop request.

    ``max_connections`` (None: no cap, the emulator's choice): a connection accepted while that
    many are being handled gets no thread; it is answered 503 by one shared :class:`_Rejecter`
    thread and closed. Without it, every connection a peer opens costs a thread and up to a
    body's worth of memory, without limit.
    """

    daemon_threads = True
    max_connections: int | None = None
    _open_connections = 0
    _rejecter: _Rejecter | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._count_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.setblocking(False)

    def get_request(self) -> tuple[Any, Any]:
        conn, addr = self.socket.accept()
        # Whether an accepted socket inherits non-blocking mode depends on the OS; handlers read
        # with blocking calls.
        conn.setblocking(True)
        return conn, addr

    @property
    def open_connections(self) -> int:
        """Connections with a handler thread right now (counted only with ``max_connections``)."""
        return self._open_connections

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.max_connections is None:
            super().process_request(request, client_address)
            return
        with self._count_lock:
            full = self._open_connections >= self.max_connections
            if not full:
                self._open_connections += 1
        if full:
            if self._rejecter is None:
                self._rejecter = _Rejecter()
            self._rejecter.reject(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()  # no thread started: the slot is free again
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            if self.max_connections is not None:
                self._release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A peer that hung up before our answer is ordinary traffic, not a traceback on stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            logging.getLogger(__name__).debug("client %s went away", client_address)
            return
        super().handle_error(request, client_address)

    def _release(self) -> None:
        with self._count_lock:
            self._open_connections -= 1


_BUSY_BODY = json.dumps(
    {"status": "error", "reason": "too many connections; retry later"}
).encode()
_BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s"
    % (len(_BUSY_BODY), _BUSY_BODY)
)


class _Rejecter:
    """Answers the connections over a server's cap: one thread for all of them.

    Each gets the 503 at once (a few hundred bytes fit the empty send buffer of a new
    connection, so the send never blocks), then what its sender still sends is read and dropped
    for up to ``drain`` seconds: closing on unread bytes sends a reset, which can destroy the
    answer before the sender reads it. At most ``max_pending`` wait at once; beyond that a
    connection is closed without an answer.
    """

    def __init__(self, *, drain: float = 1.0, max_pending: int = 256) -> None:
        self.drain = drain
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._waiting: dict[socket.socket, float] = {}
        self._selector = selectors.DefaultSelector()
        self._wake = threading.Event()
        threading.Thread(target=self._run, name="plane-connector-busy", daemon=True).start()

    def reject(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(False)
            conn.send(_BUSY_ANSWER)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            conn.close()
            return
        with self._lock:
            if len(self._waiting) >= self.max_pending:
                conn.close()
                return
            self._waiting[conn] = time.monotonic() + self.drain
            self._selector.register(conn, selectors.EVENT_READ)
        self._wake.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                idle = not self._waiting
            if idle:
                self._wake.wait()
                self._wake.clear()
                continue
            done: list[socket.socket] = []
            for key, _ in self._selector.select(0.05):
                conn: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    if not conn.recv(65536):
                        done.append(conn)
                except BlockingIOError:
                    pass
                except OSError:
                    done.append(conn)
            now = time.monotonic()
            with self._lock:
                done += [c for c, deadline in self._waiting.items() if deadline <= now]
                for conn in set(done):
                    if self._waiting.pop(conn, None) is not None:
                        self._selector.unregister(conn)
                        conn.close()


class InFlight:
    """How many requests a server is handling right now, and whether it is stopping."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0
        self.stopping = False

    def begin(self) -> None:
        with self._cond:
            self._count += 1

    def end(self) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify_all()

    @property
    def count(self) -> int:
        with self._cond:
            return self._count

    def wait_idle(self, timeout: float) -> int:
        """Wait until no request is in flight (at most ``timeout`` s); the number left."""
        with self._cond:
            self._cond.wait_for(lambda: self._count == 0, timeout=timeout)
            return self._count


def in_flight(server: Any) -> InFlight:
    """The server's request counter, created on first use."""
    counter = getattr(server, "in_flight", None)
    if counter is None:
        counter = server.in_flight = InFlight()
    return counter


class CountedHandler(BaseHTTPRequestHandler):
    """Counts a request as in flight from its request line to its last byte of answer.

    Counting starts before the headers are parsed (an ``Expect: 100-continue`` answer is sent
    while parsing), so a client that has seen any reply is already counted. Once the server is
    stopping, a keep-alive connection is closed after its current request.
    """

    _pc_counted = False

    def parse_request(self) -> bool:
        in_flight(self.server).begin()
        self._pc_counted = True
        return super().parse_request()

    def handle_one_request(self) -> None:
        self._pc_counted = False
        try:
            super().handle_one_request()
        finally:
            counter = in_flight(self.server)
            if counter.stopping:
                self.close_connection = True
            if self._pc_counted:
                counter.end()


def install_stop_handlers() -> threading.Event:
    """SIGTERM and SIGINT set the returned event, whatever dispositions were inherited.

    Call it from the main thread before announcing that the server listens.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def serve_until_stopped(
    server: BaseServer,
    stop: threading.Event,
    *,
    log: logging.Logger,
    grace: float = DEFAULT_GRACE,
    already_serving: bool = False,
    on_close: Callable[[], None] | None = None,
) -> int:
    """Serve until ``stop`` is set, then stop gracefully; the exit status (0).

    ``already_serving``: ``serve_forever`` already runs in another thread (the emulator starts
    its own); otherwise it is started here, on a daemon thread.
    """
    counter = in_flight(server)
    if not already_serving:
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        ).start()
    # Event.wait with a timeout: the signal handler runs in this (main) thread between waits.
    while not stop.wait(0.5):
        pass
    counter.stopping = True
    server.shutdown()  # the accept loop ends...
    server.socket.close()  # ...and the port is closed: new connections are refused
    busy = counter.count
    log.info("stopping: %d request(s) in flight, waiting up to %.0f s", busy, grace)
    left = counter.wait_idle(grace) if busy else 0
    if left:
        log.warning("stopping: %d request(s) still running after %.0f s, abandoned", left, grace)
    if on_close is not None:
        try:
            on_close()
        except Exception as exc:  # noqa: BLE001 - a failing close must not turn exit into a crash
            log.warning("stopping: closing resources failed: %s", exc)
    log.info("stopped")
    return 0
