"""Reading the value behind a reference: env, file (plain or under a policy), keyring, vault."""

from __future__ import annotations

import errno
import importlib
import logging
import math
import os
import re
import stat
import threading
from typing import Any

from plane_connector.secrets.policy import (
    _OPTION_OF,
    VAULT_DSN_ENV,
    SecretPolicy,
    _is_inside,
    _refuse_machinery,
)
from plane_connector.secrets.redaction import Redacted, redact
from plane_connector.secrets.references import SecretError, SecretRef, parse

# The package's logger name, as before the split: operators' logging configs name it.
_log = logging.getLogger("plane_connector.secrets")


# How long a keyring: lookup may take, unlock prompt included (env override in seconds).
KEYRING_TIMEOUT = 20.0
KEYRING_TIMEOUT_ENV = "PLANE_KEYRING_TIMEOUT"


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


def _strip_one_newline(value: str) -> str:
    # `echo value > file` and most secret tooling append exactly one newline.
    if value.endswith("\r\n"):
        return value[:-2]
    if value.endswith("\n"):
        return value[:-1]
    return value


_RESOLVERS = {
    "env": _resolve_env,
    "file": _resolve_file,
    "keyring": _resolve_keyring,
    "vault": _resolve_vault,
}
