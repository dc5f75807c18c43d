"""``plane.webhook.delivery``: the dedupe rows the wheel's PostgresDeliveryStore writes.

The table layout is shared with ``plane_connector.dedupe`` (exact column names and constraint
names); the receiver inserts rows with plain SQL, so Odoo sets no database defaults and every
column the store relies on is declared here with the same type.

``plane.webhook.delivery.fingerprint`` is the wheel's ``<table>_fingerprint``: when done rows
are purged, their body fingerprint and event id move there and keep refusing a replay for much
longer (``X-Plane-Delivery`` is not signed: a captured delivery sent again under a fresh id
after the purge must still be a duplicate).
"""

import contextlib
import logging

from odoo import api, fields, models

from ..crons import wake_cron

_log = logging.getLogger(__name__)

PARAM_RETENTION = "plane.webhook_retention_days"
PARAM_FINGERPRINT_RETENTION = "plane.webhook_fingerprint_retention_days"
DEFAULT_RETENTION = 30
DEFAULT_FINGERPRINT_RETENTION = 365

STATES = [
    ("received", "Received"),
    ("done", "Done"),
    ("failed", "Failed (will retry)"),
    ("dead", "Dead (gave up)"),
]


class PlaneWebhookDelivery(models.Model):
    _name = "plane.webhook.delivery"
    _description = "Plane webhook delivery"
    _order = "id desc"
    _rec_name = "delivery_id"

    delivery_id = fields.Char(
        string="Delivery ID", required=True, readonly=True, help="X-Plane-Delivery header"
    )
    fingerprint = fields.Char(required=True, readonly=True, help="SHA-256 of the raw body")
    event_id = fields.Char(
        string="Event ID", readonly=True, help="Plane Cloud v2 event id (stable across retries)"
    )
    event = fields.Char(required=True, readonly=True)
    action = fields.Char(required=True, readonly=True)
    webhook_id = fields.Char(string="Webhook ID", readonly=True)
    payload = fields.Text(required=True, readonly=True, help="Raw body as received")
    state = fields.Selection(STATES, required=True, default="received", readonly=True)
    attempts = fields.Integer(required=True, default=0, readonly=True)
    last_error = fields.Text(readonly=True)
    received_at = fields.Datetime(required=True, default=fields.Datetime.now, readonly=True)
    processed_at = fields.Datetime(readonly=True)
    next_attempt_at = fields.Datetime(readonly=True)

    # Odoo 19 ignores _sql_constraints (one warning, nothing created) and 18 has no
    # models.Constraint: declare whichever this Odoo understands. The names come out the same
    # (<table>_<name>) and match the wheel's own schema.
    if hasattr(models, "Constraint"):
        _delivery_id_uniq = models.Constraint(
            "UNIQUE (delivery_id)", "This Plane delivery was already received."
        )
        _fingerprint_uniq = models.Constraint(
            "UNIQUE (fingerprint)", "A delivery with the same body was already received."
        )
        _event_id_uniq = models.Constraint(
            "UNIQUE (event_id)", "This Plane event was already received."
        )
    else:
        _sql_constraints = [
            ("delivery_id_uniq", "UNIQUE (delivery_id)",
             "This Plane delivery was already received."),
            ("fingerprint_uniq", "UNIQUE (fingerprint)",
             "A delivery with the same body was already received."),
            ("event_id_uniq", "UNIQUE (event_id)", "This Plane event was already received."),
        ]

    def init(self):
        # The processing cron scans pending rows only; keep that scan off the done history.
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS plane_webhook_delivery_pending_idx "
            "ON plane_webhook_delivery (id) WHERE state IN ('received', 'failed')"
        )
        try:
            from plane_connector.dedupe import ensure_fingerprint_schema
        except ImportError:  # pragma: no cover - external_dependencies stops the install first
            pass
        else:
            # The ORM made the fingerprint table (its model below); this adds the wheel's index.
            ensure_fingerprint_schema(self.env.cr)
        # The shared rate budget's slot table, made at install rather than by the first
        # request (which may run under a read-only or short-lived cursor).
        try:
            from plane_connector.ratebudget import PostgresRateBudget
        except ImportError:  # pragma: no cover - older wheel: the client limits per process
            return
        cr = self.env.cr
        PostgresRateBudget(lambda: contextlib.nullcontext(cr)).ensure_schema()

    def action_retry(self):
        """Put dead or failed deliveries back in the queue (attempts reset) and wake the cron."""
        rows = self.filtered(lambda r: r.state in ("dead", "failed"))
        rows.write({"state": "received", "attempts": 0, "next_attempt_at": False})
        if rows:
            self._plane_trigger_processing()
        return True

    @api.model
    def _plane_trigger_processing(self):
        """Wake the processing cron (called by the webhook route on every accepted delivery)."""
        wake_cron(self.env, "ipai_plane_connector.ir_cron_plane_process_deliveries")

    @api.model
    def _plane_purge_done(self, batch: int = 10000) -> int:
        """Delete done rows older than ``plane.webhook_retention_days`` (default 30, 0 = never),
        keeping their fingerprints ``plane.webhook_fingerprint_retention_days`` (default 365,
        0 = forever; never less than the rows' retention). Failed and dead rows are kept until
        someone looks at them."""
        params = self.env["ir.config_parameter"].sudo()
        days = _days(params, PARAM_RETENTION, DEFAULT_RETENTION)
        if days <= 0:
            return 0
        days = max(days, 1)  # the wheel's floor: Plane's retries of one event span an hour
        keep = _days(params, PARAM_FINGERPRINT_RETENTION, DEFAULT_FINGERPRINT_RETENTION)
        keep = None if keep <= 0 else max(keep, days)
        store = self.env["plane.connector"]._plane_delivery_store()
        self.flush_model()
        purged = store.purge(self.env.cr, older_than_days=days, fingerprint_days=keep,
                             batch=batch)
        self.invalidate_model()
        self.env["plane.webhook.delivery.fingerprint"].invalidate_model()
        return purged

    @api.model
    def _plane_last_received_at(self):
        self.env.cr.execute("SELECT max(received_at) FROM plane_webhook_delivery")
        return self.env.cr.fetchone()[0]


