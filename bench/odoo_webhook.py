"""9. Webhook route throughput: signed deliveries through /plane/webhook of a live prefork Odoo.

Per Odoo series (the server of benchmark 7, two HTTP workers): 3 concurrent senders post signed
Plane deliveries, 30% of them duplicates (half resent with the same X-Plane-Delivery, half as
Plane's retry: a new delivery id and the same bytes), shuffled so that copies race each other.
Each request opens its own connection, as Plane's sender does. The baseline is the same requests
to a trivial ``auth="none"`` route of the same server that only answers 200 (``/plane_bench/ok``
from the bench-only addon ``ipai_plane_bench``): the ceiling Odoo's own dispatch sets.

Rounds alternate baseline then webhook, and wait for the cron workers to finish processing before
the next round, so the processing of one round never slows the baseline of the next. Figures:
webhook throughput / baseline throughput (median over rounds), and over every round: duplicates
stored, events lost (not stored, or not processed within the wait), ERROR lines in the log.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import random
import threading
import time
import uuid
from statistics import median
from typing import Any

from bench.common import BenchResult, RunConfig
from bench.odoo_live import SECRET_ENV, LiveOdoo, per_series, wait_until

log = logging.getLogger("bench.odoo_webhook")

SENDERS = 3
DUPLICATE_SHARE = 0.3
PROCESS_WAIT = 120.0  # seconds after a round for every stored event to be processed


def run(cfg: RunConfig) -> BenchResult:
    res = BenchResult("odoo_webhook", "9. Odoo webhook route")
    try:
        from plane_connector import sign_body  # noqa: F401
    except ImportError:
        res.status, res.reason = "skipped", "plane_connector.sign_body not available"
        return res
    rounds, sends = (1, 40) if cfg.smoke else (1, 100) if cfg.quick else (3, 700)

    def figures(series: str, out: dict[str, Any]) -> None:
        tag = f"{series}.0"
        res.add(f"{tag}: deliveries/s /plane/webhook / trivial route", out["ratio"], "ratio",
                ">= 0.5", note=f"{out['webhook_rps']:.0f} vs {out['trivial_rps']:.0f} req/s")
        res.add(f"{tag}: duplicates stored of {out['duplicates_sent']}", out["duplicates_stored"],
                "count", "== 0")
        res.add(f"{tag}: events lost of {out['unique_events']}", out["lost"], "count", "== 0",
                note=f"all processed {out['processed_after_s']:.1f} s after the last send"
                if out["processed_after_s"] is not None else "")
        res.add(f"{tag}: ERROR lines in the server log", out["error_lines"], "count", "== 0")

    details = {"rounds": rounds, "sends_per_round": sends, "senders": SENDERS,
               "duplicate_share": DUPLICATE_SHARE}
    return per_series(res, details, lambda srv: _measure(srv, rounds, sends), figures)


def _bodies(n_unique: int, webhook_id: str, rng: random.Random) -> list[bytes]:
    """Plane-shaped v1 ``issue updated`` bodies for work items no task is linked to."""
    workspace = str(uuid.UUID(int=rng.getrandbits(128)))
    project = str(uuid.UUID(int=rng.getrandbits(128)))
    out = []
    for i in range(n_unique):
        item = str(uuid.UUID(int=rng.getrandbits(128)))
        out.append(json.dumps({
            "event": "issue", "action": "updated", "webhook_id": webhook_id,
            "workspace_id": workspace,
            "data": {
                "id": item, "name": f"Bench delivery {i}", "description_html": "<p></p>",
                "priority": "medium", "start_date": None, "target_date": None,
                "sequence_id": i + 1, "sort_order": 65535.0 + i, "completed_at": None,
                "archived_at": None, "is_draft": False, "external_source": None,
                "external_id": None, "created_at": "2026-11-27T10:00:00.000000Z",
                "updated_at": "2026-11-27T10:00:01.000000Z", "project": project,
                "workspace": workspace, "parent": None,
                "state": {"id": str(uuid.UUID(int=rng.getrandbits(128))), "name": "Todo",
                          "color": "#3A3A3A", "group": "unstarted"},
                "labels": [], "assignees": [], "estimate_point": None,
            },
            "activity": {"field": "name", "new_value": f"Bench delivery {i}",
                         "old_value": "x", "actor": {"id": workspace}},
        }).encode())  # fmt: skip
    return out


def _sends(bodies: list[bytes], rng: random.Random) -> list[tuple[bytes, str]]:
    """Each body once with its own delivery id, plus duplicates making DUPLICATE_SHARE of all
    sends (alternately the same delivery id and a new one), shuffled."""
    first = [(body, str(uuid.uuid4())) for body in bodies]
    n_dup = round(len(bodies) * DUPLICATE_SHARE / (1 - DUPLICATE_SHARE))
    dups = []
    for j in range(n_dup):
        body, delivery = first[rng.randrange(len(first))]
        dups.append((body, delivery if j % 2 == 0 else str(uuid.uuid4())))
    sends = first + dups
    rng.shuffle(sends)
    return sends


def _blast(port: int, path: str, sends: list[tuple[bytes, str]], secret: str
           ) -> tuple[float, list[tuple[int, str]]]:
    """(seconds, [(status, answer status)]) for all ``sends`` by SENDERS concurrent threads."""
    from plane_connector import sign_body

    signed = [(body, delivery, sign_body(secret, body)) for body, delivery in sends]
    answers: list[tuple[int, str]] = [(0, "")] * len(signed)
    lock = threading.Lock()
    cursor = iter(range(len(signed)))

    def sender() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            body, delivery, signature = signed[i]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("POST", path, body=body, headers={
                    "Content-Type": "application/json", "User-Agent": "Autopilot",
                    "X-Plane-Delivery": delivery, "X-Plane-Event": "issue",
                    "X-Plane-Signature": signature,
                })  # fmt: skip
                resp = conn.getresponse()
                raw = resp.read()
                try:
                    status = json.loads(raw).get("status", "")
                except ValueError:
                    status = raw[:100].decode("utf-8", "replace")
                answers[i] = (resp.status, status)
            except OSError as exc:
                answers[i] = (-1, f"{type(exc).__name__}: {exc}")
            finally:
                conn.close()

    threads = [threading.Thread(target=sender, name=f"bench-sender-{k}") for k in range(SENDERS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, answers


def _measure(srv: LiveOdoo, rounds: int, sends_per_round: int) -> dict[str, Any]:
    notes: list[str] = []
    srv.set_params({"plane.webhook_secret_ref": f"env:{SECRET_ENV}"})
    rng = random.Random(9)
    webhook_id = str(uuid.uuid4())  # tags this benchmark's rows
    log_from = srv.log_offset()
    n_unique = round(sends_per_round * (1 - DUPLICATE_SHARE))
    # Warm-up, not counted: each HTTP worker builds its routing map and loads the connector on
    # its first requests.
    warm = _sends(_bodies(6 * SENDERS, str(uuid.uuid4()), rng), rng)
    for path in ("/plane_bench/ok", "/plane/webhook"):
        _blast(srv.port, path, warm, srv.webhook_secret)
    trivial_rps, webhook_rps, ratios = [], [], []
    unique_total = dup_total = 0
    bad_answers: list[tuple[int, str]] = []
    accepted = duplicate = 0
    processed_after = []
    fingerprints: set[str] = set()
    for r in range(rounds):
        bodies = _bodies(n_unique, webhook_id, rng)
        fingerprints.update(hashlib.sha256(b).hexdigest() for b in bodies)
        sends = _sends(bodies, rng)
        unique_total += len(bodies)
        dup_total += len(sends) - len(bodies)
        t_ok, ok_answers = _blast(srv.port, "/plane_bench/ok", sends, srv.webhook_secret)
        t_hook, hook_answers = _blast(srv.port, "/plane/webhook", sends, srv.webhook_secret)
        last_send = time.time()
        bad_answers += [a for a in ok_answers if a[0] != 200]
        bad_answers += [a for a in hook_answers if a[0] != 200]
        accepted += sum(1 for a in hook_answers if a == (200, "accepted"))
        duplicate += sum(1 for a in hook_answers if a == (200, "duplicate"))
        trivial_rps.append(len(sends) / t_ok)
        webhook_rps.append(len(sends) / t_hook)
        ratios.append(webhook_rps[-1] / trivial_rps[-1])
        log.info("Odoo %s round %s: trivial %.0f/s, webhook %.0f/s", srv.series, r,
                 trivial_rps[-1], webhook_rps[-1])

        def all_processed(expected: int = unique_total) -> bool:
            (row,) = srv.sql(
                "SELECT count(*) FILTER (WHERE state = 'done') FROM plane_webhook_delivery"
                " WHERE webhook_id = %s", (webhook_id,))
            return row[0] >= expected

        try:
            wait_until(all_processed, PROCESS_WAIT, "the deliveries to be processed", step=0.1)
            processed_after.append(time.time() - last_send)
        except AssertionError:
            processed_after.append(None)
            notes.append(f"Odoo {srv.series}.0 round {r}: not every stored delivery was "
                         f"processed within {PROCESS_WAIT:.0f} s of the last send")
    rows = srv.sql("SELECT fingerprint, state FROM plane_webhook_delivery WHERE webhook_id = %s",
                   (webhook_id,))
    stored = [fp for fp, _ in rows]
    done = {fp for fp, state in rows if state == "done"}
    errors = srv.log_errors(log_from)
    if errors:
        notes.append(f"Odoo {srv.series}.0 webhook route: first ERROR line: {errors[0][:200]}")
    if bad_answers:
        notes.append(f"Odoo {srv.series}.0 webhook route: {len(bad_answers)} answer(s) other "
                     f"than 200, first: {bad_answers[0]}")
    waits = [p for p in processed_after if p is not None]
    return {
        "trivial_rps": median(trivial_rps),
        "webhook_rps": median(webhook_rps),
        "ratio": median(ratios),
        "ratios": ratios,
        "unique_events": unique_total,
        "duplicates_sent": dup_total,
        "accepted": accepted,
        "answered_duplicate": duplicate,
        "non_200": len(bad_answers),
        "duplicates_stored": len(stored) - len(set(stored)) + max(0, accepted - unique_total),
        "lost": len(fingerprints - done),
        "processed_after_s": max(waits) if len(waits) == len(processed_after) else None,
        "error_lines": len(errors),
        "notes": notes,
    }
