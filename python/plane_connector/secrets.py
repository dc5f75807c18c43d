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
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import fnmatch
import importlib
import itertools
import logging
import math
import os
import re
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

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
    """A secret reference is malformed, refused by the policy, or cannot be resolved.

    The message never holds a value: every message goes through :func:`redact` on the way in,
    so even a message built from a backend's error text (a driver echoing a DSN, a keyring
    backend quoting an entry) comes out scrubbed.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(redact(str(message)), *args)


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


#: Operator option names (odoo.conf ``[options]`` keys; the same names upper-cased are read from
#: the environment) and the :class:`SecretPolicy` field each sets.
POLICY_OPTIONS = {
    "plane_secret_env_allow": "env_allow",
    "plane_secret_keyring_allow": "keyring_allow",
    "plane_secret_vault_allow": "vault_allow",
    "plane_secret_file_roots": "file_roots",
    "plane_secret_file_max_size": "max_file_size",
    "plane_secret_file_group_readable": "file_group_readable",
}
_OPTION_OF = {v: k for k, v in POLICY_OPTIONS.items()}

#: Per-setting operator options: the full-reference patterns (``env:PLANE_API_KEY*``,
#: ``vault:plane_api_key_*``) a database reference for that setting must also match.
SETTING_OPTIONS = {
    setting: f"plane_secret_{setting}_allow"
    for setting in (
        "api_key_ref",
        "webhook_secret_ref",
        "oauth_client_secret_ref",
        "oauth_token_key_ref",
    )
}

#: Environment variables that configure the secret machinery itself (the vault DSN, the policy,
#: the keyring timeout, the operator's own references and hosts): never resolved as a secret,
#: whoever wrote the reference and whatever ``plane_secret_env_allow`` says. Read as one, the
#: vault DSN (with its password) would be sent to Plane's host as an API key.
MACHINERY_ENV = (
    VAULT_DSN_ENV,
    "PLANE_SECRET_*",
    "PLANE_KEYRING_*",
    "PLANE_*_REF",
    "PLANE_BASE_URL",
    "PLANE_CA_BUNDLE",
)


@dataclass(frozen=True)
class SecretPolicy:
    """Where references written by a less trusted party (a database admin) may point.

    Each ``*_allow`` is a tuple of ``fnmatch`` patterns (case-sensitive) over the target: the
    variable name, the keyring ``service/name``, the vault secret name; an empty tuple turns the
    scheme off. ``file_roots`` are absolute directories: a ``file:`` reference must resolve
    (symlinks followed) to a regular file inside one of them, at most ``max_file_size`` bytes,
    not readable or writable by group or others (group-readable when ``file_group_readable``).
    The default admits ``env:PLANE_*``, ``keyring:plane/*``, ``vault:plane_*`` and no file: the
    connector's own names, not every entry the server's vault or keychain can read.

    ``reserved``: references the operator's own settings use (and the vault DSN's reference); a
    database reference naming the same target (same variable, keyring entry, vault name, or
    file, through any symlink or hard link) is refused, so an admin cannot send the webhook
    secret or the token key to Plane as an API key. ``setting_allow``: per setting (``api_key_ref``,
    …; see :data:`SETTING_OPTIONS`) full-reference patterns a reference for that setting must
    match as well; :meth:`for_setting` gives the policy that applies them. Variables in
    :data:`MACHINERY_ENV` are always refused.

    Hashable and immutable, so it can key a cache and be shared across threads.
    """

    env_allow: tuple[str, ...] = ("PLANE_*",)
    keyring_allow: tuple[str, ...] = ("plane/*",)
    vault_allow: tuple[str, ...] = ("plane_*",)
    file_roots: tuple[str, ...] = ()
    max_file_size: int = 64 * 1024
    file_group_readable: bool = False
    reserved: tuple[str, ...] = ()
    setting_allow: tuple[tuple[str, tuple[str, ...]], ...] = ()
    setting: str | None = None

    def __post_init__(self) -> None:
        for name in ("env_allow", "keyring_allow", "vault_allow", "file_roots", "reserved"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise SecretError(f"secret policy: {name} must be a tuple of strings")
            object.__setattr__(self, name, tuple(str(v) for v in value))
        reserved = []
        for ref in self.reserved:
            # An operator reference that does not parse reserves nothing: it fails where the
            # operator uses it, with its own message.
            with contextlib.suppress(SecretError):
                reserved.append(str(parse(ref)))
        object.__setattr__(self, "reserved", tuple(sorted(set(reserved))))
        if isinstance(self.setting_allow, Mapping):
            object.__setattr__(self, "setting_allow", tuple(self.setting_allow.items()))
        object.__setattr__(
            self,
            "setting_allow",
            tuple(sorted((str(k), tuple(str(p) for p in v)) for k, v in self.setting_allow)),
        )
        roots = []
        for root in self.file_roots:
            if not os.path.isabs(root):
                raise SecretError(
                    f"secret policy: file root {root!r} is not an absolute path "
                    f"({_OPTION_OF['file_roots']})"
                )
            roots.append(os.path.normpath(root))
        object.__setattr__(self, "file_roots", tuple(roots))
        if not isinstance(self.max_file_size, int) or self.max_file_size < 1:
            raise SecretError("secret policy: max_file_size must be a positive number of bytes")

    @classmethod
    def from_mapping(
        cls,
        options: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        reserved_refs: Iterable[str] = (),
    ) -> SecretPolicy:
        """The policy from operator options: ``options`` (odoo.conf ``[options]``) first, then
        ``environ`` (the same names upper-cased, e.g. ``PLANE_SECRET_FILE_ROOTS``); a key set in
        neither keeps the default. Lists are comma- or whitespace-separated; ``none`` or an
        empty value means an empty list; for keyring/vault ``true``/``false`` mean ``*``/none.
        ``reserved_refs``: the operator's own references (refused to the database); the vault
        DSN (``PLANE_VAULT_DSN``) is added when it is a reference.
        """
        options = options or {}
        environ = environ or {}

        def option_value(option: str) -> Any:
            raw = options.get(option)
            return environ.get(option.upper()) if raw is None else raw

        kwargs: dict[str, Any] = {}
        for option, attr in POLICY_OPTIONS.items():
            raw = option_value(option)
            if raw is None:
                continue
            if attr == "max_file_size":
                kwargs[attr] = _parse_size(option, raw)
            elif attr == "file_group_readable":
                kwargs[attr] = _parse_bool(option, raw)
            else:
                kwargs[attr] = _parse_list(raw, boolean=attr in ("keyring_allow", "vault_allow"))
        settings = []
        for setting, option in SETTING_OPTIONS.items():
            raw = option_value(option)
            if raw is not None:
                patterns = _parse_list(raw, boolean=False)
                for pattern in patterns:
                    if pattern.partition(":")[0] not in SCHEMES:
                        raise SecretError(
                            f"secret policy: option {option}: {pattern!r} is not a reference "
                            "pattern (scheme:target, e.g. env:PLANE_API_KEY*)"
                        )
                settings.append((setting, patterns))
        kwargs["setting_allow"] = tuple(settings)
        # The vault DSN, when it is itself a reference, is the operator's as much as any.
        dsn = str(option_value("plane_vault_dsn") or "").strip()
        reserved = [dsn] if dsn.partition(":")[0] in ("env", "file", "keyring") else []
        return cls(reserved=tuple(reserved) + tuple(reserved_refs), **kwargs)

    def for_setting(self, setting: str) -> SecretPolicy:
        """This policy for the references of one setting (``api_key_ref``, …): its
        ``plane_secret_<setting>_allow`` patterns apply too."""
        return replace(self, setting=setting)

    def check(self, ref: str | SecretRef) -> SecretRef:
        """The parsed reference if this policy admits it; else :class:`SecretError` naming the
        reference and the rule (never a value). For ``file:`` this checks the path (inside a
        root, also after resolving symlinks); the file itself is checked when it is read."""
        parsed = parse(ref)
        _refuse_machinery(parsed)
        self._refuse_reserved(parsed)
        self._check_setting(parsed)
        if parsed.scheme == "file":
            self._file_root(parsed)
            return parsed
        patterns = {
            "env": self.env_allow,
            "keyring": self.keyring_allow,
            "vault": self.vault_allow,
        }[parsed.scheme]
        option = _OPTION_OF[f"{parsed.scheme}_allow"]
        if not patterns:
            raise SecretError(
                f"secret reference {parsed} refused: {parsed.scheme}: references are turned off "
                f"by the server operator (option {option})"
            )
        if not any(fnmatch.fnmatchcase(parsed.target, p) for p in patterns):
            what = {"env": "environment variable", "keyring": "keyring entry"}.get(
                parsed.scheme, "vault secret"
            )
            raise SecretError(
                f"secret reference {parsed} refused: the {what} must match "
                f"{' or '.join(patterns)} (set by the server operator, option {option})"
            )
        return parsed

    def _refuse_reserved(self, ref: SecretRef) -> None:
        if any(_same_target(ref, parse(mine)) for mine in self.reserved):
            raise SecretError(
                f"secret reference {ref} refused: the server operator's own settings use this "
                "secret; a reference stored in the database may not name it"
            )

    def _check_setting(self, ref: SecretRef) -> None:
        if self.setting is None:
            return
        patterns = dict(self.setting_allow).get(self.setting)
        if patterns is None:
            return
        option = SETTING_OPTIONS.get(self.setting, f"plane_secret_{self.setting}_allow")
        if not any(fnmatch.fnmatchcase(str(ref), p) for p in patterns):
            allowed = " or ".join(patterns) if patterns else "nothing (set by the operator only)"
            raise SecretError(
                f"secret reference {ref} refused: this setting must match {allowed} (set by the "
                f"server operator, option {option})"
            )

    def reserved_identities(self) -> frozenset[tuple[int, int]]:
        """(device, inode) of the reserved ``file:`` references that exist now."""
        found = set()
        for mine in self.reserved:
            parsed = parse(mine)
            if parsed.scheme == "file":
                with contextlib.suppress(OSError):
                    info = os.stat(parsed.target)
                    found.add((info.st_dev, info.st_ino))
        return frozenset(found)

    def allows(self, ref: str | SecretRef) -> bool:
        """True when :meth:`check` would pass."""
        try:
            self.check(ref)
        except SecretError:
            return False
        return True

    def describe(self) -> str:
        """One line for a settings screen: what references stored in the database may name."""
        parts = []
        for scheme, patterns in (
            ("env", self.env_allow),
            ("keyring", self.keyring_allow),
            ("vault", self.vault_allow),
        ):
            if not patterns:
                parts.append(f"no {scheme}:")
            else:
                parts.append(" or ".join(f"{scheme}:{p}" for p in patterns))
        roots = ", ".join(self.file_roots)
        parts.append(f"file: under {roots}" if roots else "no file:")
        settings = dict(self.setting_allow)
        if self.setting is not None and self.setting in settings:
            patterns = settings[self.setting]
            parts.append(f"{self.setting}: {' or '.join(patterns) if patterns else 'none'}")
        elif self.setting is None:
            for setting, patterns in self.setting_allow:
                parts.append(f"{setting}: {' or '.join(patterns) if patterns else 'none'}")
        if self.reserved:
            parts.append("not the operator's own references")
        return "; ".join(parts)

    def _file_root(self, ref: SecretRef) -> str:
        """The allowed root ``ref`` lies in, lexically and after resolving every symlink."""
        option = _OPTION_OF["file_roots"]
        if not self.file_roots:
            raise SecretError(
                f"secret reference {ref} refused: file: references are off until the server "
                f"operator names the allowed directories (option {option})"
            )
        path = ref.target
        if ".." in path.split("/") or os.path.normpath(path) != path.rstrip("/"):
            raise SecretError(
                f"secret reference {ref} refused: the path must be normalized (no '..', '.' or "
                "'//' parts)"
            )
        root = next((r for r in self.file_roots if _is_inside(path, r)), None)
        if root is None:
            raise SecretError(
                f"secret reference {ref} refused: the file is not under an allowed directory "
                f"({', '.join(self.file_roots)}; option {option})"
            )
        real_root = os.path.realpath(root)
        # Every symlink on the way must stay inside the root: Kubernetes' ..data links do; a link
        # a database admin points at /etc does not, wherever it sits on the path.
        current = root
        for part in os.path.relpath(path, root).split(os.sep):
            if part in ("", "."):
                continue
            current = os.path.join(current, part)
            if os.path.islink(current) and not _is_inside(os.path.realpath(current), real_root):
                raise SecretError(
                    f"secret reference {ref} refused: {current} is a symbolic link leading "
                    f"outside {root}"
                )
        if not _is_inside(os.path.realpath(path), real_root):
            raise SecretError(
                f"secret reference {ref} refused: the path resolves to a place outside {root}"
            )
        return root


#: The policy for references stored where a database admin can write them, when the operator
#: has set no option: env:PLANE_*, keyring:plane/*, vault:plane_*, no file:.
DEFAULT_POLICY = SecretPolicy()


def _refuse_machinery(ref: SecretRef) -> None:
    if ref.scheme == "env" and any(fnmatch.fnmatchcase(ref.target, p) for p in MACHINERY_ENV):
        raise SecretError(
            f"secret reference {ref} refused: {ref.target} configures the secret references "
            "themselves (vault DSN, policy, operator settings) and is never read as a secret"
        )


def _same_target(a: SecretRef, b: SecretRef) -> bool:
    """Whether two references name the same secret (as far as can be told from here)."""
    if a.scheme != b.scheme:
        return False
    if a.scheme == "env":
        # Windows' environment is case-insensitive.
        return a.target == b.target or (os.name == "nt" and a.target.upper() == b.target.upper())
    if a.scheme == "keyring":
        # Some backends (Windows Credential Manager) match entries case-insensitively.
        return a.target.casefold() == b.target.casefold()
    if a.scheme == "file":
        if os.path.realpath(a.target) == os.path.realpath(b.target):
            return True
        try:
            return os.path.samefile(a.target, b.target)  # a hard link, a bind mount
        except OSError:
            return False
    return a.target == b.target


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
_EXAMPLE = {
    "env": "env:PLANE_API_KEY",
    "keyring": "keyring:plane/api_key",
    "vault": "vault:plane_api_key",
    "file": "file:/run/secrets/plane_api_key",
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
    """``text`` with the given secret values, and anything shaped like a credential, blanked.

    The given values become ``***``. Then, whether or not the caller knew the value: Plane keys,
    webhook secrets and OAuth tokens keep their prefix (``plane_api_***``), private key blocks,
    ``Bearer``/``Basic`` credentials, ``password=``/``api_key:``-style assignments, the password
    of a URL and long high-entropy tokens (not UUIDs) become ``***``.
    """
    text = str(text)
    for secret in secrets:
        raw = secret.get() if isinstance(secret, Redacted) else secret
        if raw and len(raw) >= 4:
            text = text.replace(raw, "***")
    for pattern, repl in _REDACT_RULES:
        text = pattern.sub(repl, text)
    return _HIGH_ENTROPY_RUN.sub(_blank_random_run, text)


# Shapes blanked by redact() in any text. Order matters: a Bearer credential is blanked before
# the "authorization: value" rule sees it.
_REDACT_RULES: tuple[tuple[re.Pattern[str], Any], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        "[private key block: ***]",
    ),
    (re.compile(r"\b(plane_api_|plane_wh_)[A-Za-z0-9]{6,}"), r"\1***"),
    (
        re.compile(r"\b(pln_refresh_|pln_bot_|pln_)(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]{6,}"),
        r"\1***",
    ),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/\-]{6,}=*"), r"\1\2***"),
    (
        re.compile(
            r"(?i)\b((?:[a-z0-9]+[_\-])*(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey"
            r"|authorization|code[_\-]verifier))(['\"]?\s*[=:]\s*['\"]?)(?!\*\*\*)([^\s,;'\"&]+)"
        ),
        lambda m: (
            m.group(0)
            if _harmless_assignment(m.group(1), m.group(2), m.group(3))
            else f"{m.group(1)}{m.group(2)}***"
        ),
    ),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),
)
_HIGH_ENTROPY_RUN = re.compile(r"[A-Za-z0-9+/=_\-]{32,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _harmless_assignment(name: str, sep: str, value: str) -> bool:
    # "secret: true" or "token: expired" in prose is not a credential; a password always is.
    if re.search(r"(?i)passw|pwd", name) or "=" in sep:
        return False
    return len(value) < 8 or not any(c.isdigit() for c in value)


def _blank_random_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if _UUID.search(run) or not _is_random_run(run):
        return run
    return "***"


def _is_random_run(run: str) -> bool:
    # snake_case identifiers and paths are runs of short words; a key has one long random piece.
    pieces = re.split(r"[/_\-]+", run)
    return any(_is_random_piece(p) for p in pieces) and shannon_entropy(run) >= 3.5


def parse(ref: str | SecretRef) -> SecretRef:
    """Parse a reference string; raise :class:`SecretError` (never echoing a value) if invalid.

    A target shaped like a secret (``env:plane_api_<hex>``, ``vault:<random token>``) is refused
    too: it would otherwise be stored, logged and shown as if it were a harmless name.
    """
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
    if target_looks_like_secret(target):
        raise SecretError(
            f"the {scheme}: reference names something that looks like a secret value (not "
            "shown): store the value in a secret store and give its name, e.g. "
            f"{_EXAMPLE[scheme]}"
        )
    return SecretRef(scheme, target)


def target_looks_like_secret(target: str) -> bool:
    """True when the part after a scheme looks like a credential rather than a name or path."""
    if any(p.search(target) for _, p in SECRET_PATTERNS) or _PRIVATE_KEY.search(target):
        return True
    plain = _UUID.sub("uuid", target)  # Plane ids are UUIDs, and a UUID names, not hides
    if any(_is_random_piece(p) for p in re.split(r"[/_.\-:@]+", plain)):
        return True
    # A random token with separators in it (token_urlsafe) splits into short pieces; read as one
    # run it still looks like noise, so judge it whole, a little less eagerly. Path components
    # are judged apart: a directory such as mkdtemp's "tmp1a2b3c4d" is no part of a secret.
    return any(
        _is_random_piece(re.sub(r"[^A-Za-z0-9]+", "", part), min_switches=8)
        for part in plain.split("/")
    )


def _is_random_piece(piece: str, *, min_switches: int = 4) -> bool:
    """A run of 16+ letters and digits that reads as noise, not as a name.

    Names switch between letters and digits a few times (``PLANE_K8S_KEY_2024``) and their
    lowercase runs are words (``PlaneApiKey``); hex keeps switching between letters and digits,
    and base64 has single lowercase letters between capitals all over."""
    if len(piece) < 16:
        return False
    switches = sum(1 for a, b in itertools.pairwise(piece) if a.isdigit() != b.isdigit())
    if switches >= min_switches and shannon_entropy(piece) >= 3.0:
        return True
    if piece.lower() == piece or piece.upper() == piece:
        return False
    # CamelCase: one capital, then a lowercase word. Noise: lone lowercase letters and long
    # runs of capitals.
    odd = sum(1 for run in re.findall(r"[a-z]+", piece[1:]) if len(run) == 1)
    odd += sum(1 for run in re.findall(r"[A-Z]{3,}", piece))
    return odd >= 3


def resolve(
    ref: str | SecretRef, *, vault_dsn: str | None = None, policy: SecretPolicy | None = None
) -> str:
    """The secret value a reference points to.

    ``policy``: the operator's :class:`SecretPolicy` for references a less trusted party wrote
    (a database setting); it is checked before anything is read, and ``file:`` is then opened
    without following a symlink swapped in after the check. ``None`` (operator-given references:
    CLI flags, environment) resolves anything.

    ``vault_dsn`` (or env ``PLANE_VAULT_DSN``) is the PostgreSQL DSN holding Supabase Vault; it
    may itself be an ``env:``/``file:``/``keyring:`` reference (an operator setting, so it is
    not subject to ``policy``).
    """
    parsed = policy.check(ref) if policy is not None else parse(ref)
    _refuse_machinery(parsed)
    if parsed.scheme == "file" and policy is not None:
        value = _read_file_under_policy(parsed, policy)
    else:
        value = _RESOLVERS[parsed.scheme](parsed, vault_dsn)
    if not value:
        raise SecretError(f"secret reference {parsed} resolved to an empty value")
    _log.debug("resolved secret reference %s", parsed)
    return value


def resolve_redacted(
    ref: str | SecretRef, *, vault_dsn: str | None = None, policy: SecretPolicy | None = None
) -> Redacted:
    """Like :func:`resolve`, wrapped in :class:`Redacted`."""
    return Redacted(resolve(ref, vault_dsn=vault_dsn, policy=policy))


class SecretCache:
    """Resolved secrets kept for ``ttl`` seconds, per (reference, policy).

    For callers that resolve on every request (a webhook controller, a sync job): a vault or
    keyring round trip per request is slow and hammers the store. A failure is remembered for
    ``negative_ttl`` seconds only (so a reference that does not resolve is not retried by every
    request, and a fixed one works again quickly) and re-raised as a fresh :class:`SecretError`
    with the same message. Values are held as :class:`Redacted`. Thread-safe; the lock is not
    held while a store is queried, so two threads missing at once may both resolve.
    """

    def __init__(
        self,
        ttl: float = 300.0,
        *,
        negative_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        resolver: Callable[..., str] | None = None,
    ) -> None:
        if ttl < 0 or negative_ttl < 0:
            raise ValueError("ttl and negative_ttl must be >= 0")
        self.ttl = float(ttl)
        # A failure is never remembered longer than a success would be.
        self.negative_ttl = float(min(negative_ttl, ttl))
        self._clock = clock
        self._resolve = resolver or resolve
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, SecretPolicy | None, str | None], _CacheEntry] = {}

    def get(
        self,
        ref: str | SecretRef,
        policy: SecretPolicy | None = None,
        *,
        vault_dsn: str | None = None,
    ) -> Redacted:
        """The value behind ``ref`` (resolved under ``policy``), from the cache when fresh."""
        parsed = parse(ref)
        key = (str(parsed), policy, vault_dsn)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and now < entry.expires:
            if entry.error is not None:
                raise SecretError(entry.error)
            assert entry.value is not None
            return entry.value
        try:
            value = Redacted(self._resolve(parsed, vault_dsn=vault_dsn, policy=policy))
        except SecretError as exc:
            with self._lock:
                self._entries[key] = _CacheEntry(None, str(exc), now + self.negative_ttl)
            raise
        with self._lock:
            self._entries[key] = _CacheEntry(value, None, now + self.ttl)
        return value

    def invalidate(self, prefix: str = "") -> int:
        """Forget the entries whose reference starts with ``prefix`` (all with ``""``).

        Call it when a setting that holds a reference changes, or after a rotation. Returns
        how many entries were dropped."""
        with self._lock:
            doomed = [k for k in self._entries if k[0].startswith(prefix)]
            for key in doomed:
                del self._entries[key]
        return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"SecretCache(ttl={self.ttl}, entries={len(self)})"


@dataclass(frozen=True)
class _CacheEntry:
    value: Redacted | None
    error: str | None
    expires: float


class RateLimitedLog:
    """Logs at most one line per key every ``interval`` seconds, then says how many it dropped.

    A reference that fails on every webhook must not write one ERROR line per delivery. The
    message is formatted here and passed through :func:`redact` before it reaches the handler.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        self.logger = logger
        self.interval = float(interval)
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}  # key -> (time logged, suppressed since)

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` was logged within the interval.

        Returns True when a line was written."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.interval:
                self._last[key] = (last[0], last[1] + 1)
                return False
            suppressed = last[1] if last is not None else 0
            if last is None and len(self._last) >= self._max_keys:
                # Unbounded keys (one per reference a user typed) must not grow memory forever.
                self._last.pop(next(iter(self._last)))
            self._last[key] = (now, 0)
        text = msg % args if args else msg
        if suppressed:
            text += f" ({suppressed} more suppressed in the last {self.interval:.0f} s)"
        self.logger.log(level, "%s", redact(text))
        return True

    def error(self, key: str, msg: str, *args: object) -> bool:
        """:meth:`log` at ERROR."""
        return self.log(logging.ERROR, key, msg, *args)

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, key, msg, *args)


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
    return _strip_one_newline(value)


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


def _read_file_under_policy(ref: SecretRef, policy: SecretPolicy) -> str:
    """Read a ``file:`` secret the way a policy demands; see :class:`SecretPolicy`."""
    root = policy._file_root(ref)
    real_root = os.path.realpath(root)
    real = os.path.realpath(ref.target)
    rel = os.path.relpath(real, real_root)
    if not _is_inside(real, real_root) or ".." in rel.split(os.sep):
        raise SecretError(
            f"secret reference {ref} refused: the path resolves to a place outside {root}"
        )
    if rel == ".":
        raise SecretError(f"secret reference {ref} refused: it is a directory, not a regular file")
    # Walk down from the root one component at a time, never following a symlink: a link
    # swapped in between the check above and this open fails instead of being followed.
    directory = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    leaf = directory & ~getattr(os, "O_DIRECTORY", 0) | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    parts = rel.split(os.sep)
    fd = -1
    try:
        fd = os.open(real_root, directory)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            sub = os.open(part, (leaf if last else directory) | nofollow, dir_fd=fd)
            os.close(fd)
            fd = sub
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        raise SecretError(f"secret reference {ref}: {_open_failure(exc)}") from None
    try:
        return _read_checked(ref, fd, policy)
    finally:
        os.close(fd)


def _open_failure(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "file not found"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied reading the file"
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return "refused: a part of the path became a symbolic link while it was being opened"
    return f"cannot open the file ({exc.strerror or type(exc).__name__})"


def _read_checked(ref: SecretRef, fd: int, policy: SecretPolicy) -> str:
    info = os.fstat(fd)
    if policy.reserved and (info.st_dev, info.st_ino) in policy.reserved_identities():
        # The file opened is one of the operator's (a link made after the check, or one the
        # path check could not see): judged on the descriptor, not on the name.
        raise SecretError(
            f"secret reference {ref} refused: the server operator's own settings use this "
            "secret; a reference stored in the database may not name it"
        )
    if not stat.S_ISREG(info.st_mode):
        kind = _file_kind(info.st_mode)
        raise SecretError(f"secret reference {ref} refused: it is {kind}, not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    forbidden = 0o066 & ~(0o040 if policy.file_group_readable else 0)
    if mode & forbidden:
        who = "others" if mode & 0o006 else "its group"
        raise SecretError(
            f"secret reference {ref} refused: file mode {mode:04o} lets {who} read or write it "
            "(chmod 600 or 400; Kubernetes: defaultMode 0400)"
        )
    cap = policy.max_file_size
    too_big = SecretError(
        f"secret reference {ref} refused: the file is larger than {cap} bytes "
        f"(option {_OPTION_OF['max_file_size']})"
    )
    if info.st_size > cap:
        raise too_big
    # The size can grow after fstat (or be wrong on some filesystems): read at most cap + 1.
    os.set_blocking(fd, True)
    chunks: list[bytes] = []
    remaining = cap + 1
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    data = b"".join(chunks)
    if len(data) > cap:
        raise too_big
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"secret reference {ref}: the file is not UTF-8 text") from None
    return _strip_one_newline(value)


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "something else"


def _is_inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def _strip_one_newline(value: str) -> str:
    # `echo value > file` and most secret tooling append exactly one newline.
    if value.endswith("\r\n"):
        return value[:-2]
    if value.endswith("\n"):
        return value[:-1]
    return value


def _parse_list(raw: Any, *, boolean: bool) -> tuple[str, ...]:
    if isinstance(raw, (list, tuple)):
        items = [str(v).strip() for v in raw]
    else:
        text = str(raw).strip()
        if boolean and text.lower() in ("true", "yes", "1", "on"):
            return ("*",)
        if text.lower() in ("", "none", "false", "no", "0", "off"):
            return ()
        items = re.split(r"[,\s]+", text)
    return tuple(i for i in items if i)


def _parse_bool(option: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("", "false", "no", "0", "off", "none"):
        return False
    raise SecretError(f"secret policy: option {option} must be true or false")


def _parse_size(option: str, raw: Any) -> int:
    text = str(raw).strip().lower()
    factor = 1
    for suffix, mult in (("kib", 1024), ("k", 1024), ("mib", 1024 * 1024), ("m", 1024 * 1024)):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)].strip(), mult
            break
    try:
        size = int(text) * factor
    except ValueError:
        raise SecretError(
            f"secret policy: option {option} must be a size in bytes (e.g. 65536 or 64k)"
        ) from None
    if size < 1:
        raise SecretError(f"secret policy: option {option} must be at least 1 byte")
    return size


_RESOLVERS = {
    "env": _resolve_env,
    "file": _resolve_file,
    "keyring": _resolve_keyring,
    "vault": _resolve_vault,
}
