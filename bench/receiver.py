"""5. Webhook receiver: deliveries/s through WebhookReceiver + PostgresDeliveryStore, and the
duplicates that get through when every delivery arrives 3 times at once, against a naive
select-then-insert handler.

Each delivery is sent three times, each copy by another process (spawn), all three processes
walking the same list in the same order from a common start: copies 1 and 2 carry the same
X-Plane-Delivery (a network-level duplicate), copy 3 a new one with the same bytes (how Plane
retries). A "side effect" is a row in an effects table, written by the handler after it decided
the delivery is new; every effect beyond one per delivery is a duplicate let through.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import BenchResult, RunConfig, drop_tables, ratio, require

SAMPLE = (
    Path(__file__).resolve().parent.parent
    / "tests/fixtures/plane-samples/webhooks/issue-updated-priority.body.json"
)
SECRET = "plane_wh_" + "3c" * 16  # bench-only signing secret
#: "ours": the store on one pooled connection per sender (as Odoo's cursors); "ours_dsn": the
#: store as ``plane-connector webhook`` opens it from a DSN (``from_dsn`` with its pool).
#: Each has its own table, so both see every delivery as new.
STORE_TABLES = {"ours": "bench_webhook_delivery", "ours_dsn": "bench_webhook_delivery_dsn"}
NAIVE_TABLE = "bench_naive_webhook_delivery"
EFFECT_TABLE = "bench_webhook_effect"
TABLES = (*STORE_TABLES.values(), NAIVE_TABLE, EFFECT_TABLE)
COPIES = 3


def make_deliveries(n: int) -> list[list[tuple[dict[str, str], bytes]]]:
    """``COPIES`` lists (one per sender) of (headers, body); index i is the same delivery."""
    template = json.loads(SAMPLE.read_text(encoding="utf-8"))
    copies: list[list[tuple[dict[str, str], bytes]]] = [[] for _ in range(COPIES)]
    for i in range(n):
        payload = json.loads(json.dumps(template))
        payload["data"]["id"] = str(uuid.UUID(int=i + 1))
        payload["data"]["sequence_id"] = i + 1
        # Plane serializes with json.dumps defaults; the bytes are what gets signed.
        body = json.dumps(payload).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        first_id, retry_id = str(uuid.uuid4()), str(uuid.uuid4())
        for k, delivery_id in enumerate((first_id, first_id, retry_id)):
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Autopilot",
                "X-Plane-Delivery": delivery_id,
                "X-Plane-Event": payload["event"],
                "X-Plane-Signature": signature,
                "Content-Length": str(len(body)),
            }
            copies[k].append((headers, body))
    return copies


def _persistent_connect(dsn: str) -> tuple[Any, Any]:
    """(connection, connect()) where connect() runs one transaction on that one connection.

    Odoo hands the store pooled cursors, so the bench keeps one connection per worker rather
    than opening one per delivery (which would measure connection set-up instead).
    """
    import psycopg2

    conn = psycopg2.connect(dsn)

    @contextlib.contextmanager
    def connect() -> Iterator[Any]:
        with conn, conn.cursor() as cur:
            yield cur

    return conn, connect


def _worker(
    mode: str,
    dsn: str,
    copy: list[tuple[dict[str, str], bytes]],
    barrier: Any,
    results: Any,
) -> None:
    """One sender: handle every delivery of its copy, report (statuses, start, end)."""
    import psycopg2

    effects = psycopg2.connect(dsn)
    effects.autocommit = True
    effect_cur = effects.cursor()

    def effect(delivery_id: str, body: bytes) -> None:
        effect_cur.execute(
            f"INSERT INTO {EFFECT_TABLE} (mode, delivery_id, fingerprint) VALUES (%s, %s, %s)",
            (mode, delivery_id, hashlib.sha256(body).hexdigest()),
        )

    statuses: dict[str, int] = {}
    conn, connect = _persistent_connect(dsn)
    if mode in STORE_TABLES:
        from plane_connector.dedupe import PostgresDeliveryStore
        from plane_connector.webhooks import WebhookReceiver

        table = STORE_TABLES[mode]
        if mode == "ours":
            store = PostgresDeliveryStore(connect, table=table)
        else:  # what `plane-connector webhook serve` with a DSN uses
            from plane_connector.cli.webhook import WEBHOOK_POOL_SIZE

            store = PostgresDeliveryStore.from_dsn(
                dsn, table=table, create=False, pool_size=WEBHOOK_POOL_SIZE
            )
        receiver = WebhookReceiver(
            store, SECRET, on_accepted=lambda d: effect(d.delivery_id, d.body)
        )

        def handle(headers: dict[str, str], body: bytes) -> str:
            status, answer = receiver.handle(headers, body)
            return f"{status} {answer.get('status')}"
    else:

        def handle(headers: dict[str, str], body: bytes) -> str:
            return _naive_handle(connect, effect, headers, body)

    barrier.wait()
    start = time.time()
    for headers, body in copy:
        key = handle(headers, body)
        statuses[key] = statuses.get(key, 0) + 1
    end = time.time()
    conn.close()
    effects.close()
    results.put((statuses, start, end))


def _naive_handle(connect: Any, effect: Any, headers: dict[str, str], body: bytes) -> str:
    """The common hand-written handler: verify, look the delivery id up, insert if absent."""
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("X-Plane-Signature", "")):
        return "401 rejected"
    payload = json.loads(body)
    delivery_id = headers["X-Plane-Delivery"]
    with connect() as cur:
        cur.execute(f"SELECT 1 FROM {NAIVE_TABLE} WHERE delivery_id = %s", (delivery_id,))
        if cur.fetchone() is not None:
            return "200 duplicate"
        cur.execute(
            f"INSERT INTO {NAIVE_TABLE} (delivery_id, event, action, payload, received_at) "
            "VALUES (%s, %s, %s, %s, now())",
            (delivery_id, payload["event"], payload["action"], body.decode()),
        )
    effect(delivery_id, body)
    return "200 accepted"


def _reset_tables(dsn: str) -> None:
    import psycopg2
    from plane_connector.dedupe import PostgresDeliveryStore

    drop_tables(dsn, *TABLES)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        # Deliberately no unique constraint: that is the naive handler's design.
        cur.execute(
            f"CREATE TABLE {NAIVE_TABLE} (id serial PRIMARY KEY, delivery_id varchar NOT NULL, "
            "event varchar NOT NULL, action varchar NOT NULL, payload text NOT NULL, "
            "received_at timestamp NOT NULL)"
        )
        cur.execute(f"CREATE INDEX ON {NAIVE_TABLE} (delivery_id)")
        cur.execute(
            f"CREATE TABLE {EFFECT_TABLE} (id serial PRIMARY KEY, mode varchar NOT NULL, "
            "delivery_id varchar NOT NULL, fingerprint varchar NOT NULL)"
        )
    conn.close()
    for table in STORE_TABLES.values():
        PostgresDeliveryStore.from_dsn(dsn, table=table, create=True)


def _effect_counts(dsn: str, mode: str) -> dict[str, int]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT count(*), count(DISTINCT delivery_id), count(DISTINCT fingerprint) "
            f"FROM {EFFECT_TABLE} WHERE mode = %s",
            (mode,),
        )
        total, ids, bodies = cur.fetchone()
        cur.execute(f"SELECT count(*) FROM {STORE_TABLES.get(mode, NAIVE_TABLE)}")
        (stored,) = cur.fetchone()
    conn.close()
    return {
        "effects": total,
        "distinct_delivery_ids": ids,
        "distinct_bodies": bodies,
        "delivery_rows_stored": stored,
    }


def _run_once(
    mode: str, dsn: str, copies: list[list[tuple[dict[str, str], bytes]]]
) -> tuple[dict[str, int], float]:
    """One round: COPIES sender processes, one per copy; (statuses, seconds from first start)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(COPIES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(mode, dsn, copy, barrier, results), daemon=True)
        for copy in copies
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        if p.exitcode != 0:
            raise RuntimeError(f"{mode} worker exited with {p.exitcode}")
    statuses: dict[str, int] = {}
    for st, _, _ in outcomes:
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
    return statuses, max(o[2] for o in outcomes) - min(o[1] for o in outcomes)


