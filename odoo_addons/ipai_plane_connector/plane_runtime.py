"""Deprecated: the old home of the connector's plumbing, kept so that existing imports work.

``from odoo.addons.ipai_plane_connector import plane_runtime as rt`` still gives every name it
gave before the settings table (domain modules written elsewhere may use it). New code imports
from the modules named for each job: ``settings`` (the settings table, operator options, secret
policy, ``checked_ca_bundle``), ``caches`` (clients and resolved secrets), ``connections``,
``paths``, ``sync_guard``, ``redaction`` and ``crons``. Nothing in this repository imports this
module; it may go in a major release.
"""

from .caches import (  # noqa: F401
    PARAM_SECRETS_GENERATION,
    SECRET_FAILURE_TTL,
    SECRET_TTL,
    forget_clients,
    get_client,
    secret_cache,
)
from .connections import _NoIsolationSwitch, pg_connect, store_connect  # noqa: F401
from .crons import notify_cron_workers, wake_cron  # noqa: F401
from .paths import bad_path_segment, is_slug, is_uuid  # noqa: F401
from .redaction import redact  # noqa: F401
from .settings import (  # noqa: F401
    API_KEY_REF,
    AUTH_MODE,
    BASE_URL,
    CA_BUNDLE,
    OAUTH_APP_INSTALLATION_ID,
    OAUTH_CALLBACK,
    OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET_REF,
    OAUTH_TOKEN_KEY_REF,
    OAUTH_TOKEN_NAME,
    OPERATOR_SETTINGS,
    RATE_WINDOW,
    REQUESTS_PER_MINUTE,
    SECRET_SETTINGS,
    WEB_URL,
    WEBHOOK_SECRET_REF,
    WORKSPACE_SLUG,
    ConfigRefused,
    checked_ca_bundle,
    operator_option,
    operator_refs,
    secret_policy,
)
from .sync_guard import guard_sync_fields, plane_remote  # noqa: F401

# The old constant names, now columns of the settings table.
DEFAULT_BASE_URL = BASE_URL.default
PARAM_BASE_URL = BASE_URL.param
PARAM_WEB_URL = WEB_URL.param
PARAM_WORKSPACE = WORKSPACE_SLUG.param
PARAM_API_KEY_REF = API_KEY_REF.param
PARAM_WEBHOOK_SECRET_REF = WEBHOOK_SECRET_REF.param
PARAM_REQUESTS_PER_MINUTE = REQUESTS_PER_MINUTE.param
PARAM_RATE_WINDOW = RATE_WINDOW.param
PARAM_AUTH_MODE = AUTH_MODE.param
PARAM_CA_BUNDLE = CA_BUNDLE.param
PARAM_OAUTH_CLIENT_ID = OAUTH_CLIENT_ID.param
PARAM_OAUTH_SECRET_REF = OAUTH_CLIENT_SECRET_REF.param
PARAM_OAUTH_KEY_REF = OAUTH_TOKEN_KEY_REF.param
PARAM_OAUTH_INSTALLATION = OAUTH_APP_INSTALLATION_ID.param
OPERATOR_OPTIONS = {s.name: s.option for s in OPERATOR_SETTINGS}
SECRET_OPTIONS = tuple(s.name for s in SECRET_SETTINGS)
