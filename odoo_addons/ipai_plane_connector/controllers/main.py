"""``POST /plane/webhook``: a thin adapter over the wheel's WebhookReceiver.

The route is ``auth="none"`` so that it also answers on a multi-database server where no
database is bound to the request: the database then comes from ``?db=<name>`` (which must pass
``--db-filter``). The receiver verifies the HMAC over the raw bytes before anything parses them,
and commits the delivery row in its own transaction before answering; processing happens in
the cron, so Plane's 30-second timeout is never at risk.

Three rules for an endpoint anyone can reach:

* a request whose headers frame it badly (several or bad ``Content-Length``, one above
  ``max_body``, one next to ``Transfer-Encoding``) is refused before its body is read, by the
  wheel's own check (``WebhookReceiver.precheck``, here ``precheck_headers``);
* it never holds more than ``max_body`` bytes of a request: the body is read from the input
  stream in slices, at most ``max_body + 1`` bytes, whether it came with a Content-Length or
  chunked (Odoo's own request limit is 128 MiB, and Werkzeug 2.x does not apply it to a
  chunked body);
* before the signature is verified, every refusal looks the same (401 ``rejected``): an
  unknown database, the addon not installed there, no or an unusable webhook secret and a bad
  signature cannot be told apart from outside. The real reason is logged, at most once a
  minute per database and reason.
"""

import io
import logging

from odoo import SUPERUSER_ID, api, http
from odoo.http import request
from werkzeug.exceptions import HTTPException

from ..connections import store_connect
from ..settings import ConfigRefused

_log = logging.getLogger(__name__)

try:
    from plane_connector.dedupe import PostgresDeliveryStore
    from plane_connector.webhooks import DEFAULT_MAX_BODY, WebhookReceiver, precheck_headers
except ImportError:  # pragma: no cover - external_dependencies stops the install first
    WebhookReceiver = None
    DEFAULT_MAX_BODY = 1_048_576

    def precheck_headers(headers, max_body):
        return None

try:
    from odoo.modules.registry import Registry
except ImportError:  # pragma: no cover - Odoo 19 moved it
    from odoo.orm.registry import Registry

#: The one answer for every refusal made before (or by) the signature check.
REJECTED = (401, {"status": "rejected"})
#: Slice read from the input stream at a time.
READ_SLICE = 65536

try:
    from plane_connector.secrets import RateLimitedLog

    _refusals = RateLimitedLog(_log, 60.0)
except ImportError:  # pragma: no cover - external_dependencies stops the install first
    _refusals = None


def _answer(status: int, body: dict):
    return request.make_json_response(body, status=status)


class _Refused(Exception):
    """Why this request cannot be verified (logged, never sent to the client)."""

    def __init__(self, dbname, reason: str, level: int = logging.ERROR) -> None:
        super().__init__(reason)
        self.dbname, self.reason, self.level = dbname, reason, level


class PlaneWebhookController(http.Controller):
    @http.route(
        "/plane/webhook", type="http", auth="none", methods=["POST"], csrf=False,
        save_session=False, readonly=False,
    )
    def plane_webhook(self, **_kwargs):
        headers = request.httprequest.headers
        try:
            registry, secrets, max_body = _receiver_config()
        except _Refused as refused:
            registry, secrets, max_body, failure = None, None, DEFAULT_MAX_BODY, refused
        else:
            failure = None
        # The receiver's own framing check (repeated or bad Content-Length, one above the
        # limit), before a byte is read: also for a request this server will refuse.
        early = precheck_headers(headers, max_body)
        if early is not None:
            return _answer(*early)
        try:
            body = _read_body(max_body)
        except HTTPException:  # the client went away mid-body, or sent a broken chunk
            return _answer(400, {"status": "rejected", "reason": "incomplete request body"})
        if body is None:
            return _answer(413, {"status": "rejected",
                                 "reason": f"body larger than {max_body} bytes"})
        if failure is not None:
            if _refusals is not None:
                _refusals.log(failure.level, f"{failure.dbname}:{failure.reason}",
                              "Plane webhook refused (database %s): %s", failure.dbname or "-",
                              failure.reason)
            return _answer(*REJECTED)
        receiver = WebhookReceiver(
            PostgresDeliveryStore(store_connect(registry)), secrets, max_body=max_body
        )
        status, answer = receiver.handle(headers, body)
        if status == REJECTED[0]:
            return _answer(*REJECTED)  # the receiver logged the reason
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


def _receiver_config():
    """(registry, webhook secrets, max_body) of this request's database, or ``_Refused``."""
    if WebhookReceiver is None:
        raise _Refused(None, "the plane_connector Python package is not installed")
    dbname = _database()
    if not dbname:
        raise _Refused(None, "no database for this request: set --db-filter or pass ?db=<name>",
                       logging.WARNING)
    try:
        registry = Registry(dbname)
    except Exception as exc:  # noqa: BLE001 - an unusable database is one more refusal
        raise _Refused(dbname, f"database cannot be opened ({type(exc).__name__})",
                       logging.WARNING) from None
    if "plane.webhook.delivery" not in registry:
        raise _Refused(dbname, "the Plane connector is not installed in this database",
                       logging.WARNING)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        try:
            secrets = env["plane.connector"]._plane_webhook_secrets()
        except ConfigRefused as exc:
            raise _Refused(dbname, str(exc)) from None
        raw_max = env["ir.config_parameter"].get_param("plane.webhook_max_body")
    try:
        max_body = int(raw_max or DEFAULT_MAX_BODY)
    except ValueError:
        max_body = 0
    if max_body < 1:
        raise _Refused(dbname, "plane.webhook_max_body is not a positive number of bytes")
    return registry, secrets, max_body


def _read_body(max_body: int):
    """The request body, or None when it is longer than ``max_body``; never reads further.

    Werkzeug's input stream ends at the Content-Length, or at the last chunk of a chunked
    body, and is empty when there is neither.
    """
    wrapped = getattr(request.httprequest, "_HTTPRequest__wrapped", request.httprequest)
    stream = wrapped.stream
    # BytesIO, not a list joined at the end: getvalue() hands over its buffer without a copy,
    # so the body costs max_body once, not twice.
    buffer, total = io.BytesIO(), 0
    while total <= max_body:
        data = stream.read(min(READ_SLICE, max_body + 1 - total))
        if not data:
            break
        buffer.write(data)
        total += len(data)
    if total > max_body:
        return None
    return buffer.getvalue()


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
