"""Helpers shared by the Plane addons' tests (domain modules import them too)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

from odoo.tests import HttpCase
from plane_connector import sign_body

from ..caches import forget_clients
from ..settings import API_KEY_REF, BASE_URL, WEBHOOK_SECRET_REF, WORKSPACE_SLUG

API_KEY_ENV = "PLANE_TEST_API_KEY"
WEBHOOK_SECRET_ENV = "PLANE_TEST_WEBHOOK_SECRET"  # noqa: S105 - a variable name
TEST_WEBHOOK_SECRET = "plane_wh_" + "5e" * 16
# The browser tours' test tag: scripts/odoo-tests.sh leaves them out when it finds no Chromium.
TOUR_TAG = "plane_tour"


def issue_body(item_id: str | None = None, *, action: str = "created", name: str = "Item",
               state_group: str = "backlog", project: str | None = None) -> bytes:
    """A CE v1 ``issue`` webhook body, serialized the way Plane sends it (json.dumps)."""
    payload = {
        "event": "issue",
        "action": action,
        "webhook_id": str(uuid.uuid4()),
        "workspace_id": str(uuid.uuid4()),
        "data": {
            "id": item_id or str(uuid.uuid4()),
            "name": name,
            "project": project or str(uuid.uuid4()),
            "state": {"id": str(uuid.uuid4()), "name": state_group.title(),
                      "group": state_group, "color": "#000000"},
            "updated_at": "2026-11-26T08:00:00.000000Z",
        },
        "activity": {"field": None, "new_value": None, "old_value": None, "actor": None,
                     "old_identifier": None, "new_identifier": None},
    }
    return json.dumps(payload).encode()


def signed_headers(body: bytes, *, secret: str = TEST_WEBHOOK_SECRET,
                   delivery_id: str | None = None, event: str = "issue") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Plane-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Plane-Event": event,
        "X-Plane-Signature": sign_body(secret, body),
    }


class WebhookSink:
    """A loopback HTTP server that answers 200 and keeps what it received.

    The emulator's webhooks go here; a test then replays the captured (signed, byte-exact)
    requests into Odoo through ``url_open``, which carries the test-cursor cookie Odoo's test
    mode requires of every request.
    """

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - stdlib name
                length = int(self.headers.get("Content-Length") or 0)
                received.append((dict(self.headers.items()), self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class PlaneEmulatorCase(HttpCase):
    """An HttpCase with a Plane emulator on loopback and the connector pointed at it.

    The API key and webhook secret reach Odoo as ``env:`` references, as in production.
    """

    emulator_rate_limit = 600
    emulator_edition = "ce"
    #: The Plane release the emulator plays (None: the newest it knows).
    emulator_version = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from plane_connector.testing import PlaneEmulator

        cls.emulator = PlaneEmulator(
            cls.emulator_edition, rate_limit=cls.emulator_rate_limit, seed=7,
            **cls.emulator_versions(),
        ).start()
        cls.addClassCleanup(cls.emulator.stop)
        cls.addClassCleanup(cls._forget_server)
        cls._saved_env = {k: os.environ.get(k) for k in (API_KEY_ENV, WEBHOOK_SECRET_ENV)}
        cls.addClassCleanup(cls._restore_env)
        os.environ[API_KEY_ENV] = cls.emulator.api_key
        os.environ[WEBHOOK_SECRET_ENV] = TEST_WEBHOOK_SECRET
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param(BASE_URL.param, cls.emulator.base_url)
        params.set_param(WORKSPACE_SLUG.param, cls.emulator.workspace_slug)
        params.set_param(API_KEY_REF.param, f"env:{API_KEY_ENV}")
        params.set_param(WEBHOOK_SECRET_REF.param, f"env:{WEBHOOK_SECRET_ENV}")
        cls.connector = cls.env["plane.connector"]

    @classmethod
    def _restart_emulator(cls, **options):
        """Swap the emulator for one started with ``options`` (e.g. ``time_scale``), so that a
        domain module's tests need nothing from the wheel."""
        from plane_connector.testing import PlaneEmulator

        cls.emulator.stop()
        cls.emulator = PlaneEmulator(cls.emulator_edition, rate_limit=cls.emulator_rate_limit,
                                     seed=11, **cls.emulator_versions(), **options).start()
        cls.addClassCleanup(cls.emulator.stop)
        os.environ[API_KEY_ENV] = cls.emulator.api_key
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param(BASE_URL.param, cls.emulator.base_url)
        params.set_param(WORKSPACE_SLUG.param, cls.emulator.workspace_slug)

    @classmethod
    def emulator_versions(cls) -> dict:
        return {"version": cls.emulator_version} if cls.emulator_version else {}

    @classmethod
    def _forget_server(cls):
        # A later class's emulator may get the same port: its server profile is its own.
        from plane_connector import server

        server.forget()

    @property
    def work_items_route(self) -> str:
        """``/work-items/`` or ``/issues/``: the route family the emulator's version serves."""
        return "/work-items/" if self.emulator.serves_work_items else "/issues/"

    @classmethod
    def _restore_env(cls):
        for key, value in cls._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        forget_clients()

    def start_plane_tour(self, url: str, tour: str, **values):
        """Run a browser tour of static/tests/tours as admin, handing it ``values``.

        The values travel in a cookie (see plane_tour.js): they outlive the reloads a tour
        causes. The time limit covers the first load, which builds the asset bundles.
        """
        cookie = quote(json.dumps(values), safe="")
        self.start_tour(url, tour, login="admin", cookies={"plane_tour": cookie}, timeout=180)

    def post_webhook(self, body: bytes, headers: dict[str, str], *, query: str = ""):
        return self.url_open("/plane/webhook" + query, data=body, headers=headers, timeout=30)

    def deliveries(self):
        return self.env["plane.webhook.delivery"].sudo().search([])

    @contextlib.contextmanager
    def capture_refusals(self):
        """The webhook route's refusal log lines, kept out of the test log (they are ERRORs
        an operator must act on, expected here)."""
        from ..controllers import main

        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record)

        logger = logging.getLogger(f"plane.test.refusals.{uuid.uuid4().hex}")
        logger.propagate = False
        logger.addHandler(Keep())
        saved = main._refusals.logger
        main._refusals.logger = logger
        try:
            yield records
        finally:
            main._refusals.logger = saved
