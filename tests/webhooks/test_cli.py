"""``plane-connector webhook``: the HTTP server over real sockets, fed by recorded deliveries and by
the Plane emulator (which signs and sends webhooks the way Plane does)."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plane_connector.cli.webhook import make_server, read_chunked
from plane_connector.dedupe import SQLiteDeliveryStore
from plane_connector.testing._http import wait_port_closed
from plane_connector.webhooks import WebhookReceiver


@pytest.fixture
def served(sqlite_store, samples) -> Iterator[tuple[Any, SQLiteDeliveryStore]]:
    """A server on a free loopback port around a receiver with the lab secret."""
    receiver = WebhookReceiver(sqlite_store, samples["issue-created"].secret, max_body=4096)
    server = make_server(receiver, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, sqlite_store
    finally:
        server.shutdown()
        server.server_close()


def _post(port: int, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_server_accepts_then_dedupes(served, samples) -> None:
    server, store = served
    port = server.server_address[1]
    sample = samples["issue-created"]
    assert _post(port, "/plane/webhook", sample.headers, sample.body) == (
        200,
        {"status": "accepted", "delivery_id": sample.headers["X-Plane-Delivery"]},
    )
    status, answer = _post(port, "/plane/webhook", sample.headers, sample.body)
    assert (status, answer["status"]) == (200, "duplicate")
    bad = sample.with_headers(X_Plane_Signature="0" * 64)
    assert _post(port, "/plane/webhook", bad, sample.body)[0] == 401
    assert _post(port, "/elsewhere", sample.headers, sample.body)[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read())["deliveries"]["received"] == 1
    conn.close()


@pytest.mark.parametrize("which", ["webhook", "emulator"])
def test_an_accept_with_nothing_pending_does_not_stall_the_server(
    sqlite_store, samples, plane_emulator_factory, which
) -> None:
    """serve_forever accepts once select() says the port is readable; a full test run once saw
    that accept find nothing and block, and stop() then waited for ever. Here the accept is
    called with nothing pending: it must return, and the server must go on answering."""
    if which == "webhook":
        server = make_server(WebhookReceiver(sqlite_store, samples["issue-created"].secret))
    else:
        server = plane_emulator_factory()._server
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (server._handle_request_noblock(), done.set()), daemon=True
    )
    worker.start()
    try:
        assert done.wait(10), "accept() blocked with no connection pending"
    finally:
        if not done.is_set():
            server.socket.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
    if which == "webhook":
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            status, _ = _post(server.server_address[1], "/plane/webhook", {}, b"{}")
        finally:
            server.shutdown()
            server.server_close()
        assert status == 401
    else:
        conn = http.client.HTTPConnection(*server.server_address, timeout=30)
        conn.request("GET", "/api/v1/users/me/")
        assert conn.getresponse().status == 401
        conn.close()


def test_server_refuses_a_huge_body_without_reading_it(served, samples) -> None:
    server, store = served
    sample = samples["issue-created"]
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    try:
        conn.putrequest("POST", "/plane/webhook")
        for k, v in sample.with_headers(Content_Length=str(10 * 1024 * 1024)).items():
            conn.putheader(k, v)
        conn.endheaders()  # headers only: the server must answer without waiting for 10 MiB
        resp = conn.getresponse()
        assert resp.status == 413
        assert json.loads(resp.read())["status"] == "rejected"
    finally:
        conn.close()
    assert store.counts()["received"] == 0


@pytest.mark.parametrize("edition", ["ce", "cloud"])
def test_emulator_deliveries_end_to_end(served, samples, plane_emulator_factory, edition) -> None:
    """Plane (emulated) signs and sends; duplicated sends are caught; every answer is a 2xx."""
    server, store = served
    emu = plane_emulator_factory(edition=edition)
    url = f"http://127.0.0.1:{server.server_address[1]}/plane/webhook"
    emu.register_webhook(url, secret=samples["issue-created"].secret)
    emu.faults.add(kind="webhook_duplicate", count=3)
    item = emu.create_work_item("Sync invoice INV/1")
    emu.update_work_item(item["id"], name="Sync invoice INV/1 (paid)", priority="high")
    emu.wait_webhooks_idle(timeout=30)
    attempts = emu.deliveries
    assert attempts and all(a.outcome == "delivered" and a.status == 200 for a in attempts)
    events = {(a.event_id or a.body) for a in attempts}
    assert len(attempts) > len(events)  # the fault really sent duplicates
    rows = store.fetch()
    assert len(rows) == len(events)
    assert {r.action for r in rows} == {"created", "updated"}


def _ignore_sigint() -> None:
    # What a shell does to a background job (`nohup ./dev.sh test &`): SIGINT ignored, inherited
    # by every child. The server must stop on SIGINT all the same.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _cli_server(
    secret: str, store: str, *extra: str, stop: signal.Signals | None = signal.SIGINT
) -> Iterator[tuple[subprocess.Popen, int, list[str]]]:
    """``plane-connector webhook`` as a subprocess: (process, port, its stderr lines so far).

    It starts with SIGINT ignored, as under nohup or in a background job. On leaving, it is
    sent ``stop`` (None: the caller already signalled it) and must exit 0; whatever it printed
    until then is appended to the list."""
    env = {**os.environ, "PLANE_TEST_WEBHOOK_SECRET": secret}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "plane_connector", "webhook", "--port", "0",
            "--secret-ref", "env:PLANE_TEST_WEBHOOK_SECRET", "--store", store, *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_ignore_sigint,  # noqa: PLW1509 - only a signal disposition, before exec
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        output = [proc.stderr.readline()]
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/plane/webhook", output[0])
        assert match, output[0]
        yield proc, int(match.group(1)), output
        if stop is not None:
            proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0
        output.append(proc.stderr.read())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_cli_subprocess_serves_and_never_prints_the_secret(tmp_path, samples) -> None:
    sample = samples["issue-created"]
    with _cli_server(sample.secret, f"sqlite:{tmp_path / 'cli.sqlite3'}") as (_, port, output):
        assert _post(port, "/plane/webhook", sample.headers, sample.body)[0] == 200
    assert sample.secret not in "".join(output)
    rows = SQLiteDeliveryStore(str(tmp_path / "cli.sqlite3")).fetch()
    assert [r.delivery_id for r in rows] == [sample.headers["X-Plane-Delivery"]]


def test_cli_subprocess_on_postgresql_keeps_one_pooled_connection(samples, pg_dsn, pg_schema):
    import psycopg2
    from plane_connector.dedupe import PostgresDeliveryStore

    app = f"pc-cli-{pg_schema[-12:]}"
    # The schema on the search path: the server's default table lands in this test's schema.
    dsn = f"{pg_dsn}?application_name={app}&options=-csearch_path%3D{pg_schema}"
    secret = samples["issue-created"].secret
    sent = [s for s in samples.values() if s.secret == secret]
    with _cli_server(secret, dsn) as (_, port, _output):
        for sample in sent:
            assert _post(port, "/plane/webhook", sample.headers, sample.body)[0] == 200
        conn = psycopg2.connect(pg_dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (app,))
                assert cur.fetchone()[0] == 1  # sequential deliveries: one connection, reused
        finally:
            conn.close()
    store = PostgresDeliveryStore.from_dsn(pg_dsn, table=f"{pg_schema}.plane_webhook_delivery",
                                           create=False)
    assert {r.delivery_id for r in store.fetch()} == {
        s.headers["X-Plane-Delivery"] for s in sent
    }


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--secret-ref"),
        (["--secret-ref", "env:PLANE_TEST_SURELY_UNSET"], "PLANE_TEST_SURELY_UNSET"),
        # A made-up secret pasted in place of a reference (built here so no literal looks real).
        (["--secret-ref", "plane_wh_" + "0123456789abcdef" * 2], "secret"),
        (["--allow-unsigned", "--store", "sqlite:/nonexistent-dir/x.sqlite3"], "store"),
    ],
)
def test_cli_refuses_bad_configuration(args, message) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "plane_connector", "webhook", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "0123456789abcdef0123456789abcdef" not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    "option", [["--request-timeout", "nan"], ["--request-timeout", "0"], ["--max-connections", "0"]]
)
def test_cli_refuses_bad_limits(tmp_path, option) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "plane_connector", "webhook", "--port", "0", "--allow-unsigned",
         "--store", f"sqlite:{tmp_path / 'x.sqlite3'}", *option],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--request-timeout must be in" in proc.stderr


def test_slow_headers_are_cut_off_by_the_request_deadline(sqlite_store, samples) -> None:
    """Headers trickled line by line: the connection is closed at the deadline, unanswered."""
    receiver = WebhookReceiver(sqlite_store, samples["issue-created"].secret)
    server = make_server(receiver, "127.0.0.1", 0, request_timeout=1.0)
    _serve(server)
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
            sock.sendall(b"POST /plane/webhook HTTP/1.1\r\n")
            sock.settimeout(0.1)  # the pace of the trickle
            closed, sent = False, 0
            while not closed and sent < 100:
                try:
                    sock.sendall(b"X-Pad-%d: x\r\n" % sent)
                    sent += 1
                    closed = sock.recv(1) == b""
                except TimeoutError:
                    continue
                except ConnectionError:  # closed with our bytes unread: a reset
                    closed = True
            assert closed and sent < 100
    finally:
        server.shutdown()
        server.server_close()


class FlakyStore:
    """Wraps a store; the first ``failures`` claims fail as if the database were down."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def claim(self, delivery: Any, *, defer: float = 0.0) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database is down")
        return self.inner.claim(delivery, defer=defer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("drop", [True, False], ids=["drop-connection", "answer-503"])
def test_store_outage_and_plane_ce_retries(sqlite_store, samples, plane_emulator_factory, drop):
    """Plane CE retries a dropped connection but never a 503: with --drop-on-store-error the
    delivery arrives once the store is back; answering 503 loses it (CE logs and moves on)."""
    secret = samples["issue-created"].secret
    receiver = WebhookReceiver(FlakyStore(sqlite_store, failures=2), secret)
    server = make_server(receiver, "127.0.0.1", 0, drop_on_store_error=drop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        emu = plane_emulator_factory(edition="ce", time_scale=0.01, webhook_backoff=1.0)
        emu.register_webhook(f"http://127.0.0.1:{server.server_address[1]}/plane/webhook", secret)
        emu.create_work_item("Outage test")
        emu.wait_webhooks_idle(timeout=30)
        outcomes = [a.outcome for a in emu.deliveries]
    finally:
        server.shutdown()
        server.server_close()
    if drop:
        assert outcomes == ["connection_error", "connection_error", "delivered"]
        assert [r.action for r in sqlite_store.fetch()] == ["created"]
    else:
        assert outcomes == ["http_error"]
        assert sqlite_store.fetch() == []


def _head(sample: Any, **changes: str | None) -> bytes:
    headers = sample.with_headers(Host="127.0.0.1", **changes)
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST /plane/webhook HTTP/1.1\r\n{lines}\r\n".encode()


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 answer (skipping any ``100 Continue``)."""
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before an answer: {data!r}")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 100:
            break
        data = rest
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += sock.recv(65536)
    return status, rest[:length]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_stops_gracefully_finishing_the_request_in_flight(tmp_path, samples, stop) -> None:
    """A stop signal while a delivery is half-sent: the port closes at once, the delivery
    still completes and is stored, and the server exits 0."""
    sample = samples["issue-created"]
    db = tmp_path / "graceful.sqlite3"
    with _cli_server(sample.secret, f"sqlite:{db}", stop=None) as (proc, port, output):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        with sock:
            # Headers only; the server's `100 Continue` proves the request is being handled.
            sock.sendall(_head(sample, Expect="100-continue"))
            assert sock.recv(64).startswith(b"HTTP/1.1 100")
            proc.send_signal(stop)
            assert wait_port_closed(port), "the server kept accepting after the stop signal"
            assert proc.poll() is None  # still finishing our request
            sock.sendall(sample.body)
            status, body = _read_answer(sock)
        assert (status, json.loads(body)["status"]) == (200, "accepted")
    assert "stopping: 1 request(s) in flight" in output[-1]
    assert [r.delivery_id for r in SQLiteDeliveryStore(str(db)).fetch()] == [
        sample.headers["X-Plane-Delivery"]
    ]


def _rss_peak_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


def _send_until_answered(sock: socket.socket, chunks: Iterator[bytes]) -> tuple[int, int]:
    """Send ``chunks`` until the server answers (or they run out); (status, bytes sent)."""
    sock.setblocking(False)
    sent = 0
    pending = b""
    while True:
        if not pending:
            pending = next(chunks, b"")
        readable, writable, _ = select.select([sock], [sock] if pending else [], [], 30)
        if readable:
            break
        if not writable:
            raise AssertionError("no answer and nothing more to send for 30 s")
        try:
            n = sock.send(pending)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += n
        pending = pending[n:]
    sock.setblocking(True)
    sock.settimeout(30)
    return _read_answer(sock)[0], sent


@contextlib.contextmanager
def _warm_cli_server(sample: Any, db: Path, max_body: int) -> Iterator[tuple[Any, int, int]]:
    """The CLI server with ``--max-body``, after one delivery: (process, port, peak RSS KiB)."""
    with _cli_server(sample.secret, f"sqlite:{db}", "--max-body", str(max_body)) as (
        proc, port, _output,
    ):  # fmt: skip
        # Warm up (first request, thread, imports) before taking the baseline.
        assert _post(port, "/plane/webhook", sample.headers, sample.body)[0] == 200
        yield proc, port, _rss_peak_kib(proc.pid)


def test_cli_never_holds_more_than_max_body(tmp_path, samples) -> None:
    """Chunked and lying bodies against the CLI server: refused with the right status, the
    server's peak memory grows by less than 2 x max_body, nothing is stored."""
    sample = samples["issue-created"]
    max_body = 1 << 20
    db = tmp_path / "bounded.sqlite3"
    with _warm_cli_server(sample, db, max_body) as (proc, port, baseline):
        answers = {}

        def attempt(name: str, head: bytes, chunks: Iterator[bytes]) -> int:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(head)
                status, sent = _send_until_answered(sock, chunks)
            answers[name] = (status, sent)
            return status

        chunked = _head(sample, Content_Length=None, Transfer_Encoding="chunked",
                        X_Plane_Delivery="chunked-40mib")  # fmt: skip
        piece = b"x" * 65536
        framed = b"%x\r\n%s\r\n" % (len(piece), piece)
        forty_mib = 40 * 1024 * 1024
        assert attempt("chunked 40 MiB", chunked, iter([framed] * (forty_mib // len(piece)))) == 413
        one_chunk = b"%x\r\n" % forty_mib
        assert attempt("one 40 MiB chunk", chunked, iter([one_chunk, piece * 640])) == 413
        small = _head(sample, Content_Length=str(len(sample.body) // 2),
                      X_Plane_Delivery="lying-small")  # fmt: skip
        # Claims half the body, sends all of it and more: what it claimed is checked (and
        # fails the signature); the rest is never read as another request.
        assert attempt("claims small", small, iter([sample.body, piece * 160])) == 401
        huge = _head(sample, Content_Length=str(10 * 1024**3), X_Plane_Delivery="lying-huge")
        assert attempt("claims huge", huge, iter([sample.body])) == 413
        both = _head(sample, Transfer_Encoding="chunked", X_Plane_Delivery="both")
        assert attempt("both framings", both, iter([framed])) == 400
        none = _head(sample, Content_Length=None, X_Plane_Delivery="no-length")
        assert attempt("no length", none, iter([sample.body])) == 411
        # Claims more than it sends, then stops sending: a 400, not a wait for bytes that
        # never come.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(_head(sample, Content_Length=str(len(sample.body) + 1000),
                               X_Plane_Delivery="lying-short") + sample.body)  # fmt: skip
            sock.shutdown(socket.SHUT_WR)
            assert _read_answer(sock)[0] == 400
        grown = (_rss_peak_kib(proc.pid) - baseline) * 1024
        print(f"peak RSS grew by {grown} bytes; {answers}")  # noqa: T201 - shown with -s
        assert grown < 2 * max_body, (grown, answers)
        assert answers["chunked 40 MiB"][1] < forty_mib  # refused long before the end
    rows = SQLiteDeliveryStore(str(db)).fetch()
    assert [r.delivery_id for r in rows] == [sample.headers["X-Plane-Delivery"]]  # the warm-up


def test_cli_refuses_a_duplicated_content_length_before_reading(tmp_path, samples) -> None:
    """The review's attack: ``Content-Length: 4000000000`` then ``Content-Length: 10``, a stream
    behind them, ``--max-body`` 1 MiB. The size check read the last header and the body read
    the first: the process grew by the whole stream and answered only at its end. Now the
    headers alone are a 400, the stream is not read, the memory does not grow."""
    sample = samples["issue-created"]
    max_body = 1 << 20
    db = tmp_path / "duplicated.sqlite3"
    with _warm_cli_server(sample, db, max_body) as (proc, port, baseline):
        piece = b"x" * 65536
        stream = 32 * 1024 * 1024
        answers = {}
        cases = {
            "4e9 then 10": ("4000000000", "10"),
            "10 then 4e9": ("10", "4000000000"),
            "equal": (str(len(sample.body)), str(len(sample.body))),
        }
        for name, (first, second) in cases.items():
            head = _head(sample, Content_Length=first, X_Plane_Delivery=f"dup-{first}-{second}")
            head = head.removesuffix(b"\r\n") + f"Content-Length: {second}\r\n\r\n".encode()
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(head)
                answers[name] = _send_until_answered(sock, iter([piece] * (stream // len(piece))))
        grown = (_rss_peak_kib(proc.pid) - baseline) * 1024
        print(f"peak RSS grew by {grown} bytes; {answers}")  # noqa: T201 - shown with -s
        assert {name: status for name, (status, _) in answers.items()} == dict.fromkeys(cases, 400)
        # Answered from the headers: long before the stream's end (socket buffers take a few MiB).
        assert all(sent < stream // 2 for _, sent in answers.values()), answers
        assert grown < 2 * max_body, (grown, answers)
    rows = SQLiteDeliveryStore(str(db)).fetch()
    assert [r.delivery_id for r in rows] == [sample.headers["X-Plane-Delivery"]]  # the warm-up


class _Endless:
    """A body that never ends, counting what a reader takes from it."""

    def __init__(self) -> None:
        self.taken = 0
        self.largest = 0

    def read(self, n: int) -> bytes:
        self.taken += n
        self.largest = max(self.largest, n)
        return b"x" * n

    def readline(self, limit: int) -> bytes:
        return b"\r\n"


def test_a_body_read_never_passes_max_body_plus_one() -> None:
    from plane_connector.cli.webhook import READ_SLICE, read_limited  # noqa: PLC0415

    limit = 1 << 20
    stream = _Endless()
    assert read_limited(stream, 4_000_000_000, limit) is None  # whatever the length claims
    assert stream.taken == limit + 1
    assert stream.largest <= READ_SLICE  # in slices, not one allocation of the claimed size
    assert read_limited(io.BytesIO(b"abc"), 10, limit) == b"abc"  # short: the caller says 400
    assert read_limited(io.BytesIO(b"abcdef"), 3, limit) == b"abc"
    framed = io.BufferedReader(io.BytesIO(b"%x\r\n" % limit + b"y" * limit + b"\r\n0\r\n\r\n"))
    assert read_chunked(framed, limit) == b"y" * limit


def _serve(server: Any) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return thread


def test_a_trickled_body_is_cut_off_by_the_request_deadline(sqlite_store, samples) -> None:
    """The socket timeout is per read: a byte every few seconds kept a thread forever. The
    deadline covers the whole request: 408, while the sender is still trickling."""
    sample = samples["issue-created"]
    receiver = WebhookReceiver(sqlite_store, sample.secret)
    server = make_server(receiver, "127.0.0.1", 0, request_timeout=1.0)
    _serve(server)
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
            sock.sendall(_head(sample))
            sent, status = 0, None
            sock.settimeout(0.1)  # the pace of the trickle: far within any per-read timeout
            while sent < 100 and status is None:
                sock.sendall(sample.body[sent : sent + 1])
                sent += 1
                with contextlib.suppress(TimeoutError):
                    if sock.recv(1, socket.MSG_PEEK):
                        sock.settimeout(30)
                        status, body = _read_answer(sock)
            assert status == 408, (status, sent)
            assert json.loads(body)["reason"] == "the request did not arrive in time"
            assert sent < 100  # cut off mid-trickle, not once the sender was done
    finally:
        server.shutdown()
        server.server_close()
    assert sqlite_store.fetch() == []


def test_connections_beyond_the_cap_are_answered_503(sqlite_store, samples) -> None:
    sample = samples["issue-created"]
    server = make_server(WebhookReceiver(sqlite_store, sample.secret), max_connections=2)
    port = server.server_address[1]
    _serve(server)
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(2)]
        for sock in held:
            sock.sendall(b"POST /plane/webhook HTTP/1.1\r\n")  # and nothing more, for now
        # Accepted in order after the two held ones: over the cap, it gets no thread.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as third:
            third.sendall(_head(sample) + sample.body)
            status, body = _read_answer(third)
        assert status == 503
        assert json.loads(body)["status"] == "error"
        held.pop().close()
        deadline = time.monotonic() + 30
        while server.open_connections > 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the state, not asserting on time
        assert _post(port, "/plane/webhook", sample.headers, sample.body)[0] == 200
        held.pop().close()
    finally:
        server.shutdown()
        server.server_close()
    assert [r.delivery_id for r in sqlite_store.fetch()] == [sample.headers["X-Plane-Delivery"]]
