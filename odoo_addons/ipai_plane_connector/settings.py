"""The connector's settings: one table, and where each value may come from.

Every setting of the connector has one row in :data:`SETTINGS`; the row names its
``ir.config_parameter`` key, the odoo.conf option the server operator may fix it with, the
``res.config.settings`` field (when it is on Settings > Plane), whether it is a secret reference
(and then the operator's per-setting pattern option), its default and its validator.
``plane.connector._plane_config`` and the settings model (fields, read-only operator fields,
the validators) are driven by these rows, and tests hold the docs table to them: a new setting
is one new row (plus its field and view).

A row's name is also its key in ``_plane_config()``; the key, option and field spell it
``plane.<name>``, ``plane_<name>`` and ``plane_<name>`` (``tests/odoo/test_addon_static.py``
holds the table to that, and to being the only place these names are written).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from odoo.exceptions import UserError, ValidationError

from .paths import is_slug


class ConfigRefused(UserError):
    """A Plane setting cannot be used (a reference refused or unresolvable); the message names
    the reference and the rule, never a value."""


@dataclass(eq=False)
class Setting:
    """One row of the settings table (see the module docstring).

    Not frozen on purpose: tests point the default of ``base_url`` (Plane Cloud, the host an
    operator's secret pins when they set no ``plane_base_url``) at an emulator.
    """

    #: The key in ``plane.connector._plane_config()``.
    name: str
    #: The ``ir.config_parameter`` key a database administrator sets (Settings > Plane).
    param: str
    #: The ``res.config.settings`` field, when the setting is on the page.
    field: str | None = None
    #: The odoo.conf ``[options]`` name (or the environment, upper-cased) by which the server
    #: operator fixes the setting; theirs then wins and the page shows it read-only.
    option: str | None = None
    #: A secret reference (``env:…``, ``vault:…``): a database value must pass the operator's
    #: secret policy, and an operator value pins the base URL.
    secret_ref: bool = False
    #: The operator option with the full-reference patterns this setting's database reference
    #: must also match (issue 21.3); the wheel's ``secrets.SETTING_OPTIONS`` reads the same.
    allow_option: str | None = None
    #: Used when the parameter is unset or empty.
    default: str = ""
    #: ``validator(setting, label, value)`` raises when a database value may not be saved
    #: (``label``: the field's); a value the operator fixed is not checked (it is not used).
    validator: Callable[[Setting, str, str], None] | None = None


def check_web_url(setting: Setting, label: str, value: str) -> None:
    # It becomes the href of links in the tasks' forms: never a javascript: or data: URL.
    url = (value or "").strip()
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise UserError(f"{label}: give an http(s) address, e.g. https://app.plane.so.")


def check_workspace_slug(setting: Setting, label: str, value: str) -> None:
    slug = (value or "").strip()
    if slug and not is_slug(slug):
        raise ValidationError(
            f"{label}: only letters, digits, '-' and '_' (it is part of every "
            "request path), as in the workspace's URL: https://app.plane.so/<slug>/.")


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


def check_ca_bundle(setting: Setting, label: str, value: str) -> None:
    checked_ca_bundle(value)


def check_reference(setting: Setting, label: str, value: str) -> None:
    """A secret reference, or several (the webhook secret may list two while a new secret
    rolls out): each must parse and pass the operator's policy for this setting."""
    for one in (value or "").replace(",", " ").split():
        _check_reference(label, one)
        refusal = policy_refusal(label, one, setting.name)
        if refusal:
            raise ValidationError(refusal)


BASE_URL = Setting(
    "base_url", "plane.base_url", field="plane_base_url", option="plane_base_url",
    default="https://api.plane.so")
# Plane's web app, for "Open in Plane" links (Cloud: app.plane.so, while the API is api.plane.so).
WEB_URL = Setting(
    "web_url", "plane.web_url", field="plane_web_url", validator=check_web_url)
WORKSPACE_SLUG = Setting(
    "workspace_slug", "plane.workspace_slug", field="plane_workspace_slug",
    validator=check_workspace_slug)
API_KEY_REF = Setting(
    "api_key_ref", "plane.api_key_ref", field="plane_api_key_ref", option="plane_api_key_ref",
    secret_ref=True, allow_option="plane_secret_api_key_ref_allow", validator=check_reference)
WEBHOOK_SECRET_REF = Setting(
    "webhook_secret_ref", "plane.webhook_secret_ref", field="plane_webhook_secret_ref",
    option="plane_webhook_secret_ref", secret_ref=True,
    allow_option="plane_secret_webhook_secret_ref_allow", validator=check_reference)
# OAuth "Plane Apps" (Plane Cloud and commercial editions only; CE knows only API keys).
AUTH_MODE = Setting(
    "auth_mode", "plane.auth_mode", field="plane_auth_mode", default="api_key")
OAUTH_CLIENT_ID = Setting(
    "oauth_client_id", "plane.oauth_client_id", field="plane_oauth_client_id")
OAUTH_CLIENT_SECRET_REF = Setting(
    "oauth_client_secret_ref", "plane.oauth_client_secret_ref",
    field="plane_oauth_client_secret_ref", option="plane_oauth_client_secret_ref",
    secret_ref=True, allow_option="plane_secret_oauth_client_secret_ref_allow",
    validator=check_reference)
OAUTH_TOKEN_KEY_REF = Setting(
    "oauth_token_key_ref", "plane.oauth_token_key_ref", field="plane_oauth_token_key_ref",
    option="plane_oauth_token_key_ref", secret_ref=True,
    allow_option="plane_secret_oauth_token_key_ref_allow", validator=check_reference)
OAUTH_APP_INSTALLATION_ID = Setting(
    "oauth_app_installation_id", "plane.oauth_app_installation_id",
    field="plane_oauth_app_installation_id")
# Plane's per-key budget: 60/min by default, 300/min for a service token; the window is a
# parameter so that tests can run a time-scaled emulator through the real configuration path.
REQUESTS_PER_MINUTE = Setting("requests_per_minute", "plane.requests_per_minute", default="60")
RATE_WINDOW = Setting("rate_window", "plane.rate_window", default="60")
# Extra CAs (a PEM file on the server) for a self-hosted Plane behind an internal CA.
CA_BUNDLE = Setting(
    "ca_bundle", "plane.ca_bundle", field="plane_ca_bundle", option="plane_ca_bundle",
    validator=check_ca_bundle)

#: Fixed names of the OAuth client (not settings): the token row and the redirect route
#: registered with the Plane App.
OAUTH_TOKEN_NAME = "odoo"  # noqa: S105 - the token row's name
OAUTH_CALLBACK = "/plane/oauth/callback"

#: The table. Order matters only for display (the page lists the operator's values in it).
SETTINGS: tuple[Setting, ...] = (
    BASE_URL, WEB_URL, WORKSPACE_SLUG, API_KEY_REF, WEBHOOK_SECRET_REF, AUTH_MODE,
    OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET_REF, OAUTH_TOKEN_KEY_REF, OAUTH_APP_INSTALLATION_ID,
    REQUESTS_PER_MINUTE, RATE_WINDOW, CA_BUNDLE,
)
BY_NAME = {s.name: s for s in SETTINGS}
#: Settings the server operator may fix in odoo.conf ([options]) or the environment (the same
#: name upper-cased); an operator value wins over the database's and is shown read-only. A
#: reference given there is the operator's own and is not limited by the secret policy.
OPERATOR_SETTINGS = tuple(s for s in SETTINGS if s.option)
#: The operator's secret options. Once the operator sets any of them (odoo.conf [options] or the
#: environment, non-empty), the base URL is the operator's (plane_base_url, else Plane Cloud)
#: and the database's plane.base_url and plane.ca_bundle are ignored: every secret then
#: belongs to a deployment the operator manages, the webhook secret and the token key
#: included (the token key decrypts the access token that goes to the base URL). The
#: plane_secret_* policy options do not pin the host: they are how an operator lets each
#: database choose its own Plane and references.
SECRET_SETTINGS = tuple(s for s in OPERATOR_SETTINGS if s.secret_ref)


# -- where values and secrets may come from: the operator's decision


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
    for setting in SECRET_SETTINGS:
        refs.extend(operator_option(setting.option).replace(",", " ").split())
    return refs


def secret_policy(setting: str | None = None):
    """The operator's policy for references stored in a database (see SecretPolicy), for one
    setting (``api_key_ref``, …: its ``plane_secret_<setting>_allow`` patterns apply too)."""
    from odoo.tools import config
    from plane_connector import secrets

    names = [*secrets.POLICY_OPTIONS, *(s.allow_option for s in SETTINGS if s.allow_option)]
    options = {k: config.get(k) for k in names if config.get(k) not in (None, False, "")}
    try:
        policy = secrets.SecretPolicy.from_mapping(
            options, environ=os.environ, reserved_refs=operator_refs())
    except secrets.SecretError as exc:
        raise ConfigRefused(f"The server's secret policy options are invalid: {exc}") from None
    return policy if setting is None else policy.for_setting(setting)


def policy_refusal(label: str, ref: str, setting: str) -> str | None:
    """Why the operator's policy refuses a database reference for ``setting``, or None."""
    if not ref:
        return None
    from plane_connector import secrets as plane_secrets

    try:
        secret_policy(setting).check(ref)
    except plane_secrets.SecretError as exc:
        return f"{label}: {exc}"
    except UserError as exc:
        return f"{label}: {exc}"
    return None


def _check_reference(label: str, ref: str) -> None:
    """Refuse anything that is not a secret reference, including a secret pasted after a
    scheme (``env:plane_api_…``): it must never be stored. The message never echoes it."""
    try:
        from plane_connector import secrets as plane_secrets
    except ImportError:  # pragma: no cover - external_dependencies stops the install first
        return
    try:
        plane_secrets.parse(ref)
    except plane_secrets.SecretError as exc:
        raise ValidationError(f"{label}: {exc}") from None
