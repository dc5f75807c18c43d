"""Secret references: configuration holds *where* a secret lives, never the secret.

Reference forms (see ``ssot/secrets/registry.yaml`` for which secret may live where)::

    env:NAME                  an environment variable (CI / container secrets)
    keyring:service/name      the OS keychain through the ``keyring`` library
    vault:name                Supabase Vault: ``vault.decrypted_secrets`` over a PostgreSQL DSN
    file:/run/secrets/name    a Docker / Kubernetes secret file

Every error names the reference (which is not secret) and never the value. Resolved values are
plain ``str``; wrap them in :class:`Redacted` wherever they may end up in a repr or a log line.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import math
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCHEMES",
    "SECRET_PATTERNS",
    "Redacted",
    "SecretError",
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

_log = logging.getLogger(__name__)

SCHEMES = ("env", "keyring", "vault", "file")
VAULT_DSN_ENV = "PLANE_VAULT_DSN"
# How long a keyring: lookup may take, unlock prompt included (env override in seconds).
KEYRING_TIMEOUT = 20.0
KEYRING_TIMEOUT_ENV = "PLANE_KEYRING_TIMEOUT"


def _config_error_base() -> type[Exception]:
    # ConfigError lives in plane_connector._errors (pure Python, importable without the
    # extension); fall back to ValueError on an older tree so secrets never fail to import.
    try:
        from plane_connector._errors import ConfigError
    except ImportError:
        return ValueError
    return ConfigError


class SecretError(_config_error_base()):  # type: ignore[misc]
    """A secret reference is malformed or cannot be resolved. The message never holds a value."""


@dataclass(frozen=True)
class SecretRef:
    """A parsed reference; ``str(ref)`` is the canonical form and is safe to log."""

    scheme: str
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"

    @property
    def keyring_parts(self) -> tuple[str, str]:
        """(service, username) of a ``keyring:`` reference."""
        service, _, name = self.target.rpartition("/")
        return service, name


class Redacted:
    """Holds a secret value; its repr and str are ``***`` so it cannot leak by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret value itself; call this only at the point of use."""
        return self._value

    def __repr__(self) -> str:
        return "Redacted('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Redacted) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Redacted", self._value))

    def __reduce__(self) -> Any:
        # Pickling (multiprocessing, caches) would copy the value somewhere we do not control.
        raise TypeError("Redacted secrets cannot be pickled")


# Well-known Plane credential shapes. The guard uses the same table for its diff scan.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Plane API key", re.compile(r"plane_api_[0-9a-f]{32}")),
    ("Plane webhook secret", re.compile(r"plane_wh_[0-9a-f]{32}")),
    # OAuth access / refresh / bot tokens: pln_, pln_refresh_, pln_bot_ + a random tail. A digit
    # is required so identifiers such as pln_refresh_token_value do not count.
    (
        "Plane OAuth token",
        re.compile(r"\bpln_(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]{20,}"),
    ),
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WELL_FORMED = {
    "env": lambda t: bool(_ENV_NAME.match(t)),
    "keyring": lambda t: all(t.rpartition("/")[::2]) and "/" in t,
    "vault": lambda t: bool(t) and not any(c.isspace() for c in t),
    "file": os.path.isabs,
}
_EXPECTED = {
    "env": "env:NAME (letters, digits, underscore)",
    "keyring": "keyring:service/name",
    "vault": "vault:name (the secret's name in vault.secrets)",
    "file": "an absolute path, e.g. file:/run/secrets/plane_api_key",
}


def looks_like_secret(value: str) -> bool:
    """True for strings shaped like a credential (known Plane formats, keys, long random tokens)."""
    if any(p.search(value) for _, p in SECRET_PATTERNS) or _PRIVATE_KEY.search(value):
        return True
    token = value.strip()
    if len(token) < 20 or any(c.isspace() for c in token):
        return False
    has_digit = any(c.isdigit() for c in token)
    has_alpha = any(c.isalpha() for c in token)
    return has_digit and has_alpha and shannon_entropy(token) >= 3.5


def shannon_entropy(value: str) -> float:
    """Bits of entropy per character of ``value``."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def mask(value: str) -> str:
    """A display form that identifies a secret without revealing it: known prefix + last 4."""
    for prefix in ("plane_api_", "plane_wh_", "pln_refresh_", "pln_bot_", "pln_"):
        if value.startswith(prefix) and len(value) > len(prefix) + 8:
            return f"{prefix}…{value[-4:]}"
    if len(value) <= 8:
        return "***"
    return f"…{value[-4:]}"


