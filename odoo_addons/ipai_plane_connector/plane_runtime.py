"""Process-level plumbing shared by the models and the controller (no Odoo models here).

Everything cross-process (dedupe rows, the rate budget, sync marks) lives in PostgreSQL; what is
kept here is only a cache: the Plane client per (database, base URL, key reference, process).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from odoo.exceptions import AccessError, UserError

_log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.plane.so"
PARAM_BASE_URL = "plane.base_url"
# Plane's web app, for "Open in Plane" links (Cloud: app.plane.so, while the API is api.plane.so).
PARAM_WEB_URL = "plane.web_url"
PARAM_WORKSPACE = "plane.workspace_slug"
PARAM_API_KEY_REF = "plane.api_key_ref"
PARAM_WEBHOOK_SECRET_REF = "plane.webhook_secret_ref"  # noqa: S105 - a parameter name
# OAuth "Plane Apps" (Plane Cloud and commercial editions only; CE knows only API keys).
# Plane's per-key budget: 60/min by default, 300/min for a service token; the window is a
# parameter so that tests can run a time-scaled emulator through the real configuration path.
PARAM_REQUESTS_PER_MINUTE = "plane.requests_per_minute"
PARAM_RATE_WINDOW = "plane.rate_window"
PARAM_AUTH_MODE = "plane.auth_mode"  # "api_key" (default) or "oauth"
# Extra CAs (a PEM file on the server) for a self-hosted Plane behind an internal CA.
PARAM_CA_BUNDLE = "plane.ca_bundle"
PARAM_OAUTH_CLIENT_ID = "plane.oauth_client_id"
PARAM_OAUTH_SECRET_REF = "plane.oauth_client_secret_ref"  # noqa: S105 - a parameter name
PARAM_OAUTH_KEY_REF = "plane.oauth_token_key_ref"
PARAM_OAUTH_INSTALLATION = "plane.oauth_app_installation_id"
OAUTH_TOKEN_NAME = "odoo"  # noqa: S105 - the token row's name
OAUTH_CALLBACK = "/plane/oauth/callback"
#: Bumped by every save of Settings > Plane: each worker's secret cache for the database starts
#: over when it sees a new value (the parameter cache is invalidated across workers by Odoo).
PARAM_SECRETS_GENERATION = "plane.secrets_generation"  # noqa: S105 - a parameter name

#: Settings the server operator may fix in odoo.conf ([options]) or the environment (the same
#: name upper-cased); an operator value wins over the database's and is shown read-only. A
#: reference given there is the operator's own and is not limited by the secret policy.
OPERATOR_OPTIONS = {
    "base_url": "plane_base_url",
    "api_key_ref": "plane_api_key_ref",
    "webhook_secret_ref": "plane_webhook_secret_ref",
    "oauth_client_secret_ref": "plane_oauth_client_secret_ref",
    "oauth_token_key_ref": "plane_oauth_token_key_ref",
    "ca_bundle": "plane_ca_bundle",
}
#: The operator's secret options. Once the operator sets any of them (odoo.conf [options] or the
#: environment, non-empty), the base URL is the operator's (plane_base_url, else Plane Cloud)
#: and the database's plane.base_url and plane.ca_bundle are ignored: every secret then
#: belongs to a deployment the operator manages, the webhook secret and the token key
#: included (the token key decrypts the access token that goes to the base URL). The
#: plane_secret_* policy options do not pin the host: they are how an operator lets each
#: database choose its own Plane and references.
SECRET_OPTIONS = ("api_key_ref", "webhook_secret_ref", "oauth_client_secret_ref",
                  "oauth_token_key_ref")
#: Resolved secrets are kept this long per worker and database (a vault: reference would
#: otherwise cost a database connection per webhook); a failure is retried after the shorter
#: delay.
SECRET_TTL = 60.0
SECRET_FAILURE_TTL = 10.0

# What a record value or a setting may look like before it becomes part of a request path:
# a Plane id is a UUID, a workspace slug is letters, digits, "-" and "_", and every segment
# of a path we send is one of those or a word such as "work-items" (never "..", "%2e", "/").
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

_clients: dict[tuple[str, str, str, int], Any] = {}
_clients_lock = threading.Lock()
_secret_caches: dict[str, tuple[str, Any]] = {}
# Its own lock: a client is built (under _clients_lock) from secrets taken from this cache.
_secret_caches_lock = threading.Lock()
#: Per process: the connection to the "postgres" database on which cron workers are woken.
_notify_conns: dict[int, Any] = {}
_notify_lock = threading.Lock()


class _NoIsolationSwitch:
    """Cursor proxy for Odoo's test cursors, which are savepoints inside the test transaction.

    The delivery store opens each claim with ``SET TRANSACTION ISOLATION LEVEL READ COMMITTED``
    (right for a fresh transaction); inside a test transaction that already ran queries
    PostgreSQL refuses it. Tests have no concurrent writer, so skipping it changes nothing.
    """

    def __init__(self, cr: Any) -> None:
        self._cr = cr

    def execute(self, query: Any, params: Any = None, log_exceptions: bool = True) -> Any:
        if isinstance(query, str) and query.lstrip().upper().startswith("SET TRANSACTION"):
            return None
        return self._cr.execute(query, params, log_exceptions=log_exceptions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cr, name)


def store_connect(registry: Any):
    """``connect()`` for the wheel's PostgreSQL stores: a fresh Odoo cursor per use.

    ``registry.cursor`` is looked up at each call (never bound once) because Odoo's test mode
    patches it per test class, and the client cache outlives a test class.
    """

    @contextlib.contextmanager
    def connect() -> Iterator[Any]:
        with registry.cursor() as cr:
            yield _NoIsolationSwitch(cr) if type(cr).__name__ == "TestCursor" else cr

    return connect


def pg_connect(dbname: str):
    """``connect()`` returning a new psycopg2 connection to ``dbname`` (Odoo's settings).

    The OAuth token store commits its refreshes on connections of its own, never on an Odoo
    cursor, so that a refresh made by one worker is visible to all at once.
    """
    import psycopg2
    from odoo.sql_db import connection_info_for

    def connect():
        return psycopg2.connect(**connection_info_for(dbname)[1])

    return connect


def get_client(dbname: str, base_url: str, key_ref: str, factory: Any) -> Any:
    """The cached client for this process and configuration; ``factory()`` builds a new one.

    The process id is in the key because Odoo forks its workers after import: a client (and
    its runtime) made in the parent must not be reused in a child.
    """
    key = (dbname, base_url, key_ref, os.getpid())
    client = _clients.get(key)
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = factory()
            # Stale entries (old config, parent pid) would only waste memory: drop them.
            for stale in [k for k in _clients if k[0] == dbname or k[3] != key[3]]:
                del _clients[stale]
            _clients[key] = client
            _log.debug("built Plane client for database %s, %s", dbname, base_url)
        return client


def forget_clients(dbname: str | None = None) -> None:
    """Drop cached clients and resolved secrets (all, or one database's), e.g. after the
    settings changed."""
    with _clients_lock:
        for k in [k for k in _clients if dbname is None or k[0] == dbname]:
            del _clients[k]
    with _secret_caches_lock:
        for k in [k for k in _secret_caches if dbname is None or k == dbname]:
            del _secret_caches[k]


# -- where secrets may come from: the operator's decision


class ConfigRefused(UserError):
    """A Plane setting cannot be used (a reference refused or unresolvable); the message names
    the reference and the rule, never a value."""


def operator_option(option: str) -> str:
    """An operator setting: odoo.conf ``[options]`` first, then the environment (upper-cased)."""
    from odoo.tools import config

    value = config.get(option)
    if value in (None, False, ""):
        value = os.environ.get(option.upper())
    return str(value).strip() if value not in (None, False) else ""


def operator_refs() -> list[str]:
    """Every reference the operator's own secret options name (a webhook secret option may
    list two): a database reference may never name the same secret."""
    refs = []
    for key in SECRET_OPTIONS:
        refs.extend(operator_option(OPERATOR_OPTIONS[key]).replace(",", " ").split())
    return refs


def secret_policy(setting: str | None = None):
    """The operator's policy for references stored in a database (see SecretPolicy), for one
    setting (``api_key_ref``, …: its ``plane_secret_<setting>_allow`` patterns apply too)."""
    from odoo.tools import config
    from plane_connector import secrets

    names = [*secrets.POLICY_OPTIONS, *secrets.SETTING_OPTIONS.values()]
    options = {k: config.get(k) for k in names if config.get(k) not in (None, False, "")}
    try:
        policy = secrets.SecretPolicy.from_mapping(
            options, environ=os.environ, reserved_refs=operator_refs())
    except secrets.SecretError as exc:
        raise ConfigRefused(f"The server's secret policy options are invalid: {exc}") from None
    return policy if setting is None else policy.for_setting(setting)


def secret_cache(dbname: str, generation: str):
    """This worker's cache of resolved secrets for ``dbname`` (a fresh one per generation)."""
    from plane_connector import secrets

    with _secret_caches_lock:
        current = _secret_caches.get(dbname)
        if current is None or current[0] != generation:
            current = (generation, secrets.SecretCache(
                SECRET_TTL, negative_ttl=SECRET_FAILURE_TTL))
            _secret_caches[dbname] = current
        return current[1]


def redact(text: Any) -> str:
    """The one redactor for every error text the addons store on a record, log or raise."""
    try:
        from plane_connector.secrets import redact as wheel_redact
    except ImportError:  # pragma: no cover - external_dependencies stops the install first
        return str(text)
    return wheel_redact(str(text))


# -- values that become request paths


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def is_slug(value: Any) -> bool:
    return isinstance(value, str) and _SLUG.fullmatch(value) is not None


def bad_path_segment(path: str) -> str | None:
    """The first segment of an API path that is not a plain word or id, or None when all are.

    Paths are relative to /api/v1/ and end with "/": every segment in between must be a
    word, a slug or a UUID, so no value can climb out of the workspace it was joined into.
    """
    segments = path.split("/")
    if segments and segments[-1] == "":
        segments.pop()
    for segment in segments or [""]:
        if _SEGMENT.fullmatch(segment) is None:
            return segment
    return None


# -- fields only the sync may write


def plane_remote(env: Any) -> bool:
    """Whether the current write is the Plane sync's own (``plane_remote`` in the context).

    Honoured in superuser mode only: the sync always runs in ``sudo()``, and any RPC client
    can put ``plane_remote`` in the context it sends (a task deleted without archiving its
    work item, an edit that never reaches Plane), but none can enter superuser mode.
    """
    return bool(env.su and env.context.get("plane_remote"))


def guard_sync_fields(records: Any, vals_list: Iterable[dict], names: frozenset[str]) -> None:
    """Refuse a user's write of the Plane link/state fields of ``records``' model.

    Those fields hold Plane ids that later become request paths, so only the sync writes
    them, and it does so in superuser mode (``sudo()``), which an RPC caller cannot reach
    (unlike a context key, which any client can send).
    """
    if records.env.su:
        return
    touched = sorted({name for vals in vals_list for name in vals if name in names})
    if touched:
        raise AccessError(
            f"{', '.join(touched)} on {records._description} can only be set by the Plane "
            "synchronisation, not written directly."
        )


def checked_ca_bundle(path: str, *, operator: bool = False) -> str | None:
    """``plane.ca_bundle`` as the client takes it, or None when unset.

    Which certificate authorities Odoo trusts is the server operator's decision (the
    ``plane_ca_bundle`` option wins over the database setting, and once the operator pins the
    host only the option counts): the value must be an absolute path to a regular, readable
    PEM file of CA certificates (the wheel refuses devices, FIFOs, directories, oversized files
    and files without a certificate, and never echoes a file's content). Raises ``UserError``:
    with the wheel's reason for the operator's own value (``operator=True``), and one message
    for any unusable database value, so that the setting cannot tell a database admin whether
    an arbitrary path exists, is readable or is a file.
    """
    path = (path or "").strip()
    if not path:
        return None
    unusable = UserError(
        "plane.ca_bundle is not usable: it must be the absolute path of a readable PEM file of "
        "CA certificates on the Odoo server (ask the server operator).")
    if not os.path.isabs(path):
        if not operator:
            raise unusable
        raise UserError(f"plane.ca_bundle must be an absolute path, got {path!r}.")
    import plane_connector

    try:  # builds nothing but the bundle check: no connection is made
        plane_connector.PlaneClient("https://localhost", ca_bundle=path)
    except plane_connector.ConfigError as exc:
        if not operator:
            raise unusable from None
        raise UserError(f"plane_ca_bundle: {exc}") from None
    return path


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
