"""bench/odoo_chaos.py's own parts that need no Odoo: process lookup, goals, replays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.odoo_chaos import REDUCED, Figures, children, replay, sign


def test_children_are_found_from_proc_and_exited_ones_are_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert child.pid not in children(os.getpid())


def test_misses_name_every_goal_missed_and_none_when_met() -> None:
    done = {"kills": 2, "terminated_connections": 9, "down_answers": 8}
    good = Figures("18", asdict(REDUCED), converged=True, converged_after=20.0,
                   beyond_t_min=14.0, **done)
    assert good.misses() == []
    bad = Figures("18", asdict(REDUCED), tasks_lost=2, jobs_stuck=3, converged=True,
                  converged_after=95.0, beyond_t_min=80.0, requests_after_last_fault=9, **done)
    misses = bad.misses()
    assert misses[:2] == ["tasks_lost = 2 (goal 0)", "jobs_stuck = 3 (goal 0)"]
    assert "80 s beyond what its 9 requests need" in misses[2]
    stuck = Figures("18", asdict(REDUCED), **done)
    assert stuck.misses() == ["not converged within the wait after the last fault (90 s)"]
    # A run whose faults did not happen is no pass.
    idle = Figures("18", asdict(REDUCED), converged=True, converged_after=1.0, beyond_t_min=1.0)
    assert [m.split(" ")[0] for m in idle.misses()] == ["only", "pg_terminate_backend", "Odoo"]
    assert "NOT within 90 s" in stuck.summary()


def test_replay_posts_each_row_signed_all_at_once() -> None:
    got: list[tuple[str, str, str, bytes]] = []
    barrier = threading.Barrier(3, timeout=10)  # the three must be in flight together

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.headers["X-Plane-Delivery"], self.headers["X-Plane-Event"],
                        self.headers["X-Plane-Signature"], body))
            barrier.wait()
            answer = json.dumps({"status": "duplicate"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rows = [(f"d{i}", "issue", json.dumps({"n": i})) for i in range(3)]
        url = f"http://127.0.0.1:{server.server_address[1]}/plane/webhook"
        assert replay(url, "s3cret", rows) == [(200, "duplicate")] * 3
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(g[0] for g in got) == ["d0", "d1", "d2"]
    assert all(sig == sign("s3cret", body) for _, _, sig, body in got)


def test_the_odoo_under_test_inherits_no_operator_plane_settings(monkeypatch) -> None:
    # A lab's live.env exports these; inherited, they pinned the chaos run's Odoo to the real
    # Plane (issue 21.3) instead of the fault proxy the harness points it at.
    from pathlib import Path

    from bench.odoo_live import LiveOdoo

    monkeypatch.setenv("PLANE_BASE_URL", "http://127.0.0.1:8102")
    monkeypatch.setenv("PLANE_API_KEY_REF", "env:PLANE_LIVE_API_KEY")
    monkeypatch.setenv("PLANE_SECRET_ENV_ALLOW", "NOTHING")
    monkeypatch.setenv("ODOO_RC", "/somewhere/odoo.conf")
    srv = LiveOdoo("18", Path("/nonexistent"), sys.executable, keys={},
                   extra_env={"PLANE_CHAOS_API_KEY": "k"})
    env = srv._env()
    assert not {"PLANE_BASE_URL", "PLANE_API_KEY_REF", "PLANE_SECRET_ENV_ALLOW"} & set(env)
    assert env["PLANE_CHAOS_API_KEY"] == "k"
    assert env["ODOO_RC"] == "/somewhere/odoo.conf"  # the rest of the environment stays
