"""Waking a cron at once (or at a given delay) without Odoo's per-trigger connection."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

_log = logging.getLogger(__name__)

#: Per process: the connection to the "postgres" database on which cron workers are woken.
_notify_conns: dict[int, Any] = {}
_notify_lock = threading.Lock()


def wake_cron(env: Any, xmlid: str, after: float = 0.0) -> bool:
    """Have the cron ``xmlid`` run as soon as a cron worker is free: ``ir.cron._trigger()``,
    made cheap enough for every webhook delivery. False for a missing or inactive cron.

    ``after`` (seconds) asks for a run that much later instead: when a backoff or an outage
    probe falls due, rather than at the cron's next regular call. Odoo's cron workers see a
    future trigger at their next poll after it (at most a minute), so loops that wait for less
    than that nap in their own run instead (see ``plane.sync.job``).

    The trigger row is inserted in ``env.cr`` (it commits with the caller's transaction),
    stamped with the exact time rather than the whole second: when a run ends, Odoo 18
    deletes the triggers stamped before that run began, and a whole-second stamp taken
    during the run can fall before it (its work then waits for the cron's next regular
    call). After the commit, the cron workers, which LISTEN on the ``postgres`` database,
    are notified on a connection this process keeps open: Odoo pools no connection to that
    database, so its own path opens and authenticates a new one at every trigger, which was
    most of the cost of a delivery.
    """
    cron = env.ref(xmlid, raise_if_not_found=False)
    if not cron:
        return False
    # The database's clock, as every ready-check of ir.cron uses (the Odoo host's may differ).
    env.cr.execute(
        "INSERT INTO ir_cron_trigger (cron_id, call_at, create_uid, create_date, write_uid,"
        " write_date) SELECT id, clock_timestamp() AT TIME ZONE 'UTC'"
        " + %(after)s * interval '1 second', %(uid)s,"
        " now() AT TIME ZONE 'UTC', %(uid)s, now() AT TIME ZONE 'UTC' FROM ir_cron"
        " WHERE id = %(cron)s AND active",
        {"cron": cron.id, "uid": env.uid, "after": max(0.0, min(float(after), 86400.0))},
    )
    if not env.cr.rowcount:
        return False
    if after <= 0:  # a future trigger is found by the workers' poll: no one to wake now
        dbname = env.cr.dbname
        env.cr.postcommit.add(lambda: notify_cron_workers(dbname))
    return True


def notify_cron_workers(dbname: str) -> None:
    """``NOTIFY cron_trigger`` as Odoo's ``ir.cron._notifydb`` does, on a kept connection.

    A failure is logged, never raised: the trigger row is committed, so the cron's next
    regular run takes it anyway.
    """
    import psycopg2
    from odoo.sql_db import connection_info_for
    from psycopg2 import sql

    function = sql.Identifier(os.getenv("ODOO_NOTIFY_FUNCTION", "pg_notify"))
    query = sql.SQL("SELECT {}('cron_trigger', %s)").format(function)
    pid = os.getpid()
    with _notify_lock:
        for attempt in (1, 2):
            conn = _notify_conns.get(pid)
            try:
                if conn is None or conn.closed:
                    # Connections made before a fork belong to the parent: never reused.
                    for other in [p for p in _notify_conns if p != pid]:
                        del _notify_conns[other]
                    conn = psycopg2.connect(**connection_info_for("postgres")[1])
                    conn.autocommit = True
                    _notify_conns[pid] = conn
                with conn.cursor() as cur:
                    cur.execute(query, (dbname,))
                return
            except psycopg2.Error as exc:
                _notify_conns.pop(pid, None)
                with contextlib.suppress(Exception):
                    if conn is not None:
                        conn.close()
                if attempt == 2:
                    _log.warning("could not wake the cron workers (the cron's next run "
                                 "will take the work): %s", exc)
