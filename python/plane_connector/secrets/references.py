"""Secret references: the schemes, their syntax and the error every part of the package raises."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass

from plane_connector.secrets.redaction import (
    _PRIVATE_KEY,
    _UUID,
    SECRET_PATTERNS,
    _is_random_piece,
    _reads_as_noise,
    looks_like_secret,
    redact,
)

SCHEMES = ("env", "keyring", "vault", "file")


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
        or _reads_as_noise(part)
        for part in plain.split("/")
    )


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
