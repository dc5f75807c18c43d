"""Graceful stop for the command-line HTTP servers (``plane-connector webhook`` and ``emulate``).

Docker and systemd stop a service with SIGTERM, a terminal with SIGINT; both mean the same here:
stop accepting (the listening socket is closed at once), let the requests already being handled
finish within a grace period, close what the server holds (connection pools), exit 0.

The handlers are installed explicitly for both signals. A process started in the background by a
shell (``nohup cmd &``, CI runners) inherits SIGINT *ignored*, and Python then installs no
KeyboardInterrupt handler of its own: a server that relied on KeyboardInterrupt never stopped.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer
from types import FrameType
from typing import Any

#: Seconds the requests in flight get to finish after a stop signal.
DEFAULT_GRACE = 10.0


class ThreadingServer(ThreadingHTTPServer):
    """A threading HTTP server whose accept loop can always be stopped.

    ``serve_forever`` calls a blocking ``accept()`` once ``select()`` says the listening socket is
    readable. Seen here once in a full test run: the accept found nothing and blocked, and
    ``shutdown()`` then waited for a connection that never came. With the listening socket
    non-blocking, such an accept raises ``BlockingIOError``, which socketserver drops, and the loop
    goes on to notice the stop request.
    """

    daemon_threads = True

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.setblocking(False)

    def get_request(self) -> tuple[Any, Any]:
        conn, addr = self.socket.accept()
        # Whether an accepted socket inherits non-blocking mode depends on the OS; handlers read
        # with blocking calls.
        conn.setblocking(True)
        return conn, addr


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
