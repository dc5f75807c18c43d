"""Where a reference written by a less trusted party may point: :class:`SecretPolicy`."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from plane_connector.secrets.references import SCHEMES, SecretError, SecretRef, parse

VAULT_DSN_ENV = "PLANE_VAULT_DSN"


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


def _is_inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


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