def redact(text: str, *secrets: str | Redacted | None) -> str:
    """``text`` with every occurrence of the given secret values replaced by ``***``."""
    for secret in secrets:
        raw = secret.get() if isinstance(secret, Redacted) else secret
        if raw and len(raw) >= 4:
            text = text.replace(raw, "***")
    return text


def parse(ref: str | SecretRef) -> SecretRef:
    """Parse a reference string; raise :class:`SecretError` (never echoing a value) if invalid."""
    if isinstance(ref, SecretRef):
        return ref
    if not isinstance(ref, str):
        raise SecretError(f"a secret reference must be a string, not {type(ref).__name__}")
    text = ref.strip()
    if not text:
        raise SecretError("empty secret reference (expected env:, keyring:, vault: or file:)")
    scheme, sep, target = text.partition(":")
    if not sep or scheme not in SCHEMES:
        raise SecretError(_not_a_reference(text, scheme if sep else None))
    if not _WELL_FORMED[scheme](target):
        # Never echoed: what follows the scheme may be a pasted secret.
        raise SecretError(
            f"malformed {scheme}: reference (not shown, it may hold a secret): "
            f"expected {_EXPECTED[scheme]}"
        )
    return SecretRef(scheme, target)


def resolve(ref: str | SecretRef, *, vault_dsn: str | None = None) -> str:
    """The secret value a reference points to.

    ``vault_dsn`` (or env ``PLANE_VAULT_DSN``) is the PostgreSQL DSN holding Supabase Vault; it
    may itself be an ``env:``/``file:``/``keyring:`` reference.
    """
    parsed = parse(ref)
    resolver = _RESOLVERS[parsed.scheme]
    value = resolver(parsed, vault_dsn)
    if not value:
        raise SecretError(f"secret reference {parsed} resolved to an empty value")
    _log.debug("resolved secret reference %s", parsed)
    return value


def resolve_redacted(ref: str | SecretRef, *, vault_dsn: str | None = None) -> Redacted:
    """Like :func:`resolve`, wrapped in :class:`Redacted`."""
    return Redacted(resolve(ref, vault_dsn=vault_dsn))


def _not_a_reference(text: str, scheme: str | None) -> str:
    hint = (
        "use a reference such as env:PLANE_API_KEY, keyring:plane/api_key, vault:name "
        "or file:/run/secrets/name"
    )
    if looks_like_secret(text):
        return (
            f"this looks like a secret value, not a reference: store it in a secret store, {hint}"
        )
    # Echo the part before ":" only when it is a near-miss of a real scheme (a typo): anything
    # else could be the head of a pasted password.
    close = difflib.get_close_matches((scheme or "").lower(), SCHEMES, n=1, cutoff=0.6)
    if scheme and close:
        return f"unknown secret reference scheme {scheme!r} (did you mean {close[0]}:?): {hint}"
    return f"not a secret reference: {hint}"


def _resolve_env(ref: SecretRef, _dsn: str | None) -> str:
    value = os.environ.get(ref.target)
    if value is None:
        raise SecretError(f"secret reference {ref}: environment variable {ref.target} is not set")
    return value


def _resolve_file(ref: SecretRef, _dsn: str | None) -> str:
    try:
        with open(ref.target, encoding="utf-8") as fh:
            value = fh.read()
    except FileNotFoundError:
        raise SecretError(f"secret reference {ref}: file not found") from None
    except PermissionError:
        raise SecretError(f"secret reference {ref}: permission denied reading the file") from None
    except IsADirectoryError:
        raise SecretError(f"secret reference {ref}: is a directory, not a file") from None
    except UnicodeDecodeError:
        raise SecretError(f"secret reference {ref}: the file is not UTF-8 text") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SecretError(f"secret reference {ref}: cannot read the file ({reason})") from None
    # `echo value > file` and most secret tooling append exactly one newline.
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    return value


