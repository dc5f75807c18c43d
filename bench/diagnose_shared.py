"""Why the shared-budget benchmark misses: the same run in four variants.

``.venv/bin/python -m bench.diagnose_shared [--window 7] [--items 5000]``

1. as shipped: PostgresRateBudget, the emulator's normal headers;
2. without X-RateLimit-* headers: isolates the client's reaction to ``Remaining: 0``;
3. CompletingBudget: slots aged from completion instead of reservation (below);
4. both.

When the client and the budget are right, variant 1 scores like variant 4 (0 429s, throughput
near 1.0). This is a diagnostic, not part of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from bench.common import DEFAULT_PG_DSN
from bench.shared import measure


class CompletingBudget:
    """A reference shared budget that ages each slot from when its request was answered.

    Plane counts a request when it handles it, later than the slot was reserved (send time and
    server queueing). The process-local limiter re-stamps a slot with its response time; this
    budget does the same through the protocol it has: the next ``reserve()`` from this object
    moves its previous slot to "now", an upper bound of when that request was answered.
    One object per thread (it remembers one previous slot).
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


def main(argv: list[str] | None = None) -> int:
    """Print 429s and throughput fraction for each variant."""
    p = argparse.ArgumentParser(prog="python -m bench.diagnose_shared", description=__doc__)
    p.add_argument("--window", type=float, default=7.0, help="rate window, real seconds")
    p.add_argument("--items", type=int, default=5000, help="work items per process")
    args = p.parse_args(argv)
    dsn = os.environ.get("PLANE_TEST_PG_DSN", DEFAULT_PG_DSN)
    variants: list[tuple[str, dict[str, Any]]] = [
        ("as shipped", {}),
        ("without X-RateLimit-* headers", {"strip_rate_headers": True}),
        ("CompletingBudget", {"budget_kind": "completing"}),
        ("both", {"budget_kind": "completing", "strip_rate_headers": True}),
    ]
    print(f"{'variant':32} {'429s':>5} {'throughput/budget':>18}")
    for name, kwargs in variants:
        m = measure(dsn, args.window, args.items, **kwargs)
        fraction = "-" if m["fraction"] is None else f"{m['fraction']:.3f}"
        print(f"{name:32} {m['server_429']:>5} {fraction:>18}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
