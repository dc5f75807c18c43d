"""End to end: the emulator's webhooks into the wheel's own receiver and SQLite delivery store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from plane_connector import dedupe, webhooks
from plane_connector.testing import PlaneEmulator

SECRET = "plane_wh_" + "5e" * 16


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[str, Any, list[tuple[int, dict]]]]:
    store = dedupe.SQLiteDeliveryStore(str(tmp_path / "deliveries.sqlite3"))
    receiver = webhooks.WebhookReceiver(store, SECRET)
    answers: list[tuple[int, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = receiver.handle(dict(self.headers.items()), body)
            answers.append((status, answer))
            out = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/plane/webhook", store, answers
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("edition", ["ce", "cloud"])
def test_duplicates_are_stored_once(edition: str, endpoint: Any) -> None:
    url, _store, answers = endpoint
    with PlaneEmulator(edition) as emu:
        emu.register_webhook(url, SECRET)
        emu.faults.add(kind="webhook_duplicate", count=1)
        item = emu.create_work_item("Invoice 42")
        emu.update_work_item(item["id"], priority="high")
        emu.wait_for_deliveries(3)
        assert emu.wait_webhooks_idle(5)
    statuses = [a.get("status") for _, a in answers]
    assert [s for s, _ in answers] == [200, 200, 200]
    # The created event twice (new delivery id, same bytes / same event_id), then the update.
    assert statuses == ["accepted", "duplicate", "accepted"]