def _resolve_keyring(ref: SecretRef, _dsn: str | None) -> str:
    try:
        keyring = importlib.import_module("keyring")
    except ImportError:
        raise SecretError(
            f"secret reference {ref}: the 'keyring' package is not installed "
            "(pip install keyring, or plane_connector[keyring])"
        ) from None
    service, name = ref.keyring_parts
    timeout = _keyring_timeout()
    try:
        value = _bounded(keyring.get_password, service, name, timeout=timeout)
    except TimeoutError:
        raise SecretError(
            f"secret reference {ref}: the keyring did not answer within {timeout:g} s (is it "
            f"locked, waiting for someone to type its password? set {KEYRING_TIMEOUT_ENV} to "
            "wait longer)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any backend failure becomes one clear error
        if type(exc).__name__ == "KeyringLocked":
            raise SecretError(
                f"secret reference {ref}: the keyring is locked and was not unlocked (unlock it, "
                "e.g. by logging in to the desktop session, or use an env:/file:/vault: reference)"
            ) from None
        raise SecretError(
            f"secret reference {ref}: the keyring backend failed ({type(exc).__name__})"
        ) from None
    if value is None:
        current = keyring.get_keyring()
        # keyring's display name ("SecretService Keyring"); a bare class name is often "Keyring".
        backend = getattr(current, "name", None) or type(current).__name__
        raise SecretError(f"secret reference {ref}: no such entry in the keyring ({backend})")
    return str(value)


def _keyring_timeout() -> float:
    raw = os.environ.get(KEYRING_TIMEOUT_ENV, "").strip()
    if not raw:
        return KEYRING_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise SecretError(f"{KEYRING_TIMEOUT_ENV} must be a positive number of seconds")
    return seconds


def _bounded(call: Any, *args: Any, timeout: float) -> Any:
    """``call(*args)``, or TimeoutError after ``timeout`` seconds.

    A locked keychain asks its prompter for the password (gnome-keyring's gcr-prompter, macOS
    Keychain's dialog), and the keyring backends wait for the answer without a time limit: on a
    server nobody answers, and the Odoo worker would hang. The call runs in a daemon thread so a
    prompt that is never answered cannot hold up interpreter exit either (a ThreadPoolExecutor
    would be joined at exit); that thread ends when the prompt is answered or dismissed.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="plane-keyring-lookup", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _resolve_vault(ref: SecretRef, dsn: str | None) -> str:
    dsn = dsn or os.environ.get(VAULT_DSN_ENV)
    if not dsn:
        raise SecretError(
            f"secret reference {ref}: no vault database configured (set {VAULT_DSN_ENV} "
            "to the PostgreSQL DSN of the Supabase project)"
        )
    dsn = dereference_dsn(dsn)
    try:
        psycopg2 = importlib.import_module("psycopg2")
    except ImportError:
        raise SecretError(
            f"secret reference {ref}: the 'psycopg2' package is not installed "
            "(pip install psycopg2-binary, or plane_connector[postgres])"
        ) from None
    try:
        conn = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.Error as exc:
        raise SecretError(
            f"secret reference {ref}: cannot connect to the vault database ({_pg_reason(exc, dsn)})"
        ) from None
    try:
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = %s LIMIT 2",
                (ref.target,),
            )
            rows = cur.fetchall()
    except psycopg2.Error as exc:
        if getattr(exc, "pgcode", None) in ("42P01", "3F000"):  # undefined table / schema
            reason = "the database has no vault.decrypted_secrets view (is Supabase Vault enabled?)"
        else:
            reason = _pg_reason(exc, dsn)
        raise SecretError(f"secret reference {ref}: vault query failed: {reason}") from None
    finally:
        conn.close()
    if not rows:
        raise SecretError(f"secret reference {ref}: no secret with that name in the vault")
    if len(rows) > 1:
        raise SecretError(f"secret reference {ref}: more than one vault secret has that name")
    value = rows[0][0]
    if value is None:
        raise SecretError(
            f"secret reference {ref}: the vault could not decrypt the secret (key missing?)"
        )
    return str(value)


def dereference_dsn(dsn: str) -> str:
    """``dsn`` itself, or the value it points to when it is an env:/file:/keyring: reference."""
    scheme = dsn.partition(":")[0]
    if scheme in ("env", "file", "keyring"):
        return resolve(dsn)
    return dsn


def _pg_reason(exc: Exception, dsn: str) -> str:
    # libpq messages name host, port and user, not the password; scrub the DSN anyway in case a
    # driver ever echoes it.
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = redact(first_line, dsn)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", text, flags=re.IGNORECASE)


_RESOLVERS = {
    "env": _resolve_env,
    "file": _resolve_file,
    "keyring": _resolve_keyring,
    "vault": _resolve_vault,
}
