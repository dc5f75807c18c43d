"""``plane.webhook.delivery``: the dedupe rows the wheel's PostgresDeliveryStore writes.

The table layout is shared with ``plane_connector.dedupe`` (exact column names and constraint
names); the receiver inserts rows with plain SQL, so Odoo sets no database defaults and every
column the store relies on is declared here with the same type.
"""

import contextlib

from odoo import api, fields, models

from .. import plane_runtime as rt

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
        rt.wake_cron(self.env, "ipai_plane_connector.ir_cron_plane_process_deliveries")

    @api.model
    def _plane_purge_done(self, batch: int = 10000) -> int:
        """Delete done rows older than ``plane.webhook_retention_days`` (default 30).

        Plane's retries of one event span about an hour, so a month of fingerprints is far
        more than dedupe needs; failed and dead rows are kept until someone looks at them.
        """
        days = int(self.env["ir.config_parameter"].sudo().get_param(
            "plane.webhook_retention_days", 30))
        if days <= 0:
            return 0
        self.env.cr.execute(
            "DELETE FROM plane_webhook_delivery WHERE id IN (SELECT id FROM plane_webhook_delivery "
            "WHERE state = 'done' AND received_at < (now() AT TIME ZONE 'UTC') - %s * interval "
            "'1 day' ORDER BY id LIMIT %s)",
            (days, batch),
        )
        self.invalidate_model()
        return self.env.cr.rowcount

    @api.model
    def _plane_last_received_at(self):
        self.env.cr.execute("SELECT max(received_at) FROM plane_webhook_delivery")
        return self.env.cr.fetchone()[0]
