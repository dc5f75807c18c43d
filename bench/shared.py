"""2. Shared budget: 4 processes, one API key, one PostgresRateBudget.

Each process (spawn) has its own PlaneClient and exports its own project; they share the key's
budget through PostgreSQL. The emulator counts the 429s. Throughput as a fraction of the budget
is ``T_min(N) / elapsed``: 1.0 means the processes together used every slot the budget offered.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from bench.common import BenchResult, RunConfig, Skip, drop_tables, min_time_for, require
from bench.emu import add_project, has_plane_client, start_emulator, statuses_for_key

RATE = 60
PER_PAGE = 100
PROCESSES = 4
BUDGET_TABLE = "bench_rate_budget"


def _worker(
    base_url: str,
    api_key: str,
    slug: str,
    project_id: str,
    window: float,
    dsn: str,
    budget_kind: str,
    barrier: Any,
    results: Any,
) -> None:
    """One Odoo-worker-like process: its own client, the shared budget, one export."""
    import logging

    from plane_connector import PlaneClient

    # Retried 429s are counted by the emulator; the client's warnings would only clutter stderr.
    logging.getLogger("plane_connector").setLevel(logging.ERROR)

    budget: Any
    if budget_kind == "completing":
        budget = CompletingBudget(dsn, BUDGET_TABLE)
    else:
        from plane_connector.ratebudget import PostgresRateBudget

        budget = PostgresRateBudget.from_dsn(dsn, table=BUDGET_TABLE)
    client = PlaneClient(
        base_url,
        api_key=api_key,
        requests_per_minute=RATE,
        rate_window=window,
        rate_budget=budget,
    )
    items, error = 0, ""
    barrier.wait()
    start = time.time()
    try:
        path = f"workspaces/{slug}/projects/{project_id}/work-items/"
        for _ in client.paginate(path, per_page=PER_PAGE):
            items += 1
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        error = f"{type(exc).__name__}: {exc}"[:300]
    end = time.time()
    results.put({"items": items, "start": start, "end": end, "error": error,
                 "stats": dict(client.stats)})  # fmt: skip


def _reset_budget(dsn: str) -> None:
    from plane_connector.ratebudget import PostgresRateBudget

    drop_tables(dsn, BUDGET_TABLE)
    PostgresRateBudget.from_dsn(dsn, table=BUDGET_TABLE).ensure_schema()


def run(cfg: RunConfig) -> BenchResult:
    """Total 429s and the fraction of the budget used by 4 processes sharing one key."""
    res = BenchResult("shared", "2. shared budget")
    if not has_plane_client():
        raise Skip("plane_connector.PlaneClient not available yet")
    require(cfg.pg_dsn, "plane_connector.ratebudget")
    per_process = 3_000 if cfg.quick else 5_000
    window = 2.0 if cfg.quick else 14.0
    m = measure(cfg.pg_dsn, window, per_process)
    res.add(f"total 429s, {PROCESSES} processes", m["server_429"], "count", "== 0")
    res.add(
        "aggregate throughput / budget",
        m["fraction"],
        "ratio",
        ">= 0.95",
        note="" if m["complete"] else f"incomplete: {m['items']} items, errors: {m['errors'][:1]}",
    )
    res.add("failed exports", len(m["errors"]), "count", "== 0")
    res.details = m
    return res


def measure(
    dsn: str,
    window: float,
    per_process: int,
    *,
    budget_kind: str = "postgres",
    strip_rate_headers: bool = False,
) -> dict[str, Any]:
    """Run PROCESSES exporters sharing one key and budget; what the emulator and clients saw.

    ``budget_kind="completing"`` and ``strip_rate_headers`` are the diagnostic variants of
    bench.diagnose_shared.
    """
    pages_each = -(-per_process // PER_PAGE)
    n_requests = pages_each * PROCESSES
    t_min = min_time_for(n_requests, RATE, window)
    _reset_budget(dsn)
    emu = start_emulator(rate_limit=RATE, window=window)
    if strip_rate_headers:
        _strip_rate_headers(emu)
    try:
        projects = [add_project(emu, per_process, f"bench shared {i}") for i in range(PROCESSES)]
        key = emu.add_api_key()
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(PROCESSES)
        results = ctx.Queue()
        procs = [
            ctx.Process(
                target=_worker,
                args=(
                    emu.base_url,
                    key,
                    emu.workspace_slug,
                    pid,
                    window,
                    dsn,
                    budget_kind,
                    barrier,
                    results,
                ),
                daemon=True,
            )  # fmt: skip
            for pid in projects
        ]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=t_min * 3 + 120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        statuses = statuses_for_key(emu, key)
    finally:
        emu.stop()
        drop_tables(dsn, BUDGET_TABLE)

    elapsed = max(o["end"] for o in outcomes) - min(o["start"] for o in outcomes)
    items = sum(o["items"] for o in outcomes)
    errors = [o["error"] for o in outcomes if o["error"]]
    complete = items == per_process * PROCESSES and not errors
    return {
        "processes": PROCESSES,
        "items_per_process": per_process,
        "items": items,
        "complete": complete,
        "per_page": PER_PAGE,
        "requests_needed": n_requests,
        "server_429": statuses.get(429, 0),
        "server_statuses": {str(k): v for k, v in statuses.items()},
        "rate": RATE,
        "window_seconds": window,
        "theoretical_min_seconds": t_min,
        "elapsed_seconds": round(elapsed, 3),
        "fraction": t_min / elapsed if complete and elapsed > 0 else None,
        "client_stats": [o["stats"] for o in outcomes],
        "errors": errors,
    }


def _strip_rate_headers(emu: Any) -> None:
    """Diagnostic: the emulator answers without X-RateLimit-* (429s keep Retry-After)."""
    handle = emu.handle

    def without_rate_headers(*args: Any, **kwargs: Any) -> Any:
        resp = handle(*args, **kwargs)
        resp.headers = [(h, v) for h, v in resp.headers if not h.lower().startswith("x-ratelimit")]
        return resp

    emu.handle = without_rate_headers


class CompletingBudget:
    """A reference shared budget that ages each slot from when its request was answered.

    Plane counts a request when it handles it, later than the slot was reserved (send time and
    server queueing). The process-local limiter re-stamps a slot with its response time; this
    budget does the same through the protocol it has: the next ``reserve()`` from this object
    moves its previous slot to "now", an upper bound of when that request was answered.
    One object per thread (it remembers one previous slot). It lives here, beside the
    benchmark's worker that builds it, so that bench.diagnose_shared imports from this module
    and nothing imports back.
    """

    def __init__(self, dsn: str, table: str) -> None:
        import psycopg2

        self._conn = psycopg2.connect(dsn)
        self._table = table
        self._last: int | None = None

    def reserve(self, key_id: str, limit: int, window: float) -> float:
        """Same schedule as PostgresRateBudget, plus the re-stamp of the previous slot."""
        t = self._table
        with self._conn, self._conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{t}:{key_id}",))
            cur.execute("SELECT extract(epoch FROM clock_timestamp())::double precision")
            now = float(cur.fetchone()[0])
            if self._last is not None:
                cur.execute(
                    f"UPDATE {t} SET slot_at = %s WHERE id = %s AND slot_at < %s",
                    (now, self._last, now),
                )
            cur.execute(
                f"SELECT slot_at FROM {t} WHERE key_id = %s ORDER BY slot_at DESC "
                "OFFSET %s LIMIT 1",
                (key_id, int(limit) - 1),
            )
            row = cur.fetchone()
            slot = now if row is None else max(now, float(row[0]) + float(window))
            cur.execute(
                f"INSERT INTO {t} (key_id, slot_at) VALUES (%s, %s) RETURNING id", (key_id, slot)
            )
            self._last = int(cur.fetchone()[0])
        return max(0.0, slot - now)
