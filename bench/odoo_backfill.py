"""8. Back-fill inside a live prefork Odoo: 1,000 tasks into an empty linked Plane project.

Per Odoo series: a project with 1,000 tasks, not linked; then the user's button "Create in Plane"
(``action_plane_create_project``) creates an empty Plane project in the emulator, links it and
queues the back-fill, which the server's cron workers run. The emulator allows Plane's 60
requests per window, its window time-scaled (a Plane minute lasts a few seconds) and the connector
set to the same window; Plane's webhooks for every created work item go back to the server, as a
real Plane's would.

Figures: the time from the button to the last job done, over the theoretical minimum for the
requests made, ``T_min(N)`` (docs/readme/bench.md); 429s the emulator answered; requests per task.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any

from bench.common import BenchResult, RunConfig, min_time_for
from bench.emu import adopt_api_key, require_plane_client
from bench.odoo_live import LiveOdoo, per_series, wait_until

log = logging.getLogger("bench.odoo_backfill")

RATE = 60


def run(cfg: RunConfig) -> BenchResult:
    res = BenchResult("odoo_backfill", "8. Odoo back-fill")
    require_plane_client()
    tasks, window = (20, 1.0) if cfg.smoke else (200, 3.0) if cfg.quick else (1000, 10.0)

    def figures(series: str, out: dict[str, Any]) -> None:
        tag = f"{series}.0"
        res.add(f"{tag}: time / theoretical minimum", out["time_over_min"], "ratio", "<= 1.05",
                note=f"{out['seconds']:.1f} s for {out['requests']} requests, "
                     f"T_min {out['t_min']:.0f} s")  # fmt: skip
        res.add(f"{tag}: 429s received", out["server_429"], "count", "== 0")
        res.add(f"{tag}: requests / tasks", out["requests_per_task"], "ratio", "<= 1.02")
        res.add(f"{tag}: tasks not in Plane exactly once", out["not_once"], "count", "== 0")

    details = {"tasks": tasks, "rate": RATE, "window_seconds": window}
    return per_series(res, details, lambda srv: _measure(srv, tasks, window), figures)


def _measure(srv: LiveOdoo, n_tasks: int, window: float) -> dict[str, Any]:
    from plane_connector.testing import PlaneEmulator

    assert srv.listener is not None
    notes: list[str] = []
    emu = PlaneEmulator(rate_limit=RATE, time_scale=window / 60.0, seed=8).start()
    try:
        key = srv.keys["backfill"]
        adopt_api_key(emu, key)
        srv.configure_plane(emu, "backfill", rpm=RATE, window=window)
        emu.register_webhook(f"{srv.url}/plane/webhook", secret=srv.webhook_secret)
        log_from = srv.log_offset()
        stages = [srv.call("project.task.type", "create", {"name": name, "sequence": seq})
                  for seq, name in enumerate(("New", "In Progress", "Done"), 1)]
        project = srv.call("project.project", "create", {
            "name": f"Backfill {srv.series} {uuid.uuid4().hex[:6]}",
            "type_ids": [(6, 0, stages)],
        })  # fmt: skip
        created = time.perf_counter()
        srv.call("project.task", "create",
                 [{"name": f"Task {i:04d}", "project_id": project, "stage_id": stages[0]}
                  for i in range(n_tasks)],
                 context={"tracking_disable": True, "mail_create_nolog": True})
        log.info("Odoo %s: %s tasks created in %.1fs", srv.series, n_tasks,
                 time.perf_counter() - created)
        key_id = hashlib.sha256(key.encode()).hexdigest()
        mark = srv.listener.mark()
        started = time.time()
        srv.call("project.project", "action_plane_create_project", [project])

        def finished() -> bool:
            (row,) = srv.sql(
                "SELECT (SELECT count(*) FROM plane_sync_job WHERE project_id = %(p)s"
                "        AND state IN ('pending', 'running')),"
                "       (SELECT plane_backfill_state FROM project_project WHERE id = %(p)s)",
                {"p": project})
            return row[0] == 0 and row[1] == "done"

        # Generous: 5x the budget's own floor, plus time for Odoo to start.
        wait_until(finished, 5 * min_time_for(n_tasks + 20, RATE, window) + 120,
                   "the back-fill to finish", step=0.25)
        job_ids = {r[0] for r in srv.sql(
            "SELECT id FROM plane_sync_job WHERE project_id = %s", (project,))}
        done_at = [e.at for e in srv.listener.events[mark:]
                   if e.channel == "bench_job" and e.data["id"] in job_ids
                   and e.data["state"] in ("done", "dead")]
        finished_at = max(done_at)
        seconds = finished_at - started

        sent = [r for r in emu.requests if r.key_id == key_id]
        n_requests = len(sent)
        server_429 = sum(1 for r in sent if r.status == 429)
        other_errors = sum(1 for r in sent if r.status >= 400 and r.status != 429)
        t_min = min_time_for(n_requests - server_429, RATE, window)
        (plane_project,) = srv.sql(
            "SELECT plane_project_id FROM project_project WHERE id = %s", (project,))[0]
        items = emu.work_items(plane_project)
        by_task = {}
        for item in items:
            by_task.setdefault(item.get("external_id"), []).append(item["id"])
        linked = dict(srv.sql(
            "SELECT id, plane_work_item_id FROM project_task WHERE project_id = %s", (project,)))
        not_once = sum(
            1 for task, item in linked.items()
            if not item or by_task.get(f"project.task,{task}") != [item]
        )
        dead = srv.sql("SELECT count(*) FROM plane_sync_job WHERE project_id = %s"
                       " AND state = 'dead'", (project,))[0][0]
        kinds: dict[str, int] = {}
        for r in sent:
            tail = r.path.rstrip("/").rsplit("/", 2)
            name = tail[-1] if r.method == "POST" or len(tail[-1]) < 30 else tail[-2] + "/<id>"
            kind = f"{r.method} {name}"
            kinds[kind] = kinds.get(kind, 0) + 1
        # Where the time went: when each request was answered, from the button.
        gaps = sorted(
            ((b.at - a.at, round(a.at - started, 2)) for a, b in zip(sent, sent[1:], strict=False)),
            reverse=True)[:8]
        emu.wait_webhooks_idle(60)
        errors = srv.log_errors(log_from)
        if errors:
            notes.append(f"Odoo {srv.series}.0 back-fill: {len(errors)} ERROR line(s), first: "
                         f"{errors[0][:200]}")
        if dead or other_errors:
            notes.append(f"Odoo {srv.series}.0 back-fill: {dead} dead job(s), "
                         f"{other_errors} error answer(s) other than 429")
        return {
            "seconds": seconds,
            "requests": n_requests,
            "t_min": t_min,
            "time_over_min": seconds / t_min if t_min else None,
            "server_429": server_429,
            "other_error_answers": other_errors,
            "requests_per_task": n_requests / n_tasks,
            "not_once": not_once,
            "dead_jobs": dead,
            "plane_items": len(items),
            "webhooks_sent": len(emu.deliveries),
            "request_kinds": kinds,
            "first_request_s": sent[0].at - started if sent else None,
            "last_request_s": sent[-1].at - started if sent else None,
            "longest_gaps_s_at": gaps,
            "error_lines": len(errors),
            "notes": notes,
        }
    finally:
        emu.stop()
