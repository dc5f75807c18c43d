"""6. Memory: peak RSS while iterating 100,000 items against 10,000 (per_page 1000).

Each iteration runs in its own fresh subprocess (``python -m bench.memory``), which reports its
own peak RSS before and after the walk; the emulator serves from this process. The iterator
should stream: the peak must not grow with the number of items.

The peak is ``VmHWM`` from /proc/self/status, not ``getrusage().ru_maxrss``: Linux carries the
parent's high-water mark into ``ru_maxrss`` across fork/exec, so a child of this process (which
holds 110,000 emulated items) would report the parent's peak instead of its own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any

from bench.common import BENCH_DIR, BenchResult, RunConfig, ratio
from bench.emu import add_project, has_plane_client, start_emulator

PER_PAGE = 1000
KEY_ENV = "BENCH_PLANE_API_KEY"  # the key travels by environment, never on a command line


def _peak_rss_kib() -> int:
    """Peak resident set of this process image, in KiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    # No procfs (not Linux): ru_maxrss, which may include the parent's peak (see above).
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _child(mode: str, base_url: str, slug: str, project_id: str) -> dict[str, Any]:
    """Walk every item with ``mode``'s client, keeping nothing; report peak RSS."""
    api_key = os.environ[KEY_ENV]
    path = f"workspaces/{slug}/projects/{project_id}/work-items/"
    items = 0
    if mode == "ours":
        from plane_connector import PlaneClient

        client = PlaneClient(base_url, api_key=api_key, requests_per_minute=1_000_000)
        client.get("users/me/")  # runtime and pool up before the "before" reading
        before = _peak_rss_kib()
        for _ in client.paginate(path, per_page=PER_PAGE):
            items += 1
    else:
        import requests

        session = requests.Session()
        session.headers["X-API-Key"] = api_key
        url = f"{base_url}/api/v1/{path}"
        session.get(f"{base_url}/api/v1/users/me/").raise_for_status()
        before = _peak_rss_kib()
        cursor = None
        while True:
            params: dict[str, Any] = {"per_page": PER_PAGE}
            if cursor:
                params["cursor"] = cursor
            resp = session.get(url, params=params, timeout=60)
            resp.raise_for_status()
            page = resp.json()
            for _ in page["results"]:
                items += 1
            if not page["next_page_results"]:
                break
            cursor = page["next_cursor"]
    return {"items": items, "peak_before_kib": before, "peak_kib": _peak_rss_kib()}


def _measure(mode: str, emu: Any, project_id: str) -> dict[str, Any]:
    env = dict(os.environ, **{KEY_ENV: emu.api_key})
    proc = subprocess.run(
        [sys.executable, "-m", "bench.memory", mode, emu.base_url, emu.workspace_slug, project_id],
        cwd=BENCH_DIR.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed: {proc.stderr.strip()[-500:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run(cfg: RunConfig) -> BenchResult:
    """Peak RSS at 10x the items, over peak RSS at 1x, for ours and a requests loop."""
    res = BenchResult("memory", "6. memory")
    small, large = (2_000, 20_000) if cfg.quick else (10_000, 100_000)
    modes = (["ours"] if has_plane_client() else []) + ["requests"]
    notes = [] if "ours" in modes else ["plane_connector.PlaneClient not available"]
    emu = start_emulator(rate_limit=10**6)
    peaks: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in modes}
    try:
        projects = {n: add_project(emu, n, f"bench memory {n}") for n in (small, large)}
        for n, pid in projects.items():
            for mode in modes:
                out = _measure(mode, emu, pid)
                if out["items"] != n:
                    raise RuntimeError(f"{mode} walked {out['items']} items, expected {n}")
                peaks[mode][n] = out
    finally:
        emu.stop()
    for mode in modes:
        p_small, p_large = peaks[mode][small]["peak_kib"], peaks[mode][large]["peak_kib"]
        label = "ours" if mode == "ours" else "requests loop (baseline)"
        res.add(
            f"peak RSS {large:,} items / {small:,} items, {label}",
            ratio(p_large, p_small),
            "ratio",
            "<= 1.1" if mode == "ours" else None,
            note=f"{p_small / 1024:.1f} MiB -> {p_large / 1024:.1f} MiB",
        )
    res.details = {"per_page": PER_PAGE, "sizes": [small, large], "peaks": peaks, "notes": notes}
    return res


if __name__ == "__main__":
    print(json.dumps(_child(*sys.argv[1:5])))
