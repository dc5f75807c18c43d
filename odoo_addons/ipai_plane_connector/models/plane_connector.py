"""``plane.connector``: the base every Plane domain module ``_inherit``s.

It builds the one Plane client from ``ir.config_parameter``, offers ``_plane_request`` /
``_plane_paginate`` / ``_plane_create_idempotent``, and dispatches webhook events to
``_plane_handle_event``, which domain modules extend with ``super()``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

from odoo import api, models
from odoo.exceptions import AccessError, UserError
from psycopg2 import errors as pg_errors

from ..caches import PARAM_SECRETS_GENERATION, forget_clients, get_client, secret_cache
from ..connections import pg_connect, store_connect
from ..crons import wake_cron
from ..exceptions import RateLimitError
from ..paths import bad_path_segment, is_slug, is_uuid
from ..redaction import redact
from ..settings import (
    AUTH_MODE,
    BASE_URL,
    OAUTH_APP_INSTALLATION_ID,
    OAUTH_CALLBACK,
    OAUTH_TOKEN_NAME,
    OPERATOR_SETTINGS,
    SECRET_SETTINGS,
    SETTINGS,
    WORKSPACE_SLUG,
    ConfigRefused,
    checked_ca_bundle,
    operator_option,
    secret_policy,
)

_log = logging.getLogger(__name__)

try:
    import plane_connector
    from plane_connector import secrets as plane_secrets
    from plane_connector import server as plane_server
    from plane_connector.dedupe import PostgresDeliveryStore, default_backoff, describe_error
    from plane_connector.webhooks import normalize_event
except ImportError:  # pragma: no cover - external_dependencies stops the install first
    plane_connector = None

    def describe_error(exc):
        return type(exc).__name__

    def default_backoff(attempts):
        return float(min(60 * 2 ** max(attempts - 1, 0), 3600))

    def normalize_event(event, action=None):
        return str(event).lower(), action or ""

#: The longest wait ``_plane_retry_delay`` gives, whatever a server asks for.
RETRY_CAP = 3600.0
#: A change seen by the sweep this long after the last webhook means the webhook went silent.
SILENCE_GRACE = dt.timedelta(minutes=10)


def parse_plane_time(value: Any) -> dt.datetime | None:
    """Plane's ISO timestamps (``…Z`` or ``…+00:00``) as naive UTC; None when absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment


class _RouteGuard:
    """A pager whose missing-route 404 (see ``_plane_request``) is a ``MissingRouteError``;
    everything else (``cursor``, ``next_cursor``, ``pages``…) is the pager's."""

    def __init__(self, pager, base_url: str, path: str) -> None:
        self._pager, self._base_url, self._path = pager, base_url, path

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._pager)
        except plane_connector.NotFoundError as exc:
            if plane_server.is_missing_route(exc):
                raise plane_server.missing_route(exc, self._base_url, self._path) from exc
            raise

    def __getattr__(self, name: str):
        return getattr(self._pager, name)


def event_project_id(payload: Any) -> str | None:
    """The Plane project (a lower-case UUID) an event is about; None when it names none.

    CE v1 (``issue``, ``issue_comment``): ``data.project``, a bare id or an expanded object.
    Cloud v2 (``workitem.*``): ``data.project_id``; a v2 deletion's ``data`` is empty and the
    record as it was is in ``previous_attributes``. A ``project`` event is about its ``data.id``.
    A v1 deletion (``data`` is ``{"id": …}``) and a v2 comment name no project.
    """
    if not isinstance(payload, dict):
        return None
    entity, _action = normalize_event(str(payload.get("event") or ""), "")
    for part in ("data", "previous_attributes"):
        data = payload.get(part)
        if not isinstance(data, dict):
            continue
        value = data.get("project", data.get("project_id"))
        if entity == "project" and value is None:
            value = data.get("id")
        if isinstance(value, dict):
            value = value.get("id")
        if is_uuid(value):
            return value.lower()
    return None


