"""4. Client overhead: sequential GETs on loopback, and the GIL while threads wait on the network.

All clients hit the same keep-alive server (bench.kaserver, its own process), in this one process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bench.common import BenchResult, RunConfig, median, ratio
from bench.kaserver import KeepAliveServer

API_KEY = "plane_api_" + "0b" * 16  # emulator-style key; the server ignores it
PATH = "users/me/"
WAITERS = 8


def _clients(base_url: str) -> tuple[dict[str, Callable[[str], Any]], list[Callable[[], None]]]:
    """name -> get(path) for each client that is installed, plus their close functions."""
    clients: dict[str, Callable[[str], Any]] = {}
    closers: list[Callable[[], None]] = []
    api = base_url + "/api/v1/"
    headers = {"X-API-Key": API_KEY, "Accept": "application/json"}
    try:
        from plane_connector import PlaneClient

        # The budget is lifted: this measures the transport, not the throttle.
        ours = PlaneClient(base_url, api_key=API_KEY, requests_per_minute=1_000_000)
        clients["plane_connector"] = lambda p: ours.get(p)
    except ImportError:
        pass
    try:
        import requests

        session = requests.Session()
        session.headers.update(headers)
        clients["requests"] = lambda p: session.get(api + p, timeout=30).json()
        closers.append(session.close)
    except ImportError:
        pass
    try:
        import httpx

        hx = httpx.Client(headers=headers, timeout=30)
        clients["httpx"] = lambda p: hx.get(api + p).json()
        closers.append(hx.close)
    except ImportError:
        pass
    return clients, closers


def _latencies(get: Callable[[str], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        get(PATH)
        out.append(time.perf_counter() - t)
    return out


def _read_run_delay() -> float | None:
    """Seconds this thread has spent runnable but not running (preempted), from schedstat."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _count_for(seconds: float) -> float:
    """Share of its time this thread could run Python while others wait (1.0 = never stopped).

    Wall time minus the time the OS kept it off a CPU (other processes on a shared machine), so
    what remains is running, or blocked on the GIL. The thread's CPU time over that is the share
    in which it held the GIL. Without schedstat, falls back to CPU time over wall time.
    """
    wall0, cpu0, delay0 = time.perf_counter(), time.thread_time(), _read_run_delay()
    deadline = wall0 + seconds
    n = 0
    while True:
        for _ in range(1000):
            n += 1
        if time.perf_counter() >= deadline:
            break
    wall = time.perf_counter() - wall0
    cpu = time.thread_time() - cpu0
    delay1 = _read_run_delay()
    if delay0 is not None and delay1 is not None:
        wall -= delay1 - delay0
    return min(1.0, cpu / wall) if wall > 0 else 0.0


def _share_while_waiting(get: Callable[[str], Any] | None, seconds: float, delay_ms: int) -> float:
    """Counter thread's share while WAITERS threads sit in slow GETs (none if ``get`` is None)."""
    stop = threading.Event()
    started = threading.Barrier(WAITERS + 1) if get else None
    errors: list[BaseException] = []

    def waiter() -> None:
        assert get is not None and started is not None
        started.wait()
        while not stop.is_set():
            try:
                get(f"slow/?delay_ms={delay_ms}")
            except Exception as exc:  # noqa: BLE001 - reported after the run
                errors.append(exc)
                return

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(WAITERS if get else 0)]
    for t in threads:
        t.start()
    if started is not None:
        started.wait()
        # Let every waiter get its first request onto the wire before counting starts.
        time.sleep(delay_ms / 4000.0)
    share = _count_for(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=delay_ms / 1000.0 + 30)
    if errors:
        raise RuntimeError(f"slow GETs failed: {errors[0]!r}")
    return share


def _parallel_span(get: Callable[[str], Any], delay_ms: int) -> float:
    """Seconds for WAITERS threads to complete one slow GET each, all started together."""
    gate = threading.Barrier(WAITERS + 1)
    errors: list[BaseException] = []

    def one() -> None:
        gate.wait()
        try:
            get(f"slow/?delay_ms={delay_ms}")
        except Exception as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(WAITERS)]
    for t in threads:
        t.start()
    gate.wait()
    start = time.perf_counter()
    for t in threads:
        t.join(timeout=delay_ms / 1000.0 * WAITERS + 30)
    if errors:
        raise RuntimeError(f"slow GETs failed: {errors[0]!r}")
    return time.perf_counter() - start


def run(cfg: RunConfig) -> BenchResult:
    """Median latency ratios and the GIL-released ratio."""
    res = BenchResult("overhead", "4. client overhead")
    notes: list[str] = []
    n = 300 if cfg.quick else 2000
    rounds = 5 if cfg.quick else 10
    with KeepAliveServer() as server:
        clients, closers = _clients(server.base_url)
        if "plane_connector" not in clients:
            notes.append("plane_connector.PlaneClient not available: ours not measured")
        lat: dict[str, list[float]] = {name: [] for name in clients}
        for get in clients.values():
            _latencies(get, 100 if cfg.quick else 300)  # warm-up: connect, pools, caches
        # Rounds interleave the clients so machine load falls on all of them alike.
        for _ in range(rounds):
            for name, get in clients.items():
                lat[name] += _latencies(get, n // rounds)
        med = {name: median(v) for name, v in lat.items()}
        ours = med.get("plane_connector")
        for other, kind in (("requests", "Session"), ("httpx", "Client")):
            if other in med:
                res.add(
                    f"median latency ours / {other}.{kind}",
                    ratio(ours, med[other]),
                    "ratio",
                    "<= 0.5",
                )
        res.details["median_us"] = {k: round(v * 1e6, 1) for k, v in med.items()}
        res.details["requests_per_client"] = n

        seconds = 0.5
        delay_ms = 100 if cfg.quick else 200
        gil_rounds = 3 if cfg.quick else 7
        shares: dict[str, list[float]] = {"none": [], **{name: [] for name in clients}}
        spans: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(gil_rounds):
            shares["none"].append(_share_while_waiting(None, seconds, delay_ms))
            for name, get in clients.items():
                shares[name].append(_share_while_waiting(get, seconds, delay_ms))
                spans[name].append(_parallel_span(get, delay_ms) / (delay_ms / 1000.0))
        share = {name: median(v) for name, v in shares.items()}
        span = {name: median(v) for name, v in spans.items()}
        if "plane_connector" in clients:
            res.add(
                f"Python thread's share of time while {WAITERS} threads wait (ours)",
                share["plane_connector"],
                "ratio",
                ">= 0.9",
                note="1.0 = never held up",
            )
        for name in ("requests", "httpx"):
            if name in share:
                res.add(f"same, {name} (baseline)", share[name], "ratio")
        res.add("same, no waiting threads (baseline)", share["none"], "ratio")
        for name in clients:
            res.add(
                f"{WAITERS} parallel slow GETs: time / one response delay, {name}",
                span[name],
                "ratio",
                note="1 = fully parallel, 8 = serialized",
            )
        res.details["gil"] = {
            "counter_seconds": seconds,
            "slow_response_ms": delay_ms,
            "rounds": gil_rounds,
            "shares": shares,
            "parallel_span_over_delay": spans,
        }
        for close in closers:
            close()
    res.details["notes"] = notes
    return res
