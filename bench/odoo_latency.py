"""7. Sync latency inside a live prefork Odoo, both directions, against its floor.

Per Odoo series: a project linked to the emulator (Plane's real 60 requests per 60 s), its webhook
registered to the server's /plane/webhook, then one task changed many times, one change at a
time:

* **Odoo → Plane**: the task's name is written over XML-RPC; latency runs from the write's commit
  (its sync job's INSERT, NOTIFYed at commit) to the emulator's answer to the PATCH that brought
  the name. Floor: one HTTP round trip (a direct PlaneClient PATCH to the same emulator, median,
  measured in this run) plus the wait Plane's budget imposes on that request (from the emulator's
  log of this key's requests: the request R back plus the window).
* **Plane → Odoo**: the work item's state is changed in the emulator (as a Plane user would);
  latency runs to the commit that gives the task its new stage. Floor: the emulator's own send
  plus the webhook hop, i.e. the moment Odoo answered 200 to the delivery.

Changes are paced so the budget is never exhausted. Each is timestamped along the way (job
created/claimed/done, deliveries stored/processed, the cron worker's "job acquired" log line), so
the table's goal, p95 of (latency - floor), comes with where the time went.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from statistics import median
from typing import Any

from bench.common import BenchResult, RunConfig
from bench.emu import add_project, adopt_api_key, require_plane_client
from bench.odoo_live import LiveOdoo, per_series, percentile, wait_until

log = logging.getLogger("bench.odoo_latency")

RATE = 60
WINDOW = 60.0  # real Plane: 60 requests per 60 s
GOAL_OVER_FLOOR = 2.0  # seconds, the goal for p95
#: Seconds between the starts of two Odoo writes: 48 a minute, under the budget of 60 with the
#: link's own requests in the first window.
PACE_ODOO = 1.25
PACE_PLANE = 1.0
CHANGE_TIMEOUT = 150.0  # longer than any cron interval involved: a missed wake-up shows


@dataclass
class Change:
    """One change and its timeline (epoch seconds; None where the event was not seen)."""

    start: float  # the write was sent / the Plane change was made
    committed: float | None = None  # A: the job INSERT committed
    acquired: float | None = None  # the cron worker took the cron (its log line)
    claimed: float | None = None  # A: the job was claimed (state running)
    arrived: float | None = None  # A: emulator answered the PATCH / B: task stage committed
    done: float | None = None  # A: job done / B: delivery processed
    sent: float | None = None  # B: emulator started the webhook POST
    answered: float | None = None  # B: Odoo answered 200
    stored: float | None = None  # B: delivery row committed
    floor: float | None = None

    @property
    def latency(self) -> float | None:
        begin = self.committed if self.committed is not None else self.start
        return None if self.arrived is None else self.arrived - begin


def run(cfg: RunConfig) -> BenchResult:
    res = BenchResult("odoo_latency", "7. Odoo sync latency")
    require_plane_client()
    n = 3 if cfg.smoke else 8 if cfg.quick else 50

    def figures(series: str, out: dict[str, Any]) -> None:
        for key, label in (("a", "Odoo write → Plane"), ("b", "Plane change → Odoo")):
            d = out[key]
            tag = f"{series}.0 {label}"
            res.add(f"{tag}: p95 latency − floor", d["p95_over_floor"], "s",
                    f"<= {GOAL_OVER_FLOOR}", note=f"p50 {_s(d['p50_over_floor'])}")
            res.add(f"{tag}: p50 latency", d["p50"], "s",
                    note=f"p95 {_s(d['p95'])}; floor median {_s(d['floor_median'])}")
            res.add(f"{tag}: p50 latency / floor", d["p50_ratio"], "ratio",
                    note=f"p95 {_s(d['p95_ratio'], '')}")
            res.add(f"{tag}: changes not arrived in {CHANGE_TIMEOUT:.0f} s", d["missing"],
                    "count", "== 0")
            out["notes"].append(f"{tag}: {d['where']}")

    details = {"changes_per_direction": n, "rate": RATE, "window": WINDOW,
               "pace_odoo_s": PACE_ODOO, "pace_plane_s": PACE_PLANE}
    return per_series(res, details, lambda srv: _measure(srv, n), figures)


def _s(value: float | None, unit: str = " s") -> str:
    return "-" if value is None else f"{value:.3f}{unit}"


def _measure(srv: LiveOdoo, n: int) -> dict[str, Any]:
    from plane_connector import PlaneClient
    from plane_connector.testing import PlaneEmulator

    assert srv.listener is not None
    notes: list[str] = []
    emu = PlaneEmulator(rate_limit=RATE, seed=7).start()
    try:
        key = srv.keys["latency"]
        adopt_api_key(emu, key)
        rtt = _round_trip(emu, PlaneClient)
        srv.configure_plane(emu, "latency", rpm=RATE, window=WINDOW)
        emu.register_webhook(f"{srv.url}/plane/webhook", secret=srv.webhook_secret)
        log_from = srv.log_offset()
        task, item_id, plane_project, stages = _linked_task(srv, emu)
        sync_cron = srv.cron_id("ipai_plane_project_sync.ir_cron_plane_sync_jobs")
        delivery_cron = srv.cron_id("ipai_plane_connector.ir_cron_plane_process_deliveries")

        a = _odoo_to_plane(srv, emu, task, item_id, n)
        b = _plane_to_odoo(srv, emu, task, item_id, plane_project, stages, n)

        # The cron worker's "job N acquired" lines: the wake-up, as the cron saw it.
        acquired = {sync_cron: [], delivery_cron: []}
        for at, _pid, logger, message in srv.log_events(log_from):
            if logger.endswith("ir_cron") and message.startswith("job ") and "acquired" in message:
                cron = int(message.split()[1])
                if cron in acquired:
                    acquired[cron].append(at)
        for change in a:
            change.acquired = _first_after(acquired[sync_cron], change.committed)
        for change in b:
            # From the row's commit: the route wakes the cron before it answers 200, so the
            # cron may be acquired before Plane has the answer (the step then shows negative).
            change.acquired = _first_after(acquired[delivery_cron], change.stored)

        budget_waits = _budget_waits(emu, key, a)
        for change, wait in zip(a, budget_waits, strict=True):
            change.floor = rtt + wait
        for change in b:
            change.floor = None if change.answered is None else change.answered - change.start
        errors = srv.log_errors(log_from)
        if errors:
            notes.append(f"Odoo {srv.series}.0: {len(errors)} ERROR line(s) during the run, "
                         f"first: {errors[0][:200]}")
        return {
            "round_trip_s": rtt,
            "budget_wait_max_s": max(budget_waits, default=0.0),
            "a": _summary(a, [
                ("write committed → cron acquired", "committed", "acquired"),
                ("acquired → job claimed", "acquired", "claimed"),
                ("claimed → Plane has it", "claimed", "arrived"),
            ]),
            "b": _summary(b, [
                ("change → webhook sent", "start", "sent"),
                ("sent → delivery stored", "sent", "stored"),
                ("stored → Odoo answered 200", "stored", "answered"),
                ("answered → cron acquired", "answered", "acquired"),
                ("acquired → task written", "acquired", "arrived"),
            ]),
            "error_lines": len(errors),
            "notes": notes,
        }
    finally:
        emu.stop()


def _round_trip(emu: Any, client_cls: Any, samples: int = 21) -> float:
    """Median seconds of one PATCH by a PlaneClient to this emulator, before any webhook exists
    (its own key and project: the Odoo key's budget is untouched)."""
    project = add_project(emu, 1, "round trip probe")
    item = emu.work_items(project)[0]["id"]
    client = client_cls(emu.base_url, api_key=emu.add_api_key())
    path = f"workspaces/{emu.workspace_slug}/projects/{project}/work-items/{item}/"
    times = []
    for i in range(samples):
        started = time.perf_counter()
        client.request("PATCH", path, json={"name": f"probe {i}"})
        times.append(time.perf_counter() - started)
    return median(times)


def _linked_task(srv: LiveOdoo, emu: Any) -> tuple[int, str, str, dict[str, int]]:
    """A project with one task, linked to a new Plane project (the user's button), synced."""
    stages = {}
    for seq, (name, fold) in enumerate(
        [("New", False), ("In Progress", False), ("Done", True), ("Cancelled", True)], 1
    ):
        stages[name] = srv.call("project.task.type", "create",
                                {"name": name, "sequence": seq, "fold": fold})
    project = srv.call("project.project", "create", {
        "name": f"Latency {srv.series} {uuid.uuid4().hex[:6]}",
        "type_ids": [(6, 0, list(stages.values()))],
    })  # fmt: skip
    task = srv.call("project.task", "create",
                    {"name": "latency probe", "project_id": project, "stage_id": stages["New"]})
    srv.call("project.project", "action_plane_create_project", [project])

    def synced() -> Any:
        (row,) = srv.call("project.task", "read", [task],
                          ["plane_work_item_id", "plane_sync_state"])
        return row["plane_work_item_id"] if row["plane_sync_state"] == "synced" else None

    item_id = wait_until(synced, 120, "the task's first push")
    (proj,) = srv.call("project.project", "read", [project], ["plane_project_id"])
    _settle(srv, emu)
    return task, item_id, proj["plane_project_id"], stages


def _settle(srv: LiveOdoo, emu: Any) -> None:
    """Until Plane sent everything and Odoo processed it (nothing queued on either side)."""
    emu.wait_webhooks_idle(30)
    wait_until(
        lambda: srv.sql(
            "SELECT (SELECT count(*) FROM plane_webhook_delivery WHERE state = 'received')"
            " + (SELECT count(*) FROM plane_sync_job WHERE state IN ('pending', 'running'))"
        )[0][0] == 0,
        120, "Odoo to process what it received",
    )


def _pace(previous_start: float, pace: float) -> None:
    wait = previous_start + pace - time.time()
    if wait > 0:
        time.sleep(wait)


def _odoo_to_plane(srv: LiveOdoo, emu: Any, task: int, item_id: str, n: int) -> list[Change]:
    listener = srv.listener
    assert listener is not None
    changes = []
    previous = 0.0
    for i in range(n):
        _pace(previous, PACE_ODOO)
        name = f"A{i} {uuid.uuid4().hex[:8]}"
        mark = listener.mark()
        change = Change(start=time.time())
        previous = change.start
        srv.call("project.task", "write", [task], {"name": name})
        created = listener.wait(
            lambda e: e.channel == "bench_job" and e.data["op"] == "INSERT"
            and e.data["task"] == task, mark, 30)  # fmt: skip
        if created is None:
            raise AssertionError(f"the write of {name!r} queued no sync job")
        change.committed = created.at
        job = created.data["id"]
        claimed = listener.wait(
            lambda e, job=job: e.channel == "bench_job" and e.data["id"] == job
            and e.data["state"] == "running", mark, CHANGE_TIMEOUT)  # fmt: skip
        done = listener.wait(
            lambda e, job=job: e.channel == "bench_job" and e.data["id"] == job
            and e.data["state"] in ("done", "dead"), mark, CHANGE_TIMEOUT)  # fmt: skip
        change.claimed = claimed.at if claimed else None
        change.done = done.at if done else None
        if done is not None and (emu.work_item(item_id) or {}).get("name") == name:
            change.arrived = _patch_answered(emu, item_id, change.start)
        changes.append(change)
    return changes


def _patch_answered(emu: Any, item_id: str, since: float) -> float | None:
    for req in reversed(emu.requests):
        if req.at < since:
            break
        if req.method == "PATCH" and item_id in req.path and req.status == 200:
            return float(req.at)
    return None


def _plane_to_odoo(srv: LiveOdoo, emu: Any, task: int, item_id: str, plane_project: str,
                   stages: dict[str, int], n: int) -> list[Change]:
    listener = srv.listener
    assert listener is not None
    states = {s["group"]: s["id"] for s in reversed(emu.states(plane_project))}
    # Plane's "In Progress" (started) maps to the stage of that name, "Backlog" to "New".
    moves = [(states["started"], stages["In Progress"]), (states["backlog"], stages["New"])]
    _settle(srv, emu)
    changes = []
    previous = 0.0
    for i in range(n):
        _pace(previous, PACE_PLANE)
        state, stage = moves[i % 2]
        sent_before = len(emu.deliveries)
        mark = listener.mark()
        change = Change(start=time.time())
        previous = change.start
        emu.update_work_item(item_id, state=state)
        written = listener.wait(
            lambda e, stage=stage: e.channel == "bench_task" and e.data["id"] == task
            and e.data["stage"] == stage, mark, CHANGE_TIMEOUT)  # fmt: skip
        change.arrived = written.at if written else None
        emu.wait_webhooks_idle(30)
        attempts = emu.deliveries[sent_before:]
        if attempts:
            change.sent = attempts[0].sent_at
            change.answered = attempts[0].answered_at
            delivery = attempts[0].delivery_id
            stored = listener.wait(
                lambda e, d=delivery: e.channel == "bench_delivery" and e.data["delivery"] == d
                and e.data["op"] == "INSERT", mark, 5)  # fmt: skip
            change.stored = stored.at if stored else None
            row = stored.data["id"] if stored else None
            processed = listener.wait(
                lambda e, r=row: e.channel == "bench_delivery" and e.data["id"] == r
                and e.data["state"] == "done", mark, 5) if row else None  # fmt: skip
            change.done = processed.at if processed else None
        changes.append(change)
    return changes


def _first_after(moments: list[float], after: float | None) -> float | None:
    if after is None:
        return None
    # Log lines carry milliseconds: allow the truncation.
    later = [m for m in moments if m >= after - 0.001]
    return min(later) if later else None


def _budget_waits(emu: Any, key: str, changes: list[Change]) -> list[float]:
    """For each Odoo-side change, how long Plane's budget made its PATCH wait at the least:
    the request R back in this key's log, plus the window, minus the commit."""
    import hashlib

    key_id = hashlib.sha256(key.encode()).hexdigest()
    moments = [r.at for r in emu.requests if r.key_id == key_id and r.status != 429]
    waits = []
    for change in changes:
        if change.arrived is None or change.committed is None:
            waits.append(0.0)
            continue
        k = sum(1 for m in moments if m < change.arrived)  # this PATCH's index in the log
        wait = 0.0
        if k >= RATE:
            wait = max(0.0, moments[k - RATE] + WINDOW - change.committed)
        waits.append(wait)
    return waits


def _summary(changes: list[Change], steps: list[tuple[str, str, str]]) -> dict[str, Any]:
    ok = [c for c in changes if c.latency is not None and c.floor is not None]
    latencies = [c.latency for c in ok]
    over = [c.latency - c.floor for c in ok]
    ratios = [c.latency / c.floor for c in ok if c.floor]
    where = []
    for label, begin, end in steps:
        spans = [getattr(c, end) - getattr(c, begin) for c in changes
                 if getattr(c, begin) is not None and getattr(c, end) is not None]
        if spans:
            where.append(f"{label} {median(spans):.3f} s (max {max(spans):.3f})")
    return {
        "changes": len(changes),
        "missing": len(changes) - len(ok),
        "p50": percentile(latencies, 50) if ok else None,
        "p95": percentile(latencies, 95) if ok else None,
        "p50_over_floor": percentile(over, 50) if ok else None,
        "p95_over_floor": percentile(over, 95) if ok else None,
        "p50_ratio": percentile(ratios, 50) if ratios else None,
        "p95_ratio": percentile(ratios, 95) if ratios else None,
        "floor_median": median([c.floor for c in ok]) if ok else None,
        "where": "medians: " + "; ".join(where),
        "timeline": compact_timeline(changes),
    }


TIMELINE = ("committed", "acquired", "claimed", "sent", "stored", "answered", "arrived", "done",
            "floor")


def compact_timeline(changes: list[Change]) -> dict[str, Any]:
    """Each change on one line: its start (epoch) and each moment as seconds after it."""
    rows = []
    for c in changes:
        cells = [f"{c.start:.3f}"]
        for name in TIMELINE:
            value = getattr(c, name)
            if value is None:
                cells.append("-")
            else:
                cells.append(f"{value if name == 'floor' else value - c.start:.4f}")
        rows.append(" ".join(cells))
    return {"columns": ["start", *TIMELINE], "rows": rows}
