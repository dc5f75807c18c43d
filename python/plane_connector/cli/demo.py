"""``plane-connector demo``: the whole connector end to end, on the embedded default.

With no Plane at hand it starts the emulator, seeds a workspace with a few thousand work items,
runs the health check, exports everything through the throttled cursor pager, receives signed
webhook deliveries (Plane-style re-sends, an exact replay and a forged one included) into the
embedded SQLite delivery store, and prints a report. Given ``--base-url`` and an API key
reference it runs the health check and the export against that Plane instead (webhooks need
Plane to reach this machine, so they are left out there).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from plane_connector import PlaneClient, PlaneError
from plane_connector import server as plane_server
from plane_connector.cli._connection import add_ca_bundle_arg
from plane_connector.health import check
from plane_connector.secrets import resolve


@dataclass
class Report:
    """What the demo measured; printed as a table and, with --json, as one JSON object."""

    target: str
    health: str = ""
    healthy: bool = False
    items_exported: int = 0
    items_expected: int | None = None
    unique_ids: int = 0
    pages: int = 0
    export_seconds: float = 0.0
    client: dict[str, Any] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)
    store_rows: dict[str, int] = field(default_factory=dict)

    def ok(self) -> bool:
        exported_all = self.items_expected is None or self.unique_ids == self.items_expected
        return self.healthy and exported_all


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the connector end to end (emulator by default, or a real Plane)",
        description="Start the Plane emulator (unless --base-url is given), check health, export "
        "every work item through the throttled cursor pager, receive signed webhooks into the "
        "SQLite delivery store, and print a report.",
    )
    p.add_argument("--work-items", type=int, default=3000, help="items to seed (default 3000)")
    p.add_argument("--per-page", type=int, default=25, help="page size of the export (default 25)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.05,
        help="emulator only: real seconds per Plane second, so the 60/minute budget runs a "
        "'minute' in 3 s by default (1.0 = real time)",
    )
    p.add_argument(
        "--base-url",
        default=os.environ.get("PLANE_BASE_URL"),
        help="a real Plane (env PLANE_BASE_URL); without it the emulator is used",
    )
    p.add_argument(
        "--api-key-ref",
        default=os.environ.get("PLANE_API_KEY_REF", "env:PLANE_API_KEY"),
        help="secret reference of the API key (env PLANE_API_KEY_REF, default env:PLANE_API_KEY)",
    )
    add_ca_bundle_arg(p)
    p.add_argument("--workspace", default=os.environ.get("PLANE_WORKSPACE_SLUG"))
    p.add_argument("--project", default=os.environ.get("PLANE_PROJECT_ID"))
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.per_page < 1 or args.per_page > 1000:
        print("--per-page must be between 1 and 1000 (Plane's maximum)", file=sys.stderr)
        return 2
    try:
        report = _run_real(args) if args.base_url else _run_emulated(args)
    except PlaneError as exc:  # messages are secret-free by construction
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    _print_report(report, as_json=args.json, out=sys.stdout)
    return 0 if report.ok() else 1


def _run_real(args: argparse.Namespace) -> Report:
    if not args.workspace or not args.project:
        raise SystemExit("a real Plane needs --workspace and --project (or PLANE_WORKSPACE_SLUG "
                         "and PLANE_PROJECT_ID)")  # fmt: skip
    client = PlaneClient(
        args.base_url, api_key=resolve(args.api_key_ref), ca_bundle=args.ca_bundle
    )
    report = Report(target=args.base_url)
    _health_and_export(client, args.workspace, args.project, args.per_page, report)
    return report


def _run_emulated(args: argparse.Namespace) -> Report:
    from plane_connector.cli.webhook import make_server  # noqa: PLC0415 - emulator path only
    from plane_connector.dedupe import SQLiteDeliveryStore  # noqa: PLC0415
    from plane_connector.testing import PlaneEmulator  # noqa: PLC0415
    from plane_connector.webhooks import WebhookReceiver  # noqa: PLC0415

    window = 60.0 * args.time_scale
    with (
        tempfile.TemporaryDirectory(prefix="plane-demo-") as tmp,
        PlaneEmulator(
            rate_limit=60, time_scale=args.time_scale, webhook_backoff=5.0, webhook_backoff_max=5.0
        ) as emu,
    ):
        _step(f"Plane emulator (CE) on {emu.base_url}; seeding {args.work_items} work items")
        emu.seed_work_items(args.work_items)

        store = SQLiteDeliveryStore(os.path.join(tmp, "deliveries.sqlite3"))
        # Plane mints webhook secrets as plane_wh_ + 32 hex; the demo mints its own the same way.
        secret = "plane_wh_" + secrets.token_hex(16)
        outcomes: Counter[str] = Counter()
        receiver = _CountingReceiver(WebhookReceiver(store, secret), outcomes)
        server = make_server(receiver, port=0)  # type: ignore[arg-type]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        hook_url = f"http://127.0.0.1:{server.server_address[1]}/plane/webhook"
        emu.register_webhook(hook_url, secret)
        _step(f"webhook receiver on {hook_url} (SQLite store, signature required)")

        client = PlaneClient(
            emu.base_url, api_key=emu.api_key, requests_per_minute=60, rate_window=window
        )
        report = Report(target=f"emulator {emu.base_url}", items_expected=args.work_items)
        _health_and_export(client, emu.workspace_slug, emu.project_id, args.per_page, report)

        _step("changing work items through the client (webhooks follow, Plane re-sends included)")
        emu.faults.add(kind="webhook_duplicate", count=2)  # Plane's retry: new id, same bytes
        routes = plane_server.detect(client).routes
        base = routes.work_items(emu.workspace_slug, emu.project_id)
        created = client.create_idempotent(
            base, {"name": "Invoice INV/2026/0042", "external_source": "odoo",
                   "external_id": "account.move,42", "priority": "high"},
        )  # fmt: skip
        again = client.create_idempotent(
            base, {"name": "Invoice INV/2026/0042", "external_source": "odoo",
                   "external_id": "account.move,42", "priority": "high"},
        )  # fmt: skip
        assert again["id"] == created["id"], "idempotent create returned a second work item"
        item = routes.work_item(emu.workspace_slug, emu.project_id, created["id"])
        client.patch(item, json={"name": "INV/2026/0042 (paid)", "priority": "urgent"})
        # A comment, not a delete: Plane CE sends no webhook for a deleted work item.
        comments = routes.comments(emu.workspace_slug, emu.project_id, created["id"])
        client.post(comments, json={"comment_html": "<p>Paid.</p>"})
        emu.wait_webhooks_idle(timeout=30)

        _replay_and_forge(emu, hook_url)
        # The worker side: what Odoo's cron does with the rows the receiver committed.
        events: Counter[str] = Counter()
        done = store.process_pending(None, lambda d: events.update([f"{d.event}.{d.action}"]))
        _step(f"processed {done.processed} stored deliveries: {dict(sorted(events.items()))}")
        report.client = dict(client.stats)
        report.deliveries = dict(outcomes)
        report.store_rows = store.counts()
        server.shutdown()
        server.server_close()
    return report


def _health_and_export(
    client: PlaneClient, workspace: str, project: str, per_page: int, report: Report
) -> None:
    result = check(client)
    report.health, report.healthy = result.summary(), result.ok
    _step(f"health check: {result.summary()}")
    if not result.ok:
        return
    path = plane_server.detect(client).routes.work_items(workspace, project)
    pager = client.paginate(path, per_page=per_page, params={"fields": "id,name,updated_at"})
    seen: set[str] = set()
    bar = _Progress(report.items_expected, sys.stderr)
    started = time.monotonic()
    for item in pager:
        seen.add(item["id"])
        report.items_exported += 1
        bar.update(report.items_exported)
    bar.done()
    report.export_seconds = time.monotonic() - started
    report.unique_ids = len(seen)
    report.pages = pager.pages
    report.client = dict(client.stats)


def _replay_and_forge(emu: Any, hook_url: str) -> None:
    """Replay one delivery byte for byte (same id), and forge one (bad signature)."""
    first = next((a for a in emu.deliveries if a.status == 200), None)
    if first is None:
        return
    _post(hook_url, dict(first.headers), first.body)
    forged = dict(first.headers)
    forged["X-Plane-Delivery"] = "00000000-0000-4000-8000-000000000000"
    _post(hook_url, forged, first.body.replace(b'"created"', b'"deleted"', 1))


def _post(url: str, headers: dict[str, str], body: bytes) -> int:
    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class _CountingReceiver:
    """Counts the receiver's answers by outcome (accepted, duplicate, rejected)."""

    def __init__(self, inner: Any, outcomes: Counter[str]) -> None:
        self._inner = inner
        self._outcomes = outcomes
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def handle(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        status, answer = self._inner.handle(headers, body)
        with self._lock:
            self._outcomes[str(answer.get("status", status))] += 1
        return status, answer


class _Progress:
    def __init__(self, total: int | None, out: TextIO) -> None:
        self.total, self.out = total, out
        self.tty = out.isatty()
        self._last_pct = -1

    def update(self, n: int) -> None:
        if not self.total:
            if n % 1000 == 0:
                print(f"  exported {n}", file=self.out)
            return
        pct = n * 100 // self.total
        if pct == self._last_pct:
            return
        self._last_pct = pct
        if self.tty:
            filled = pct // 4
            self.out.write(f"\r  export [{'#' * filled}{'.' * (25 - filled)}] {n}/{self.total}")
            self.out.flush()
        elif pct % 10 == 0:
            print(f"  export {pct:3d}% ({n}/{self.total})", file=self.out)

    def done(self) -> None:
        if self.tty and self.total:
            self.out.write("\n")


def _step(text: str) -> None:
    print(f"- {text}", file=sys.stderr, flush=True)


def _print_report(report: Report, *, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(json.dumps(report.__dict__, sort_keys=True), file=out)
        return
    c = report.client
    lines = [
        f"plane-connector demo against {report.target}",
        f"  health check          {report.health}",
        f"  items exported        {report.items_exported} ({report.unique_ids} unique ids"
        + (f", expected {report.items_expected})" if report.items_expected is not None else ")"),
        f"  export time           {report.export_seconds:.1f} s over {report.pages} pages",
        f"  requests sent         {c.get('requests', 0)}",
        f"  throttle waits        {c.get('throttle_waits', 0)} "
        f"({c.get('throttle_wait_seconds', 0.0):.1f} s waited before sending)",
        f"  429s received         {c.get('rate_limited', 0)}",
        f"  retries               {c.get('retries', 0)}",
    ]
    if report.deliveries:
        d = report.deliveries
        lines += [
            f"  deliveries accepted   {d.get('accepted', 0)}",
            f"  deliveries deduped    {d.get('duplicate', 0)}",
            f"  deliveries rejected   {d.get('rejected', 0)}",
            f"  delivery rows         {json.dumps(report.store_rows, sort_keys=True)}",
        ]
    lines.append("  result                " + ("OK" if report.ok() else "FAILED"))
    print("\n".join(lines), file=out)
