"""Plane outages: when Plane is down, every background loop pauses together.

While Plane answers 502/503/504 or refuses connections, a job that fails on it says nothing
about the job: counting it as a failed attempt would kill healthy jobs after a long outage,
and letting every job try in turn would burn a request (and client retries) per job. So the
first such failure records an outage for the base URL (one row in ``plane_outage``), the job
goes back to the queue without using an attempt, and every loop (sync jobs, deliveries, BIR
pushes, sweeps) waits for the next probe time instead of calling Plane. At that time one job
is the probe: if it reaches Plane the outage is over and the queues drain at the full budget;
if not, the next probe is further off (5 s doubling to 30 s).

The row is written on a connection of its own, committed at once, in READ COMMITTED: the
job's own transaction may roll back, and two workers noting the same outage must not raise
serialization errors at each other.
"""

from __future__ import annotations

import logging
import math

from odoo import api, models

from ..crons import wake_cron
from ..redaction import redact

_log = logging.getLogger(__name__)

PROBE_FIRST = 5.0
PROBE_MAX = 30.0
#: Statuses a reverse proxy or a starting Plane answers with: Plane itself is not there.
OUTAGE_STATUSES = frozenset({502, 503, 504})

_TABLE_SQL = """
    CREATE TABLE IF NOT EXISTS plane_outage (
        base_url varchar PRIMARY KEY,
        down_since timestamp without time zone NOT NULL,
        next_probe_at timestamp without time zone NOT NULL,
        failures integer NOT NULL DEFAULT 1,
        last_error varchar
    )
"""


def ensure_outage_table(cr) -> None:
    cr.execute(_TABLE_SQL)


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says Plane is unreachable, not that this request was wrong."""
    try:
        from plane_connector import HTTPError, TransportError
    except ImportError:  # pragma: no cover - external_dependencies stops the install first
        return False
    if isinstance(exc, HTTPError):
        return getattr(exc, "status", 0) in OUTAGE_STATUSES
    if isinstance(exc, TransportError):
        # A refused certificate is a configuration fault: waiting for it changes nothing, and
        # the job's error (and the health check) must show it.
        return "certificate" not in str(exc).lower()
    return False


def probe_delay(failures: int) -> float:
    return min(PROBE_MAX, PROBE_FIRST * 2 ** max(0, failures - 1))


class PlaneConnectorOutage(models.AbstractModel):
    _inherit = "plane.connector"

    @api.model
    def _plane_is_outage(self, exc: BaseException) -> bool:
        return is_outage(exc)

    def _plane_outage_cursor(self):
        cr = self.env.registry.cursor()
        if type(cr).__name__ != "TestCursor":  # a test cursor is a savepoint: no SET allowed
            cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return cr

    def _plane_outage_key(self) -> str:
        try:
            return self._plane_config()["base_url"]
        except Exception:  # noqa: BLE001 - a broken setting is not an outage; one key then
            return ""

    def _plane_outage_row(self, query: str):
        """``query`` (with one ``%s``: the base URL) on the outage cursor, committed; its row."""
        with self._plane_outage_cursor() as cr:
            cr.execute(query, (self._plane_outage_key(),))
            return cr.fetchone()

    @api.model
    def _plane_outage_wait(self) -> float | None:
        """Seconds until the next probe of a Plane that is down (0: a probe is due now); None
        when no outage is recorded."""
        row = self._plane_outage_row(
            "SELECT EXTRACT(EPOCH FROM next_probe_at - (now() AT TIME ZONE 'UTC'))"
            " FROM plane_outage WHERE base_url = %s")
        return max(0.0, float(row[0])) if row else None

    @api.model
    def _plane_outage_note(self, exc: BaseException) -> float:
        """Record (or extend) the outage ``exc`` shows; the seconds until the next probe."""
        error = redact(f"{type(exc).__name__}: {exc}")[:500]
        with self._plane_outage_cursor() as cr:
            cr.execute(
                """
                INSERT INTO plane_outage AS o (base_url, down_since, next_probe_at, failures,
                                               last_error)
                VALUES (%(key)s, now() AT TIME ZONE 'UTC',
                        now() AT TIME ZONE 'UTC' + %(first)s * interval '1 second', 1, %(err)s)
                ON CONFLICT (base_url) DO UPDATE SET
                    failures = o.failures + 1,
                    next_probe_at = now() AT TIME ZONE 'UTC'
                        + LEAST(%(max)s, %(first)s * power(2, o.failures)) * interval '1 second',
                    last_error = EXCLUDED.last_error
                RETURNING failures, (xmax = 0)
                """,
                {"key": self._plane_outage_key(), "first": PROBE_FIRST, "max": PROBE_MAX,
                 "err": error},
            )
            failures, began = cr.fetchone()
        delay = probe_delay(failures)
        if began:
            # One line per outage, not per job: the jobs themselves wait quietly.
            _log.warning("Plane is unreachable (%s): background sync pauses, probing every "
                         "%.0f-%.0f s", error, PROBE_FIRST, PROBE_MAX)
        else:
            _log.info("Plane still unreachable (probe %s): next probe in %.0f s", failures, delay)
        return delay

    @api.model
    def _plane_outage_clear(self) -> bool:
        """Plane answered: end the recorded outage (True when there was one) and wake every
        queue that paused for it."""
        row = self._plane_outage_row(
            "DELETE FROM plane_outage WHERE base_url = %s"
            " RETURNING EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - down_since)")
        if row is None:
            return False
        seconds = float(row[0])
        _log.info("Plane answers again after %s: background sync resumes",
                  f"{seconds:.0f} s" if math.isfinite(seconds) else "an outage")
        self._plane_outage_resumed()
        return True

    @api.model
    def _plane_outage_resumed(self) -> None:
        """Hook: wake the loops that paused. Domain modules add their crons with ``super()``."""
        wake_cron(self.env, "ipai_plane_connector.ir_cron_plane_process_deliveries")
