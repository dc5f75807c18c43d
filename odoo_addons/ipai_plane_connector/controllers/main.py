"""``POST /plane/webhook``: a thin adapter over the wheel's WebhookReceiver.

The route is ``auth="none"`` so that it also answers on a multi-database server where no
database is bound to the request: the database then comes from ``?db=<name>`` (which must pass
``--db-filter``). The receiver verifies the HMAC over the raw bytes before anything parses them,
and commits the delivery row in its own transaction before answering; processing happens in
the cron, so Plane's 30-second timeout is never at risk.
"""

import logging

from odoo import SUPERUSER_ID, api, http
from odoo.http import request
from werkzeug.exceptions import RequestEntityTooLarge

from .. import plane_runtime as rt

_log = logging.getLogger(__name__)

try:
    from plane_connector import secrets as plane_secrets
    from plane_connector.dedupe import PostgresDeliveryStore
    from plane_connector.webhooks import DEFAULT_MAX_BODY, WebhookReceiver
except ImportError:  # pragma: no cover - external_dependencies stops the install first
    WebhookReceiver = None

try:
    from odoo.modules.registry import Registry
except ImportError:  # pragma: no cover - Odoo 19 moved it
    from odoo.orm.registry import Registry


def _answer(status: int, body: dict):
    return request.make_json_response(body, status=status)


class PlaneWebhookController(http.Controller):
    @http.route(
        "/plane/webhook", type="http", auth="none", methods=["POST"], csrf=False,
        save_session=False, readonly=False,
    )
    def plane_webhook(self, **_kwargs):
        if WebhookReceiver is None:
            return _answer(503, {"status": "error", "reason": "plane_connector not installed"})
        dbname = _database()
        if not dbname:
            return _answer(404, {
                "status": "rejected",
                "reason": "no database for this request: set --db-filter or pass ?db=<name>",
            })
        registry = Registry(dbname)
        if "plane.webhook.delivery" not in registry:
            return _answer(404, {"status": "rejected", "reason": "Plane connector not installed"})
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            params = env["ir.config_parameter"]
            ref = (params.get_param(rt.PARAM_WEBHOOK_SECRET_REF) or "").strip()
            max_body = int(params.get_param("plane.webhook_max_body") or DEFAULT_MAX_BODY)
        if not ref:
            _log.error("Plane webhook refused: plane.webhook_secret_ref is not set")
            return _answer(503, {"status": "error", "reason": "webhook secret not configured"})
        try:
            # Several references (comma-separated) while a regenerated secret rolls out.
            secrets = [plane_secrets.resolve(r) for r in ref.replace(",", " ").split()]
        except plane_secrets.SecretError as exc:
            _log.error("Plane webhook refused: %s", exc)
            return _answer(503, {"status": "error", "reason": "webhook secret unavailable"})
        receiver = WebhookReceiver(
            PostgresDeliveryStore(rt.store_connect(registry)), secrets, max_body=max_body
        )
        headers = request.httprequest.headers
        early = receiver.precheck(headers)
        if early is not None:
            return _answer(*early)
        # Werkzeug enforces this while reading, so a body without Content-Length (chunked)
        # cannot make the worker buffer more than the limit either.
        request.httprequest.max_content_length = max_body
        try:
            body = request.httprequest.get_data(cache=False)
        except RequestEntityTooLarge:
            return _answer(413, {"status": "rejected",
                                 "reason": f"body larger than {max_body} bytes"})
        status, answer = receiver.handle(headers, body)
        if answer.get("status") == "accepted":
            try:
                with registry.cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    env["plane.webhook.delivery"]._plane_trigger_processing()
                    # Test cursors do not flush the ORM on exit the way a real commit does.
                    env.flush_all()
            except Exception as exc:  # noqa: BLE001 - stored already; the cron's timer runs it
                _log.warning("Plane delivery stored, but the cron could not be woken: %s", exc)
        return _answer(status, answer)


def _database():
    """The request's database, or ``?db=`` when it is one this server may serve."""
    wanted = request.httprequest.args.get("db")
    if wanted:
        host = request.httprequest.environ.get("HTTP_HOST", "")
        # db_list applies --db-filter: a name it does not list is not ours to serve.
        if wanted in http.db_list(force=True, host=host):
            return wanted
        return None
    return request.db
