"""A minimal HTTP/1.1 keep-alive server: the one peer every client in the overhead bench hits.

Runs in its own process (``python -m bench.kaserver``) so the clients under test never share a GIL
with it. Any path answers a small JSON object; a path containing ``/slow/`` waits ``delay_ms``
(query parameter) first, without blocking the other connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from bench.common import BENCH_DIR

BODY = (
    b'{"id":"5b1f3c2a-9d8e-4f7a-8c6b-2e1d0f9a8b7c","first_name":"Bench","last_name":"User",'
    b'"email":"bench@example.com","avatar":"","avatar_url":null,"display_name":"bench"}'
)
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
)


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, _, rest = head.partition(b"\r\n")
            length = 0
            for line in rest.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            parts = request_line.split(b" ")
            target = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            if "/slow/" in target:
                query = parse_qs(urlsplit(target).query)
                await asyncio.sleep(float(query.get("delay_ms", ["1000"])[0]) / 1000.0)
            writer.write(HEAD + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _main(port: int) -> None:
    server = await asyncio.start_server(_serve_connection, "127.0.0.1", port, backlog=256)
    bound = server.sockets[0].getsockname()[1]
    print(bound, flush=True)
    # The parent closes our stdin to stop us. Exiting at once, open keep-alive connections and
    # all, spares the clients nothing and the log a cancelled task per connection.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()
    os._exit(0)


class KeepAliveServer:
    """Context manager: start the server process, expose ``base_url``, stop it on exit."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> KeepAliveServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.kaserver"],
            cwd=BENCH_DIR.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError(f"keep-alive server did not start (said {line!r})")
        self.port = int(line)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(_main(parser.parse_args().port))
