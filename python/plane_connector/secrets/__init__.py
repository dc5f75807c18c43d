"""Secret references: configuration holds *where* a secret lives, never the secret.

Reference forms (see ``ssot/secrets/registry.yaml`` for which secret may live where)::

    env:NAME                  an environment variable (CI / container secrets)
    keyring:service/name      the OS keychain through the ``keyring`` library
    vault:name                Supabase Vault: ``vault.decrypted_secrets`` over a PostgreSQL DSN
    file:/run/secrets/name    a Docker / Kubernetes secret file

Every error names the reference (which is not secret) and never the value. Resolved values are
plain ``str``; wrap them in :class:`Redacted` wherever they may end up in a repr or a log line.

Where a reference may point is the server operator's decision: a reference that a less trusted
party could write (an Odoo database setting) is resolved under a :class:`SecretPolicy` built from
the operator's options, which by default admits ``env:PLANE_*``, ``keyring:plane/*``,
``vault:plane_*`` and no ``file:`` at all, and never a reference the operator's own settings use.
References the operator gives directly (CLI flags, environment) resolve with ``policy=None``,
unrestricted but for one rule: the variables that configure this machinery
(:data:`MACHINERY_ENV`: ``PLANE_VAULT_DSN``, ``PLANE_SECRET_*``, …) are never resolved as secrets.

The package, by job: :mod:`.references` (schemes, :func:`parse`, :class:`SecretError`),
:mod:`.policy` (:class:`SecretPolicy`), :mod:`.resolvers` (:func:`resolve`), :mod:`.redaction`
(:func:`redact`, :func:`mask`, entropy) and :mod:`.cache` (:class:`SecretCache`); every name is
importable from ``plane_connector.secrets`` as before. ``RateLimitedLog`` lives in
:mod:`plane_connector.diagnostics` and is still importable from here.

The package's name is the standard library's too: modules of plane_connector that want the
standard one write ``import secrets`` (an absolute import, which never finds this package).
"""

from __future__ import annotations

from typing import Any

from plane_connector.secrets.cache import SecretCache
from plane_connector.secrets.policy import (
    _OPTION_OF as _OPTION_OF,
)
from plane_connector.secrets.policy import (
    DEFAULT_POLICY,
    MACHINERY_ENV,
    POLICY_OPTIONS,
    SETTING_OPTIONS,
    SecretPolicy,
)
from plane_connector.secrets.policy import (
    VAULT_DSN_ENV as VAULT_DSN_ENV,
)
from plane_connector.secrets.redaction import (
    SECRET_PATTERNS,
    Redacted,
    looks_like_secret,
    mask,
    redact,
    shannon_entropy,
)
from plane_connector.secrets.references import (
    SCHEMES,
    SecretError,
    SecretRef,
    parse,
)
from plane_connector.secrets.references import (
    target_looks_like_secret as target_looks_like_secret,
)
from plane_connector.secrets.resolvers import (
    _RESOLVERS as _RESOLVERS,
)
from plane_connector.secrets.resolvers import (
    KEYRING_TIMEOUT as KEYRING_TIMEOUT,
)
from plane_connector.secrets.resolvers import (
    KEYRING_TIMEOUT_ENV as KEYRING_TIMEOUT_ENV,
)
from plane_connector.secrets.resolvers import (
    dereference_dsn,
    resolve,
    resolve_redacted,
)

__all__ = [
    "DEFAULT_POLICY",
    "MACHINERY_ENV",
    "POLICY_OPTIONS",
    "SETTING_OPTIONS",
    "SCHEMES",
    "SECRET_PATTERNS",
    "RateLimitedLog",
    "Redacted",
    "SecretCache",
    "SecretError",
    "SecretPolicy",
    "SecretRef",
    "dereference_dsn",
    "looks_like_secret",
    "mask",
    "parse",
    "redact",
    "resolve",
    "resolve_redacted",
    "shannon_entropy",
]


def __getattr__(name: str) -> Any:
    # RateLimitedLog moved to plane_connector.diagnostics, which imports redact from here: read
    # on first use so that either module may be imported first.
    if name == "RateLimitedLog":
        from plane_connector.diagnostics import RateLimitedLog

        return RateLimitedLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