def _days(params, key: str, default: int) -> float:
    raw = params.get_param(key)
    try:
        return float(raw) if raw not in (None, False, "") else float(default)
    except ValueError:
        _log.warning("%s is not a number of days (%r): using %s", key, raw, default)
        return float(default)


class PlaneWebhookDeliveryFingerprint(models.Model):
    """What is left of a purged delivery: enough to refuse a replay of its body or event."""

    _name = "plane.webhook.delivery.fingerprint"
    _description = "Plane webhook fingerprint (purged delivery)"
    _order = "id desc"
    _rec_name = "delivery_id"
    # The wheel inserts with plain SQL: no Odoo bookkeeping columns, no database defaults.
    _log_access = False

    fingerprint = fields.Char(required=True, readonly=True, help="SHA-256 of the raw body")
    event_id = fields.Char(string="Event ID", readonly=True)
    delivery_id = fields.Char(string="Delivery ID", required=True, readonly=True,
                              help="X-Plane-Delivery of the purged original")
    received_at = fields.Datetime(required=True, readonly=True)

    if hasattr(models, "Constraint"):
        _fingerprint_uniq = models.Constraint(
            "UNIQUE (fingerprint)", "A delivery with the same body was already received."
        )
        _event_id_uniq = models.Constraint(
            "UNIQUE (event_id)", "This Plane event was already received."
        )
    else:
        _sql_constraints = [
            ("fingerprint_uniq", "UNIQUE (fingerprint)",
             "A delivery with the same body was already received."),
            ("event_id_uniq", "UNIQUE (event_id)", "This Plane event was already received."),
        ]
