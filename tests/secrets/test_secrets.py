"""Secret references against real backends: environment, files, the OS keychain (gnome-keyring's
Secret Service) and a PostgreSQL database shaped like Supabase Vault."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets as pysecrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import plane_connector
import pytest
from keychain import (
    SecretService,
    current_backend,
    prompter_comes_up,
    running_secret_service,
    secret_service_unavailable,
    x_display,
)
from plane_connector import secrets
from plane_connector.secrets import Redacted, SecretError, SecretRef


def fake_api_key() -> str:
    # Built at runtime so the secrets guard never sees a literal credential in the tree.
    return "plane_api_" + pysecrets.token_hex(16)


def assert_hidden(exc: BaseException, value: str) -> None:
    assert value not in str(exc)
    assert value not in repr(exc)
    assert value not in repr(exc.args)


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scheme", "target"),
    [
        ("env:PLANE_API_KEY", "env", "PLANE_API_KEY"),
        ("  env:PLANE_API_KEY\n", "env", "PLANE_API_KEY"),
        ("keyring:plane/api_key", "keyring", "plane/api_key"),
        ("keyring:odoo/prod/plane_api_key", "keyring", "odoo/prod/plane_api_key"),
        ("vault:plane_api_key", "vault", "plane_api_key"),
        ("file:/run/secrets/plane_api_key", "file", "/run/secrets/plane_api_key"),
    ],
)
def test_parse_accepts_each_form(text: str, scheme: str, target: str) -> None:
    ref = secrets.parse(text)
    assert ref == SecretRef(scheme, target)
    assert str(ref) == f"{scheme}:{target}"


def test_keyring_parts_split_on_last_slash() -> None:
    assert secrets.parse("keyring:odoo/prod/api").keyring_parts == ("odoo/prod", "api")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty secret reference"),
        ("env:", "expected env:NAME"),
        ("env:1BAD-NAME", "expected env:NAME"),
        ("keyring:no_slash", "keyring:service/name"),
        ("keyring:/name", "keyring:service/name"),
        ("keyring:service/", "keyring:service/name"),
        ("vault:", "vault:name"),
        ("file:relative/path", "absolute path"),
        ("vualt:plane", "unknown secret reference scheme 'vualt' (did you mean vault:?)"),
        ("Env:PLANE_API_KEY", "did you mean env:?"),
        ("hunter:2", "not a secret reference"),
        ("PLANE_API_KEY", "not a secret reference"),
    ],
)
def test_parse_rejects_malformed(text: str, needle: str) -> None:
    with pytest.raises(SecretError) as info:
        secrets.parse(text)
    assert needle in str(info.value)


def test_password_with_a_colon_is_not_echoed() -> None:
    with pytest.raises(SecretError) as info:
        secrets.parse("hunter:two words")  # not a scheme typo: may be the head of a password
    assert "hunter" not in str(info.value)


def test_bare_secret_value_is_rejected_without_echo() -> None:
    value = fake_api_key()
    with pytest.raises(SecretError) as info:
        secrets.parse(value)
    assert "looks like a secret value" in str(info.value)
    assert "env:PLANE_API_KEY" in str(info.value)  # tells the user what to write instead
    assert_hidden(info.value, value)


def test_random_token_without_scheme_is_rejected_without_echo() -> None:
    value = pysecrets.token_urlsafe(32)
    with pytest.raises(SecretError) as info:
        secrets.resolve(value)
    assert_hidden(info.value, value)


def test_secret_pasted_behind_a_scheme_is_not_echoed() -> None:
    value = fake_api_key()
    with pytest.raises(SecretError) as info:
        secrets.parse(f"keyring:{value}")  # no slash: malformed, and the tail is a key
    assert "not shown" in str(info.value)
    assert_hidden(info.value, value)


def test_secret_error_is_a_config_error() -> None:
    import plane_connector

    assert issubclass(SecretError, plane_connector.ConfigError)


# --- env: ------------------------------------------------------------------------------------


def test_env_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    value = fake_api_key()
    monkeypatch.setenv("PLANE_TEST_SECRET_ENV", value)
    assert secrets.resolve("env:PLANE_TEST_SECRET_ENV") == value


def test_env_missing_names_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANE_TEST_SECRET_MISSING", raising=False)
    with pytest.raises(SecretError, match="env:PLANE_TEST_SECRET_MISSING.*is not set"):
        secrets.resolve("env:PLANE_TEST_SECRET_MISSING")


def test_env_empty_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANE_TEST_SECRET_EMPTY", "")
    with pytest.raises(SecretError, match="env:PLANE_TEST_SECRET_EMPTY resolved to an empty"):
        secrets.resolve("env:PLANE_TEST_SECRET_EMPTY")


# --- file: -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_file_strips_exactly_one_trailing_newline(tmp_path: Path, ending: str) -> None:
    value = fake_api_key()
    path = tmp_path / "plane_api_key"
    path.write_bytes((value + ending).encode())
    assert secrets.resolve(f"file:{path}") == value


def test_file_keeps_inner_and_second_newline(tmp_path: Path) -> None:
    path = tmp_path / "multi"
    path.write_text("line1\nline2\n\n")
    assert secrets.resolve(f"file:{path}") == "line1\nline2\n"


def test_file_missing(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="file not found") as info:
        secrets.resolve(f"file:{tmp_path / 'nope'}")
    assert str(tmp_path / "nope") in str(info.value)


@pytest.mark.skipif(
    os.geteuid() == 0 if hasattr(os, "geteuid") else True,
    reason="root reads any file, so a permission error cannot be provoked",
)
def test_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "locked"
    path.write_text("x" * 40)
    path.chmod(0)
    with pytest.raises(SecretError, match="permission denied"):
        secrets.resolve(f"file:{path}")


def test_file_unreadable_as_unprivileged_user(tmp_path: Path) -> None:
    # As root (CI containers) drop to nobody in a child process to exercise the real EACCES path.
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("covered by test_file_unreadable when not root")
    import subprocess

    path = tmp_path / "locked"
    path.write_text(fake_api_key())
    path.chmod(0o600)
    tmp_path.chmod(0o755)
    code = (
        "import os\n"
        "from plane_connector import secrets\n"
        # Import first: the interpreter's stdlib may live under a root-only home directory.
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        f"    secrets.resolve('file:{path}')\n"
        "except secrets.SecretError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "permission denied" in out.stdout
    assert path.read_text() not in out.stdout + out.stderr


def test_file_is_directory(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="is a directory"):
        secrets.resolve(f"file:{tmp_path}")


def test_file_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_text("\n")
    with pytest.raises(SecretError, match="empty value"):
        secrets.resolve(f"file:{path}")


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SecretError, match="not UTF-8"):
        secrets.resolve(f"file:{path}")


# --- keyring: --------------------------------------------------------------------------------


# These run against the real OS keychain: gnome-keyring's Secret Service (see conftest.py).


def _stored_items(service: SecretService, name: str) -> list[Any]:
    collection = service.default_collection()
    with contextlib.closing(collection.connection):
        return [
            (item.get_label(), item.get_secret())
            for item in collection.search_items({"service": "plane-test", "username": name})
        ]


def test_keyring_resolves_from_the_os_keychain(os_keyring: SecretService) -> None:
    import keyring

    value = fake_api_key()
    keyring.set_password("plane-test", "api_key", value)
    # Really held by gnome-keyring: read back over the Secret Service API, not through keyring.
    assert [secret for _, secret in _stored_items(os_keyring, "api_key")] == [value.encode()]
    assert secrets.resolve("keyring:plane-test/api_key") == value


def test_keyring_resolves_what_secret_tool_stored(os_keyring: SecretService) -> None:
    # How an operator puts the key into the keychain by hand (libsecret's secret-tool).
    if not shutil.which("secret-tool"):
        secret_service_unavailable("secret-tool not found (Debian package libsecret-tools)")
    value = fake_api_key()
    subprocess.run(
        ["secret-tool", "store", "--label=Plane API key", "service", "plane-test",
         "username", "by_hand"],
        input=value, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert _stored_items(os_keyring, "by_hand") == [("Plane API key", value.encode())]
    assert secrets.resolve("keyring:plane-test/by_hand") == value


def test_keyring_missing_entry(os_keyring: SecretService) -> None:
    with pytest.raises(
        SecretError, match="keyring:plane-test/absent: no such entry in the keyring "
        r"\(SecretService Keyring\)",
    ):  # fmt: skip
        secrets.resolve("keyring:plane-test/absent")


def test_keyring_locked_without_a_prompter(
    lockable_keyring: SecretService, caplog: pytest.LogCaptureFixture
) -> None:
    # A headless server: the collection is locked and nothing can ask for its password.
    import keyring

    value = fake_api_key()
    keyring.set_password("plane-test", "api_key", value)
    collection = lockable_keyring.default_collection()
    collection.lock()
    assert collection.is_locked()
    caplog.set_level(logging.DEBUG)
    ref = "keyring:plane-test/api_key"
    with pytest.raises(SecretError, match=f"{ref}: the keyring is locked") as info:
        secrets.resolve(ref)
    assert_hidden(info.value, value)
    assert value not in caplog.text


@pytest.mark.timeout(120)  # the old code waited for the prompt for ever: this fails, not hangs
def test_keyring_locked_prompt_nobody_answers_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A desktop session: the unlock prompt (gcr-prompter) really opens on an X display, and
    # nobody types the password. The lookup gives up after PLANE_KEYRING_TIMEOUT.
    with (
        x_display(tmp_path) as display,
        running_secret_service(display=display) as service,
        current_backend(),
    ):
        import keyring

        value = fake_api_key()
        keyring.set_password("plane-test", "api_key", value)
        service.default_collection().lock()
        monkeypatch.setenv("PLANE_KEYRING_TIMEOUT", "2")
        caplog.set_level(logging.DEBUG)
        with pytest.raises(SecretError, match="did not answer within 2 s") as info:
            secrets.resolve("keyring:plane-test/api_key")
        # The wait was for a real prompt: gcr-prompter is on the bus, showing its dialog (on a
        # loaded machine it may come up after the lookup gave up, the daemon still waits for it).
        assert prompter_comes_up(service)
        assert_hidden(info.value, value)
        assert value not in caplog.text


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "inf", "nan"])
def test_keyring_timeout_setting_is_checked(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANE_KEYRING_TIMEOUT", raw)
    with pytest.raises(SecretError, match="PLANE_KEYRING_TIMEOUT must be a positive number"):
        secrets.resolve("keyring:plane-test/api_key")


def test_keyring_backend_failure_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(SecretError, match="keyring backend failed \\(NoKeyringError\\)"):
            secrets.resolve("keyring:plane/api_key")
    finally:
        keyring.set_keyring(previous)


def test_keyring_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # makes `import keyring` raise
    with pytest.raises(SecretError, match="'keyring' package is not installed"):
        secrets.resolve("keyring:plane/api_key")


# --- vault: ----------------------------------------------------------------------------------


def test_vault_resolves(vault: object) -> None:
    value = fake_api_key()
    vault.put("plane_api_key_t1", value)  # type: ignore[attr-defined]
    assert secrets.resolve("vault:plane_api_key_t1", vault_dsn=vault.dsn) == value  # type: ignore[attr-defined]


def test_vault_dsn_from_environment(vault: object, monkeypatch: pytest.MonkeyPatch) -> None:
    value = fake_api_key()
    vault.put("plane_api_key_t2", value)  # type: ignore[attr-defined]
    monkeypatch.setenv("PLANE_VAULT_DSN", vault.dsn)  # type: ignore[attr-defined]
    assert secrets.resolve("vault:plane_api_key_t2") == value


def test_vault_dsn_may_be_a_reference(vault: object, tmp_path: Path) -> None:
    value = fake_api_key()
    vault.put("plane_api_key_t3", value)  # type: ignore[attr-defined]
    dsn_file = tmp_path / "vault_dsn"
    dsn_file.write_text(vault.dsn + "\n")  # type: ignore[attr-defined]
    assert secrets.resolve("vault:plane_api_key_t3", vault_dsn=f"file:{dsn_file}") == value


def test_vault_missing_name(vault: object) -> None:
    with pytest.raises(SecretError, match="vault:absent_secret: no secret with that name"):
        secrets.resolve("vault:absent_secret", vault_dsn=vault.dsn)  # type: ignore[attr-defined]


def test_vault_undecryptable(vault: object) -> None:
    value = fake_api_key()
    vault.put("plane_key_lost", value, key_lost=True)  # type: ignore[attr-defined]
    with pytest.raises(SecretError, match="could not decrypt") as info:
        secrets.resolve("vault:plane_key_lost", vault_dsn=vault.dsn)  # type: ignore[attr-defined]
    assert_hidden(info.value, value)


def test_vault_without_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANE_VAULT_DSN", raising=False)
    with pytest.raises(SecretError, match="vault:x: no vault database configured"):
        secrets.resolve("vault:x")


def test_vault_database_without_vault_schema(admin_dsn: str) -> None:
    with pytest.raises(SecretError, match="no vault.decrypted_secrets view"):
        secrets.resolve("vault:x", vault_dsn=admin_dsn)


def test_vault_unreachable_database_hides_the_password() -> None:
    password = pysecrets.token_hex(12)
    # Port 1 on loopback: nothing listens, connection is refused at once.
    dsn = f"postgresql://plane:{password}@127.0.0.1:1/db"
    with pytest.raises(SecretError, match="cannot connect to the vault database") as info:
        secrets.resolve("vault:x", vault_dsn=dsn)
    assert_hidden(info.value, password)


# --- helpers ---------------------------------------------------------------------------------


def test_redacted_never_shows_the_value() -> None:
    value = fake_api_key()
    wrapped = secrets.Redacted(value)
    assert wrapped.get() == value
    for text in (repr(wrapped), str(wrapped), f"{wrapped}", repr([wrapped]), repr({"k": wrapped})):
        assert value not in text
    assert wrapped == Redacted(value)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(wrapped)


def test_resolve_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    value = fake_api_key()
    monkeypatch.setenv("PLANE_TEST_SECRET_R", value)
    assert secrets.resolve_redacted("env:PLANE_TEST_SECRET_R").get() == value


def test_mask_and_redact() -> None:
    value = fake_api_key()
    assert secrets.mask(value) == f"plane_api_…{value[-4:]}"
    assert secrets.mask("short") == "***"
    assert secrets.redact(f"a {value} b {value}", value, None) == "a *** b ***"


def test_resolve_does_not_log_the_value(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    value = fake_api_key()
    monkeypatch.setenv("PLANE_TEST_SECRET_LOG", value)
    with caplog.at_level("DEBUG"):
        secrets.resolve("env:PLANE_TEST_SECRET_LOG")
    assert "env:PLANE_TEST_SECRET_LOG" in caplog.text
    assert value not in caplog.text


def test_modules_that_import_secrets_get_the_standard_librarys() -> None:
    # plane_connector.secrets shares its name with the standard library's module: a module of the
    # wheel that writes `import secrets` (token_hex, compare_digest) must get the standard one.
    import ast
    import importlib

    package = Path(plane_connector.__file__).parent
    users = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                users += [
                    (path, alias.asname or alias.name) for alias in node.names
                    if alias.name == "secrets"
                ]  # fmt: skip
    assert users, "no module imports the standard library's secrets: the check checks nothing"
    for path, bound in users:
        rel = path.relative_to(package.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        assert vars(importlib.import_module(name))[bound] is pysecrets, name
