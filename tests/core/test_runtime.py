"""Runtime behaviour: GIL released, fork-safe, interruptible, asyncio twin, no secret leaks."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import threading
import time

import pytest
from core_loopback import API_KEY, LoopbackServer, Reply, close_listener, plane_pages
from plane_connector import (
    AsyncPlaneClient,
    AuthError,
    HTTPError,
    NotFoundError,
    PlaneClient,
    PlaneError,
    RateLimitError,
    TransportError,
)

_keys = itertools.count()


def key() -> str:
    return f"{API_KEY}rt{next(_keys):04d}"


def test_gil_is_released_while_waiting_on_the_network(server: LoopbackServer) -> None:
    release = threading.Event()
    server.handler = lambda s: Reply(json={"ok": True}, wait_for=release)
    c = PlaneClient(server.url, api_key=key())
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(c.get("x")))
    worker.start()
    # The server thread must run Python to receive the request, and this thread must run
    # Python to release it: both need the GIL the worker would hold if it blocked with it.
    assert server.arrived.wait(10)
    ticks = 0
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        ticks += 1
    release.set()
    worker.join(10)
    assert result == [{"ok": True}]
    assert ticks > 1000


def test_gil_is_released_during_throttle_waits(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={})
    c = PlaneClient(server.url, api_key=key(), requests_per_minute=1, rate_window=0.5)
    c.get("x")
    worker = threading.Thread(target=lambda: c.get("x"))
    worker.start()
    ticks = 0
    while worker.is_alive() and ticks < 10**9:
        ticks += 1  # runs only if the waiting thread let go of the GIL
    worker.join()
    assert c.stats["throttle_waits"] == 1
    assert ticks > 1000


def _child_request(c: PlaneClient, write_fd: int) -> None:
    try:
        ok = c.get("x") == {"pid": "ok"} and len(list(c.paginate("p/", per_page=10))) == 25
        os.write(write_fd, b"ok" if ok else b"bad")
    except BaseException as exc:  # noqa: BLE001 - report anything to the parent
        os.write(write_fd, repr(exc).encode()[:200])
    finally:
        os._exit(0)


def test_client_works_after_fork(server: LoopbackServer) -> None:
    pages = plane_pages([{"id": i} for i in range(25)])
    server.handler = lambda s: pages(s) if s.path.endswith("/p/") else Reply(json={"pid": "ok"})
    c = PlaneClient(server.url, api_key=key())
    assert c.get("x") == {"pid": "ok"}  # runtime and pool now exist in the parent
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child_request(c, write_fd)
    os.close(write_fd)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung using the client")
    answer = os.read(read_fd, 300)
    os.close(read_fd)
    assert answer == b"ok"
    assert c.get("x") == {"pid": "ok"}  # and the parent still works


def test_waits_are_interruptible(server: LoopbackServer) -> None:
    # Signals are delivered to the main thread only: pytest runs tests there.
    assert threading.current_thread() is threading.main_thread()
    server.handler = lambda s: Reply(429, {"error_code": 5900}, headers={"Retry-After": "30"})
    c = PlaneClient(server.url, api_key=key(), max_wait=60)

    class Interrupted(Exception):
        pass

    def on_alarm(signum: int, frame: object) -> None:
        raise Interrupted

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            c.get("x")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - started < 10  # not the 30 s Retry-After


def test_async_client(server: LoopbackServer) -> None:
    pages = plane_pages([{"id": i} for i in range(250)])

    def handle(s):  # type: ignore[no-untyped-def]
        if s.path.endswith("/missing/"):
            return Reply(404, {"error": "The requested resource does not exist."})
        if s.path.endswith("/items/"):
            return pages(s)
        return Reply(json={"id": "me"})

    server.handler = handle

    async def main() -> None:
        c = AsyncPlaneClient(server.url, api_key=key())
        me, other = await asyncio.gather(c.me(), c.get("users/me"))
        assert me == other == {"id": "me"}
        ids = [item["id"] async for item in c.paginate("items/", per_page=100)]
        assert ids == list(range(250))
        with pytest.raises(NotFoundError):
            await c.get("missing")
        assert await c.post("x", json={"a": 1}) == {"id": "me"}

    asyncio.run(main())
    assert {r.query.get("per_page") for r in server.requests if r.path.endswith("/items/")} == {
        "100"
    }


def test_async_client_is_concurrent(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={}, delay=0.3)

    async def main() -> float:
        c = AsyncPlaneClient(server.url, api_key=key())
        started = time.monotonic()
        await asyncio.gather(*(c.get(f"x{i}") for i in range(5)))
        return time.monotonic() - started

    # Five 0.3 s requests one after the other would take 1.5 s.
    assert asyncio.run(main()) < 1.4


SECRET_KEY = "plane_api_" + "c0ffee42" * 4
SECRET_TOKEN = "pln_access_" + "beefcafe" * 4


def test_no_secret_in_repr_errors_or_logs(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A hostile or buggy server echoing the credential back in its bodies.
    echo = {"detail": f"bad token {SECRET_KEY} {SECRET_TOKEN}"}
    answers = {
        "/api/v1/auth/": Reply(403, echo),
        "/api/v1/boom/": Reply(500, body=f"<pre>{SECRET_KEY}</pre> {SECRET_TOKEN}".encode()),
        "/api/v1/json/": Reply(200, body=f"not json {SECRET_KEY} {SECRET_TOKEN}".encode()),
        "/api/v1/slow/": Reply(429, echo, headers={"Retry-After": "0"}),
    }
    server.handler = lambda s: answers[s.path]
    texts: list[str] = []
    for kwargs in ({"api_key": SECRET_KEY}, {"access_token": SECRET_TOKEN}):
        c = PlaneClient(server.url, max_retries=1, backoff_base=0.01, **kwargs)
        texts += [repr(c), str(c.stats), repr(c.rate_limit)]
        for path, exc in [
            ("auth", AuthError),
            ("boom", HTTPError),
            ("json", HTTPError),
            ("slow", RateLimitError),
        ]:
            with pytest.raises(exc) as info:
                c.get(path, params={"q": "v"})
            e = info.value
            texts += [str(e), repr(e), e.message, e.body, repr(e.args)]
    dead = PlaneClient("http://127.0.0.1:9", api_key=SECRET_KEY, max_retries=0)
    with pytest.raises(TransportError) as info:
        dead.get("x")
    texts += [str(info.value), repr(info.value)]
    texts += [r.getMessage() for r in caplog.records]
    assert any("***" in t for t in texts)  # the echoed values were there, redacted
    for text in texts:
        assert SECRET_KEY not in text
        assert SECRET_TOKEN not in text
        assert "c0ffee42" not in text and "beefcafe" not in text


def test_exceptions_pickle_with_their_facts(server: LoopbackServer) -> None:
    import pickle

    server.handler = lambda s: Reply(409, {"error": "already exists", "id": "abc"})
    with pytest.raises(PlaneError) as info:
        PlaneClient(server.url, api_key=key()).post("x", json={})
    again = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own bytes
    assert type(again) is type(info.value)
    assert (again.status, again.existing_id, str(again)) == (409, "abc", str(info.value))


def test_many_threads_share_one_window(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={})
    c = PlaneClient(server.url, api_key=key(), requests_per_minute=6, rate_window=0.4)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                c.get("x")
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    times = sorted(r.at for r in server.requests)
    assert len(times) == 20
    # Arrival times, stamped by a Python server thread: under CPU load an early request's stamp
    # can lag by tens of milliseconds while a later one's does not, which no client can prevent.
    # The tolerance covers that jitter; a client that ignored the shared window would put 20
    # arrivals in one window, far beyond it.
    jitter = 0.05
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u - t < 0.4 - jitter) <= 6


def test_async_client_after_fork(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={"ok": True})
    c = AsyncPlaneClient(server.url, api_key=key())

    async def get() -> object:
        return await asyncio.wait_for(c.get("x"), 10)

    assert asyncio.run(get()) == {"ok": True}  # the parent's runtime now exists
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            got = asyncio.run(get())
            os.write(write_fd, b"ok" if got == {"ok": True} else b"bad")
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            os.write(write_fd, repr(exc).encode()[:200])
        finally:
            os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + 20
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung using the async client")
        time.sleep(0.05)
    answer = os.read(read_fd, 300)
    os.close(read_fd)
    assert answer == b"ok"


def test_retries_log_warnings_under_plane_connector(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [Reply(503), Reply(json={})]
    server.handler = lambda s: answers.pop(0)
    PlaneClient(server.url, api_key=key(), backoff_base=0.01).get("x", params={"q": "secret-ish"})
    ours = [r for r in caplog.records if r.name.startswith("plane_connector")]
    assert any(r.levelno == logging.WARNING and "retry 1/3" in r.getMessage() for r in ours)
    assert any(r.levelno == logging.DEBUG and r.getMessage() == "GET /api/v1/x/" for r in ours)
    assert all("secret-ish" not in r.getMessage() for r in caplog.records)  # no query values
    # Other crates log at WARNING and above only (their debug lines carry full URLs).
    assert not [r for r in caplog.records if r.name.startswith(("reqwest", "hyper", "rustls"))]


def test_token_provider_may_call_a_sync_client(server: LoopbackServer) -> None:
    # An OAuth token provider typically refreshes through another client's oauth_request: a
    # sync call made from inside a running request must not deadlock or panic.
    def handle(s):  # type: ignore[no-untyped-def]
        if s.path == "/auth/o/token/":
            return Reply(json={"access_token": "pln_fresh_0123456789"})
        return Reply(json={"auth": s.headers.get("authorization")})

    server.handler = handle
    token_client = PlaneClient(server.url)

    def provider(force: bool) -> str:
        answer = token_client.oauth_request("POST", "/auth/o/token/", form={"grant_type": "x"})
        return str(answer["access_token"])

    c = PlaneClient(server.url, token_provider=provider)
    assert c.me() == {"auth": "Bearer pln_fresh_0123456789"}

    async def main() -> object:
        a = AsyncPlaneClient(server.url, token_provider=provider)
        return await asyncio.wait_for(a.me(), 10)

    assert asyncio.run(main()) == {"auth": "Bearer pln_fresh_0123456789"}


def test_nothing_is_started_at_import(server: LoopbackServer) -> None:
    # Odoo's master imports the wheel and then forks: no runtime thread may exist before use.
    import subprocess
    import sys

    probe = (
        "import os, sys\n"
        "def threads():\n"
        "    names = [open(f'/proc/self/task/{t}/comm').read().strip()\n"
        "             for t in os.listdir('/proc/self/task')]\n"
        "    return sum(n.startswith('plane-connector') for n in names)\n"
        "import plane_connector\n"
        "client = plane_connector.PlaneClient(sys.argv[1], api_key='plane_api_' + '9' * 32)\n"
        "before = threads()\n"
        "client.me()\n"
        "after_sync = threads()\n"
        "import asyncio\n"
        "async def main():\n"
        "    key = 'plane_api_' + '8' * 32\n"
        "    await plane_connector.AsyncPlaneClient(sys.argv[1], api_key=key).me()\n"
        "asyncio.run(main())\n"
        "print(before, after_sync, threads())\n"
    )
    server.handler = lambda s: Reply(json={})
    out = subprocess.run(
        [sys.executable, "-c", probe, server.url], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    before, after_sync, after_async = map(int, out.stdout.split())
    assert before == 0
    # Sync calls run on the calling thread (a prefork worker gets no extra threads); the async
    # client's runtime starts on its first use.
    assert after_sync == 0
    assert after_async >= 1


def test_sync_calls_from_many_threads_are_in_flight_together(server: LoopbackServer) -> None:
    # Sync calls share one current-thread runtime that one caller drives at a time: the others
    # must still get their requests onto the wire. The server answers none until all are there.
    n = 8
    everyone = threading.Barrier(n)

    def handle(s: object) -> Reply:
        everyone.wait(20)
        return Reply(json={"ok": True})

    server.handler = handle
    c = PlaneClient(server.url, api_key=key())
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(c.get("x"))) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [{"ok": True}] * n


def test_short_lived_threads_share_one_pooled_connection(server: LoopbackServer) -> None:
    # Odoo's threaded server runs each HTTP request on a new thread: the connection pool must
    # outlive the thread that opened a connection, or each request would pay a new TLS handshake.
    server.handler = lambda s: Reply(json={"ok": True})
    c = PlaneClient(server.url, api_key=key())
    for _ in range(10):
        t = threading.Thread(target=c.get, args=("x",))
        t.start()
        t.join(10)
    assert len(server.requests) == 10
    assert len({r.peer for r in server.requests}) == 1


class _ClosesIdleConnections:
    """Answers each connection's first request with keep-alive, then closes it, like a proxy
    whose idle keep-alive timeout is shorter than the client's. Records every request line."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.lines: list[str] = []
        self.close_now = threading.Semaphore(0)
        self.closed = threading.Semaphore(0)
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    body += conn.recv(65536)
                self.lines.append(head.split(b"\r\n")[0].decode())
                payload = b'{"n": %d}' % len(self.lines)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive"
                    + b"\r\nContent-Length: %d\r\n\r\n" % len(payload)
                    + payload
                )
                # Closed only once the client's call has returned and its connection sits idle.
                self.close_now.acquire(timeout=30)
            self.closed.release()

    def close(self) -> None:
        close_listener(self.sock)


def test_a_connection_closed_by_the_server_while_idle_is_not_reused() -> None:
    # Between two sync calls nothing polls the pooled connection, so the client only learns of
    # the server's close when the next call starts. A POST is not retried: had the client written
    # it onto the dead connection, this would raise instead of answering.
    peer = _ClosesIdleConnections()
    try:
        c = PlaneClient(peer.url, api_key=key(), max_retries=0)
        for i in range(5):
            assert c.post("items/", json={"i": i}) == {"n": i + 1}
            peer.close_now.release()
            assert peer.closed.acquire(timeout=10)  # the server has closed that connection
        assert peer.lines == ["POST /api/v1/items/ HTTP/1.1"] * 5
        assert peer.connections == 5
    finally:
        peer.close()