class PlaneConnector(models.AbstractModel):
    _name = "plane.connector"
    _description = "Plane connector (client, pagination, event dispatch)"

    # -- configuration and client

    @api.model
    def _plane_config(self) -> dict[str, Any]:
        """The settings in effect (references, never secret values).

        What the server operator set in odoo.conf or the environment wins over the database
        (``operator`` lists those keys); which settings exist, and which the operator may fix,
        is ``settings.SETTINGS``. Once the operator sets any secret option (``SECRET_SETTINGS``),
        the base URL is the operator's: ``plane_base_url``, else Plane Cloud, never a URL a
        database admin typed in. Once the base URL is the operator's, so is the CA bundle:
        ``plane_ca_bundle`` or none, never the database's ``plane.ca_bundle`` (a trust anchor
        a database admin adds would let them intercept the operator's host).
        """
        params = self.env["ir.config_parameter"].sudo()
        config = {s.name: (params.get_param(s.param) or s.default).strip() for s in SETTINGS}
        operator = set()
        for setting in OPERATOR_SETTINGS:
            value = operator_option(setting.option)
            if value:
                config[setting.name] = value
                operator.add(setting.name)
        if "base_url" not in operator and operator.intersection(s.name for s in SECRET_SETTINGS):
            config["base_url"] = BASE_URL.default
            operator.add("base_url")
        if "base_url" in operator and "ca_bundle" not in operator:
            config["ca_bundle"] = ""
            operator.add("ca_bundle")
        config["operator"] = frozenset(operator)
        return config

    @api.model
    def _plane_secret(self, config: dict, key: str, what: str, ref: str | None = None):
        """The secret behind one reference of ``config`` (a ``Redacted``), from this worker's
        cache when fresh. A reference from the database must pass the operator's policy; one
        the operator set is theirs. Raises ``ConfigRefused`` (a UserError) naming the
        reference and the rule, before anything is sent anywhere."""
        self._plane_require_wheel()
        ref = (config[key] if ref is None else ref).strip()
        if not ref:
            raise ConfigRefused(f"{what} is not set (Settings > Plane).")
        policy = self._plane_policy_for(config, key)
        params = self.env["ir.config_parameter"].sudo()
        generation = params.get_param(PARAM_SECRETS_GENERATION) or ""
        cache = secret_cache(self.env.cr.dbname, generation)
        try:
            return cache.get(ref, policy)
        except plane_secrets.SecretError as exc:
            raise ConfigRefused(f"{what}: {exc}") from None

    @api.model
    def _plane_policy_for(self, config: dict, key: str):
        """The operator's policy for a database reference of setting ``key`` (its own pattern
        included); None for one the operator set."""
        return None if key in config["operator"] else secret_policy(key)

    @api.model
    def _plane_webhook_secrets(self) -> list:
        """The webhook signing secrets (several references while a new secret rolls out)."""
        config = self._plane_config()
        refs = config["webhook_secret_ref"].replace(",", " ").split()
        if not refs:
            raise ConfigRefused("The webhook secret reference (plane.webhook_secret_ref) is "
                                   "not set.")
        return [self._plane_secret(config, "webhook_secret_ref", "Webhook secret reference", r)
                for r in refs]

    @api.model
    def _plane_rate_settings(self, config) -> tuple[int, float]:
        """Requests per window and the window length (s) from the settings, or Plane's 60/60."""
        try:
            rpm = int(config["requests_per_minute"] or 60)
            window = float(config["rate_window"] or 60.0)
        except ValueError:
            raise UserError(
                "plane.requests_per_minute must be a whole number and plane.rate_window a "
                "number of seconds."
            ) from None
        if rpm < 1 or not window > 0:
            raise UserError("plane.requests_per_minute and plane.rate_window must be positive.")
        return rpm, window

    @api.model
    def _plane_client(self):
        """The process-wide client for the current configuration (built once, then cached)."""
        self._plane_require_wheel()
        config = self._plane_config()
        registry = self.env.registry
        rpm, window = self._plane_rate_settings(config)
        # The CA bundle is checked (a regular, readable PEM file) when the client is built.
        ca_bundle = checked_ca_bundle(config["ca_bundle"],
                                         operator="ca_bundle" in config["operator"])
        rate = {"requests_per_minute": rpm, "rate_window": window, "ca_bundle": ca_bundle}
        if config["auth_mode"] == "oauth":

            def build():
                from plane_connector import oauth

                # Built per process (the cache key has the pid): the store's connections
                # must not cross Odoo's fork.
                app, store = self._plane_oauth_app(config), self._plane_oauth_store(config)
                provider = oauth.token_provider(app, store, OAUTH_TOKEN_NAME)
                return plane_connector.PlaneClient(
                    config["base_url"], token_provider=provider,
                    rate_budget=self._plane_rate_budget(registry), **rate,
                )

            cache_ref = (
                f"oauth:{config['oauth_client_id']}:{config['oauth_token_key_ref']}|{rpm}/{window}"
                f"|{config['ca_bundle']}"
            )
            return get_client(self.env.cr.dbname, config["base_url"], cache_ref, build)
        ref = config["api_key_ref"]
        if not ref:
            raise UserError(
                "Plane is not configured: set the API key reference (plane.api_key_ref, "
                "e.g. env:PLANE_API_KEY) in Settings > Plane."
            )

        def build():
            api_key = self._plane_secret(config, "api_key_ref", "Plane API key reference").get()
            return plane_connector.PlaneClient(
                config["base_url"], api_key=api_key,
                rate_budget=self._plane_rate_budget(registry), **rate,
            )

        # The rate and the CA bundle are in the cache key: changing them needs no restart.
        cache_ref = f"{ref}|{rpm}/{window}|{config['ca_bundle']}"
        return get_client(self.env.cr.dbname, config["base_url"], cache_ref, build)

    # -- OAuth (Plane Apps)

    @api.model
    def _plane_oauth_app(self, config=None):
        """The registered Plane App from the settings (client secret by reference)."""
        from plane_connector import oauth

        config = config or self._plane_config()
        if not config["oauth_client_id"] or not config["oauth_client_secret_ref"]:
            raise UserError(
                "Plane OAuth is not configured: set the app's client id and the reference of "
                "its client secret in Settings > Plane."
            )
        # The reference is checked against the operator's policy before the app exists, so a
        # refused one never reaches a token request.
        self._plane_secret(config, "oauth_client_secret_ref", "App client secret reference")
        base = self.env["ir.config_parameter"].sudo().get_param("web.base.url") or ""
        try:
            return oauth.OAuthApp(
                config["base_url"], config["oauth_client_id"], config["oauth_client_secret_ref"],
                redirect_uri=base.rstrip("/") + OAUTH_CALLBACK,
                secret_policy=self._plane_policy_for(config, "oauth_client_secret_ref"),
            )
        except plane_connector.PlaneError as exc:
            raise UserError(redact(f"Plane OAuth app: {exc}")) from None

    @api.model
    def _plane_oauth_store(self, config=None):
        """Tokens encrypted at rest in this database; one refresh at a time across workers."""
        from plane_connector import oauth

        config = config or self._plane_config()
        if not config["oauth_token_key_ref"]:
            raise UserError(
                "Set the reference of the token encryption key (plane.oauth_token_key_ref), "
                "e.g. env:PLANE_TOKEN_KEY (32 random bytes, base64)."
            )
        self._plane_secret(config, "oauth_token_key_ref", "Token encryption key reference")
        try:
            return oauth.PostgresTokenStore(
                pg_connect(self.env.cr.dbname), key_ref=config["oauth_token_key_ref"],
                key_policy=self._plane_policy_for(config, "oauth_token_key_ref"),
            )
        except plane_connector.PlaneError as exc:
            raise UserError(redact(f"Plane token store: {exc}")) from None

    @api.model
    def _plane_oauth_complete(self, *, code=None, app_installation_id=None, code_verifier=None):
        """Store the tokens of an authorization (user consent, with its PKCE verifier) or of an
        app installation (bot)."""
        from plane_connector import oauth

        config = self._plane_config()
        app, store = self._plane_oauth_app(config), self._plane_oauth_store(config)
        try:
            tokens = oauth.complete_authorization(
                app, store, OAUTH_TOKEN_NAME, code=code,
                app_installation_id=app_installation_id, code_verifier=code_verifier,
            )
        except plane_connector.PlaneError as exc:
            raise UserError(f"Plane authorization failed: {describe_error(exc)}") from None
        finally:
            store.close()
        params = self.env["ir.config_parameter"].sudo()
        if tokens.app_installation_id:
            params.set_param(OAUTH_APP_INSTALLATION_ID.param, tokens.app_installation_id)
        if tokens.workspace_slug and not config["workspace_slug"]:
            params.set_param(WORKSPACE_SLUG.param, tokens.workspace_slug)
        params.set_param(AUTH_MODE.param, "oauth")
        forget_clients(self.env.cr.dbname)
        return tokens

    @api.model
    def _plane_rate_budget(self, registry):
        """The budget shared by every worker and host on this database (PostgreSQL)."""
        try:
            from plane_connector.ratebudget import PostgresRateBudget
        except ImportError:
            _log.warning(
                "plane_connector.ratebudget is missing: each process keeps its own 60/min "
                "budget, so several workers can exceed Plane's limit together"
            )
            return None
        return PostgresRateBudget(store_connect(registry))

    @api.model
    def _plane_require_wheel(self) -> None:
        if plane_connector is None:
            raise UserError("The plane_connector Python package is not installed on this server.")

    @api.model
    def _plane_workspace_path(self, *parts: str) -> str:
        """``workspaces/<slug>/<parts…>/`` for the configured workspace.

        Every part must be a plain word or id: a stored value such as ``../../other`` must
        never climb out of the workspace (see ``_plane_uuid`` for the ids taken from records).
        """
        slug = self._plane_config()["workspace_slug"]
        if not slug:
            raise UserError("Plane is not configured: set the workspace slug in Settings > Plane.")
        if not is_slug(slug):
            raise UserError(
                "The Plane workspace slug (plane.workspace_slug) may hold only letters, digits, "
                "'-' and '_': fix it in Settings > Plane."
            )
        path = "/".join(["workspaces", slug, *(str(p).strip("/") for p in parts)]) + "/"
        self._plane_check_path(path)
        return path

    @api.model
    def _plane_server(self, refresh: bool = False):
        """The Plane server's profile (``plane_connector.server.ServerProfile``: version,
        edition, route family), detected once per base URL and worker process."""
        return plane_server.detect(self._plane_client(), refresh=refresh)

    @api.model
    def _plane_path(self, resource: str, *ids: str) -> str:
        """The path of ``resource`` (``work_items``, ``comments``, … see
        ``plane_connector.server.RESOURCES``) for the configured workspace on this server:
        Plane up to 1.0 has only ``/issues/`` routes, later ones also ``/work-items/``. Ids
        from records must be checked first (``_plane_uuid``)."""
        family = self._plane_server().family
        return self._plane_workspace_path(*plane_server.segments(family, resource, *ids))

    @api.model
    def _plane_uuid(self, value: Any, what: str) -> str:
        """``value`` when it is a Plane id (a UUID), else a UserError naming ``what``.

        Used on every id read from a record or a setting before it goes into a request path.
        """
        text = value.strip() if isinstance(value, str) else ""
        if not is_uuid(text):
            shown = redact(repr(value)[:60]) if isinstance(value, str) else type(value).__name__
            raise UserError(f"{what} {shown} is not a Plane id (a UUID): nothing was sent.")
        return text

    @api.model
    def _plane_check_path(self, path: str) -> str:
        bad = bad_path_segment(path)
        if bad is not None:
            raise UserError(
                f"Refused to call Plane: the path segment {bad[:60]!r} is not a plain name or id."
            )
        return path

    @api.model
    def _plane_check_rights(self, records, operation: str = "write", group: str | None = None):
        """Before the first request of a button: the caller may ``operation`` the records and
        belongs to ``group``. Superuser code (crons, the sync itself) passes."""
        if self.env.su:
            return
        records.check_access(operation)
        if group and not self.env.user.has_group(group):
            raise AccessError(
                f"Only members of {self.env.ref(group).display_name!r} can do this with Plane."
            )

    @api.model
    def _plane_lock_for_push(self, record, from_button: bool) -> bool:
        """Lock ``record``'s row for this transaction's push to Plane; False when a cron
        should leave the record to another transaction.

        Without it a push cron and a *Push to Plane* button (woken by the same save) push one
        record at once: the same requests twice, and the transaction that writes the record
        second fails with "could not serialize access", which Odoo logs as ERROR "bad query"
        before it retries. A cron (``from_button`` False) skips a record another transaction
        is pushing, or has changed since the cron's transaction began (no longer the cron's
        to push). A button gets a UserError when another transaction holds the record, and a
        change since its transaction began is raised as it is, for Odoo to retry the request
        in a fresh transaction (logged at INFO)."""
        record.ensure_one()
        cr = self.env.cr
        query = (f'SELECT id FROM "{record._table}" WHERE id = %s FOR NO KEY UPDATE '
                 + ("NOWAIT" if from_button else "SKIP LOCKED"))
        try:
            # log_exceptions=False: these failures are expected, not Odoo's "bad query" ERROR.
            with cr.savepoint(flush=False):
                cr.execute(query, [record.id], log_exceptions=False)
                return bool(cr.fetchone())
        except pg_errors.LockNotAvailable:
            raise UserError(
                f"{record.display_name} is being pushed to Plane by the background job right "
                "now: it shows as synced in a moment.") from None
        except pg_errors.SerializationFailure:
            if from_button:
                raise
            return False

    # -- calls (every Plane call goes through the wheel's client)

    @api.model
    def _plane_request(self, method: str, path: str, *, params=None, json=None) -> Any:
        """One API call; ``path`` is relative to ``/api/v1/``. Raises plane_connector errors."""
        self._plane_check_path(path)
        client = self._plane_client()
        try:
            return client.request(method, path, params=params, json=json)
        except plane_connector.NotFoundError as exc:
            if plane_server.is_missing_route(exc):
                # The route existed when the server was detected: it changed in place. Not a
                # NotFoundError, which callers read as "deleted in Plane"; the job retries
                # with a path built for what the server is now.
                raise plane_server.missing_route(exc, client.base_url, path) from exc
            raise

    @api.model
    def _plane_paginate(self, path: str, *, params=None, per_page: int = 100, cursor=None):
        """Lazy iterator over the items of a cursor-paginated list."""
        self._plane_check_path(path)
        client = self._plane_client()
        pager = client.paginate(path, params=params, per_page=per_page, cursor=cursor)
        return _RouteGuard(pager, client.base_url, path)

    @api.model
    def _plane_external_id(self, record) -> str:
        """A stable, database-unique external id for an Odoo record (Plane ``external_id``)."""
        return f"{self._plane_external_prefix(record._name)}{record.id}"

    @api.model
    def _plane_external_prefix(self, model_name: str) -> str:
        dbuuid = self.env["ir.config_parameter"].sudo().get_param("database.uuid") or ""
        return f"{dbuuid}:{model_name}:"

    @api.model
    def _plane_record_from_external(self, model_name: str, data: dict):
        """The record a Plane object's external_id/external_source points to (or empty)."""
        records = self.env[model_name]
        external = data.get("external_id")
        prefix = self._plane_external_prefix(model_name)
        if data.get("external_source") != "odoo" or not isinstance(external, str):
            return records.browse()
        rest = external[len(prefix):] if external.startswith(prefix) else ""
        return records.browse(int(rest)).exists() if rest.isdigit() else records.browse()

    @api.model
    def _plane_create_idempotent(self, path: str, values: dict, *, external_id: str,
                                 external_source: str = "odoo") -> dict:
        """POST with external_id/external_source: a repeat returns the existing object."""
        self._plane_check_path(path)
        body = dict(values, external_id=external_id, external_source=external_source)
        client = self._plane_client()
        try:
            return client.create_idempotent(path, body)
        except plane_connector.NotFoundError as exc:
            if plane_server.is_missing_route(exc):
                raise plane_server.missing_route(exc, client.base_url, path) from exc
            raise

    # -- event dispatch

    @api.model
    def _plane_handle_event(self, event: str, action: str, payload: dict) -> bool:
        """Handle one Plane event; extend with ``super()``. Return True when handled.

        ``event`` is the CE v1 entity name (``issue``, ``issue_comment``, ``project``, ``cycle``,
        ``module``) also for Cloud v2 deliveries; ``payload["data"]`` is the entity. Raise to have
        the delivery retried (its writes are rolled back). Must be idempotent: the reconciliation
        sweep feeds the same changes again.
        """
        return False

    @api.model
    def _plane_dispatch(self, delivery) -> bool:
        """Run the event hook for one stored delivery (called by the processing cron)."""
        payload = dict(delivery.payload)
        event, action = normalize_event(delivery.event, delivery.action)
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        project_id = data.get("project") if event == "issue" else None
        if isinstance(project_id, dict):
            project_id = project_id.get("id")
        if project_id:
            self.env["plane.project.link"].sudo()._plane_webhook_seen(project_id)
        handled = self._plane_handle_event(event, action, payload)
        if not handled:
            _log.debug("Plane %s.%s (delivery %s) had no handler", event, action,
                       delivery.delivery_id)
        return handled

    # -- crons

    @api.model
    def _plane_delivery_store(self):
        self._plane_require_wheel()
        return PostgresDeliveryStore(store_connect(self.env.registry))

    @api.model
    def _cron_process_deliveries(self, limit: int = 50) -> dict:
        """Process due received/failed deliveries in this transaction (exactly once per row)."""
        params = self.env["ir.config_parameter"].sudo()
        max_attempts = int(params.get_param("plane.webhook_max_attempts", 5))
        env = self.env

        def handler(delivery) -> None:
            # The store wraps this in a SAVEPOINT: flush so the ORM's writes land inside it,
            # and forget the cache on failure since the savepoint rolls them back.
            env.flush_all()
            try:
                env["plane.connector"].sudo()._plane_dispatch(delivery)
                env.flush_all()
            except Exception:
                env.clear()
                raise

        waits: list[float] = []

        def defer(exc):
            # Plane is down: this delivery waits for the next probe without using an attempt,
            # and the run stops (the next rows would meet the same outage).
            if not self._plane_is_outage(exc):
                return None
            waits.append(self._plane_outage_note(exc))
            return waits[-1]

        env["plane.webhook.delivery"].flush_model()
        report = self._plane_delivery_store().process_pending(
            env.cr, handler, limit=limit, max_attempts=max_attempts, defer=defer
        )
        env["plane.webhook.delivery"].invalidate_model()
        if waits:
            wake_cron(env, "ipai_plane_connector.ir_cron_plane_process_deliveries",
                         after=waits[-1])
        elif report.processed >= limit:
            # A full batch: there may be more, go on in a fresh run rather than at the tick.
            env["plane.webhook.delivery"]._plane_trigger_processing()
        result = {"done": report.done, "failed": report.failed, "dead": report.dead,
                  "skipped": report.skipped, "deferred": report.deferred,
                  "purged": env["plane.webhook.delivery"].sudo()._plane_purge_done()}
        if report.processed or result["purged"]:
            _log.info("Plane deliveries processed: %s", result)
        return result

    @api.model
    def _cron_health_check(self):
        """Call ``users/me/`` and record the outcome (kept for the settings page)."""
        return self.env["plane.health.check"].sudo()._plane_run_check()

    @api.model
    def _cron_reconcile(self) -> dict:
        """Catch up what webhooks missed (Plane never replays a disabled webhook's events)."""
        results = {}
        for link in self.env["plane.project.link"].sudo().search([("active", "=", True)]):
            if self._plane_outage_wait():
                break  # Plane is down: the next run catches up (nothing is lost by waiting)
            results[link.plane_project_id] = link._plane_sweep()
        return results

    # -- helpers for domain modules

    @api.model
    def _plane_describe_error(self, exc: BaseException) -> str:
        """``Type: message`` of an error, redacted and at most 2,000 characters: the text a
        domain module stores on a record (``last_error``, a sync-error field) or shows a user.
        Any exception text may carry a secret (a handler quoting a key, a driver echoing a
        DSN), and those fields are readable by ordinary users."""
        return describe_error(exc)

    @api.model
    def _plane_retry_delay(self, attempts: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before retrying after ``attempts`` failed tries: the wheel's backoff
        (1, 2, 4 … minutes, at most an hour; the webhook deliveries' too), lengthened to the
        ``Retry-After`` a ``RateLimitError`` carries, never past the hour: a server may send
        any number, and a timedelta of 3e11 s overflows."""
        delay = float(default_backoff(max(1, int(attempts))))
        if isinstance(exc, RateLimitError):
            try:
                asked = float(getattr(exc, "retry_after", None) or 0.0)
            except (TypeError, ValueError, OverflowError):
                asked = 0.0
            if math.isfinite(asked):
                delay = max(delay, min(asked, RETRY_CAP))
            elif asked > 0:
                delay = RETRY_CAP
        return min(delay, RETRY_CAP)

    @api.model
    def _plane_state_group(self, project_id: str, state: Any) -> str | None:
        """The group (backlog/unstarted/started/completed/cancelled) of a work item's state.

        Webhooks carry the expanded state object; plain API reads carry only its id, which is
        looked up (one GET per call).
        """
        if isinstance(state, dict):
            return state.get("group")
        if not state or not project_id:
            return None
        found = self._plane_request("GET", self._plane_workspace_path(
            "projects", self._plane_uuid(project_id, "Plane project id"),
            "states", self._plane_uuid(state, "Plane state id"),
        ))
        return found.get("group") if isinstance(found, dict) else None

    # -- which events may touch which records (the rule every domain module follows)

    @api.model
    def _plane_event_project(self, payload: dict) -> str | None:
        """The Plane project an event is about (CE v1 and Cloud v2), or None."""
        return event_project_id(payload)

    @api.model
    def _plane_event_in_scope(self, payload: dict, plane_project_id: Any, *,
                              linked: bool = False) -> bool:
        """Whether a Plane event may touch an Odoo record bound to ``plane_project_id``.

        The event-scope rule: an event applies only to records linked to the event's Plane
        project. A workspace webhook reports every project of the workspace, so any member of
        any Plane project can make events, and write any ``external_id`` on the items they
        create. Domain modules therefore apply an event to a record only when this says yes::

            record = Model.search([("plane_work_item_id", "=", data["id"])], limit=1)
            if record and not connector._plane_event_in_scope(
                    payload, record.plane_project_id, linked=True):
                return False  # another project's event: leave the record alone

        * ``plane_project_id`` is the record's linked Plane project or, for a record not linked
          yet, the project its module's settings would push it to; none (False, "", not a
          UUID): never.
        * The event's project (``_plane_event_project``) must be that project.
        * An event that names no project (a v1 deletion, a v2 comment) may touch only a record
          found by the work item id it is already linked to (``linked=True``): that id is
          Plane's, which no member can choose. A match by ``external_id`` must name the project.
        * A match by ``external_id`` links only a record that has no work item yet (checked by
          the caller, which knows its link field): it never moves an existing link.
        """
        expected = plane_project_id.strip().lower() if isinstance(plane_project_id, str) else ""
        if not is_uuid(expected):
            return False
        got = self._plane_event_project(payload)
        if got is None:
            return linked
        return got == expected