def _summary(
    dsn: str, mode: str, n: int, statuses: dict[str, int], elapsed: float
) -> dict[str, Any]:
    counts = _effect_counts(dsn, mode)
    return {
        "statuses": statuses,
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(n * COPIES / elapsed, 1),
        "deliveries_per_s": round(n / elapsed, 1),
        "duplicates": counts["effects"] - n,
        # Same X-Plane-Delivery handled twice (the race) vs a retry's new id let through.
        "duplicates_same_delivery_id": counts["effects"] - counts["distinct_delivery_ids"],
        "duplicates_retry_new_id": counts["distinct_delivery_ids"] - counts["distinct_bodies"],
        "missing": n - counts["distinct_bodies"],
        **counts,
    }


def run(cfg: RunConfig) -> BenchResult:
    """Throughput and duplicates, ours against the naive handler, same deliveries, same DB."""
    res = BenchResult("receiver", "5. receiver")
    require(cfg.pg_dsn, "plane_connector.dedupe", "plane_connector.webhooks")

    n = 300 if cfg.quick else 2000
    rounds = 2 if cfg.quick else 4
    copies = make_deliveries(n)
    # A connection per transaction is several times slower: a quarter of the deliveries.
    share = {"ours": 1.0, "ours_dsn": 0.25, "naive": 1.0}
    handled = dict.fromkeys(share, 0)
    elapsed = dict.fromkeys(share, 0.0)
    statuses: dict[str, dict[str, int]] = {mode: {} for mode in share}
    _reset_tables(cfg.pg_dsn)
    try:
        # Rounds of consecutive chunks, the modes taking turns within each round, so that load
        # from other processes on a shared machine falls on all of them alike.
        for r in range(rounds):
            lo, hi = r * n // rounds, (r + 1) * n // rounds
            for mode, part in share.items():
                top = lo + max(1, int((hi - lo) * part))
                st, secs = _run_once(mode, cfg.pg_dsn, [c[lo:top] for c in copies])
                handled[mode] += top - lo
                elapsed[mode] += secs
                for k, v in st.items():
                    statuses[mode][k] = statuses[mode].get(k, 0) + v
        summary = {
            mode: _summary(cfg.pg_dsn, mode, handled[mode], statuses[mode], elapsed[mode])
            for mode in share
        }
    finally:
        drop_tables(cfg.pg_dsn, *TABLES)
    ours, ours_dsn, naive = summary["ours"], summary["ours_dsn"], summary["naive"]
    n_dsn = handled["ours_dsn"]
    res.add(
        f"deliveries/s, {COPIES} concurrent senders (ours)",
        ours["requests_per_s"],
        "req/s",
        note="HTTP-level deliveries incl. duplicates; signature, claim, effect, mark done",
    )
    res.add("deliveries/s, naive select-then-insert (baseline)", naive["requests_per_s"], "req/s")
    res.add("throughput ours / naive", ratio(ours["requests_per_s"], naive["requests_per_s"]))
    res.add(
        "deliveries/s, ours with PostgresDeliveryStore.from_dsn",
        ours_dsn["requests_per_s"],
        "req/s",
        note="with its connection pool, as the webhook CLI server opens it",
    )
    for label, o, total in (("ours", ours, n), ("ours, from_dsn", ours_dsn, n_dsn)):
        res.add(f"duplicates let through of {total} ({label})", o["duplicates"], "count", "== 0")
        res.add(f"events lost of {total} ({label})", o["missing"], "count", "== 0")
    res.add(
        f"duplicates let through of {n} (naive baseline)",
        naive["duplicates"],
        "count",
        note=(
            f"{naive['duplicates_same_delivery_id']} same-id races, "
            f"{naive['duplicates_retry_new_id']} retries with a new id"
        ),
    )
    res.details = {
        "deliveries": n,
        "copies": COPIES,
        "rounds": rounds,
        "ours": ours,
        "ours_dsn": ours_dsn,
        "naive": naive,
    }
    return res
