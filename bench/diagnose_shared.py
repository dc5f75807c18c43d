"""Why the shared-budget benchmark misses: the same run in four variants.

``.venv/bin/python -m bench.diagnose_shared [--window 7] [--items 5000]``

1. as shipped: PostgresRateBudget, the emulator's normal headers;
2. without X-RateLimit-* headers: isolates the client's reaction to ``Remaining: 0``;
3. CompletingBudget (bench.shared): slots aged from completion instead of reservation;
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
