"""`plane-connector guard` against throwaway git repositories: planted secrets, a dropped
registry entry and a dropped delivery_id constraint each fail, naming file and line."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import GitRepo

Run = Callable[..., tuple[int, str]]
NewRepo = Callable[[str], "GitRepo"]
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

# Every credential below is generated at run time and written only into the temporary repository,
# so this file holds no literal secret for the guard to find in our own tree.


def api_key() -> str:
    return "plane_api_" + secrets.token_hex(16)


def webhook_secret() -> str:
    return "plane_wh_" + secrets.token_hex(16)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_clean_repository_passes(repo: GitRepo, run_guard: Run) -> None:
    code, out = run_guard(repo)
    assert code == 0, out
    assert "guard: OK" in out


def test_console_script_runs_from_the_repository_root(repo: GitRepo) -> None:
    key = api_key()
    repo.write("config/settings.py", f'PLANE = {{"url": "https://api.plane.so"}}\nKEY = "{key}"\n')
    exe = Path(sys.executable).with_name("plane-connector")
    done = subprocess.run(
        [str(exe), "guard", "--base", EMPTY_TREE],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"config/settings.py:2: secret: Plane API key plane_api_…{key[-4:]}" in done.stdout
    assert key not in done.stdout + done.stderr


# --- secrets --------------------------------------------------------------------------------


def test_planted_api_key_in_a_commit_fails_naming_file_and_line(
    repo: GitRepo, run_guard: Run
) -> None:
    base = repo.git("rev-parse", "HEAD").strip()
    repo.git("checkout", "-q", "-b", "feature")
    key = api_key()
    repo.write("addons/my_module/models/sync.py", f'"""Sync."""\n\n\nKEY = "{key}"\n')
    repo.commit("oops")
    code, out = run_guard(repo, base=base)
    assert code == 1
    assert "addons/my_module/models/sync.py:4: secret: Plane API key" in out
    assert key not in out
    assert sha(key) in out  # what a reviewer would put in the allowlist, if it were a fixture


def test_base_branch_moving_on_does_not_blame_the_pull_request(
    repo: GitRepo, run_guard: Run
) -> None:
    # The guard diffs against the merge base, so main's own later commits are not "added" here.
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("addons/my_module/__init__.py", "\n")
    repo.commit("feature work")
    repo.git("checkout", "-q", "main")
    repo.write("legacy/old.py", f'KEY = "{api_key()}"\n')
    repo.commit("main moves on (already reviewed there)")
    repo.git("checkout", "-q", "feature")
    code, out = run_guard(repo, base="main")
    assert code == 0, out


@pytest.mark.parametrize(
    ("rel", "make_text", "kind"),
    [
        ("a.py", lambda v: f'SECRET = "{v}"\n', "Plane webhook secret"),
        ("b.json", lambda v: f'{{"access_token": "{v}"}}\n', "Plane OAuth token"),
        ("c.xml", lambda v: f'<field name="value">{v}</field>\n', "Plane API key"),
    ],
)
def test_plane_formats_are_found_in_untracked_files(
    repo: GitRepo, run_guard: Run, rel: str, make_text: Callable[[str], str], kind: str
) -> None:
    value = {
        "Plane webhook secret": webhook_secret(),
        "Plane OAuth token": "pln_" + secrets.token_urlsafe(32) + "7k",  # a digit, as real ones
        "Plane API key": api_key(),
    }[kind]
    repo.write(rel, make_text(value))
    code, out = run_guard(repo)
    assert code == 1
    assert f"{rel}:1: secret: {kind}" in out
    assert value not in out


# "plan b/": the `diff --git a/plan b/x b/plan b/x` line splits at the wrong " b/".
@pytest.mark.parametrize(
    "rel", ["config/name with space.py", 'config/ünï"q.py', "plan b/x b/settings.py"]
)
def test_odd_file_names_are_reported_exactly(repo: GitRepo, run_guard: Run, rel: str) -> None:
    base = repo.git("rev-parse", "HEAD").strip()
    repo.write(rel, f'# settings\r\nKEY = "{api_key()}"\r\n')
    repo.commit("odd name")
    code, out = run_guard(repo, base=base)
    assert code == 1
    assert f"{rel}:2: secret: Plane API key" in out


def test_untracked_files_can_be_left_out(repo: GitRepo, run_guard: Run) -> None:
    repo.write("scratch.py", f'KEY = "{api_key()}"\n')
    assert run_guard(repo, "--no-untracked")[0] == 0
    assert run_guard(repo)[0] == 1


def test_private_key_block(repo: GitRepo, run_guard: Run) -> None:
    body = secrets.token_urlsafe(48)
    armor = "-----{} OPENSSH PRIVATE" + " KEY-----"  # split: no key header in our own tree
    repo.write(
        "deploy/id_ed25519",
        f"{armor.format('BEGIN')}\n{body}\n{armor.format('END')}\n",
    )
    code, out = run_guard(repo)
    assert code == 1
    assert "deploy/id_ed25519:1: secret: private key" in out
    assert body not in out


def test_binary_key_store(repo: GitRepo, run_guard: Run) -> None:
    blob = b"\x30\x82" + secrets.token_bytes(64) + b"\0"
    (repo.root / "deploy").mkdir()
    (repo.root / "deploy/odoo.p12").write_bytes(blob)
    code, out = run_guard(repo)
    assert code == 1
    assert (
        f"deploy/odoo.p12: secret: key store file (sha256 {hashlib.sha256(blob).hexdigest()}" in out
    )
    (repo.root / "ssot/secrets/allowlist.yaml").write_text(
        "allow:\n  - path: deploy/odoo.p12\n"
        f"    sha256: {hashlib.sha256(blob).hexdigest()}\n"
        "    reason: test key store of the lab, no real key\n"
    )
    assert run_guard(repo)[0] == 0


@pytest.mark.parametrize(
    ("rel", "line"),
    [
        ("app/settings.py", 'password = "{v}"'),
        ("app/settings.py", 'client_secret: str = "{v}"'),
        ("app/settings.js", "const apiKey = '{v}';"),
        ("deploy/.env", "DB_PASSWORD={v}"),
        ("deploy/values.yaml", "  auth_token: {v}"),
        ("deploy/app.py", 'DSN = "postgresql://odoo:{v}@db:5432/odoo"'),
    ],
)
def test_generic_secrets(repo: GitRepo, run_guard: Run, rel: str, line: str) -> None:
    # A digit and a letter are appended: about 1 draw in 250 of 32 base64url characters has no
    # digit, and a value without one reads as a word, not a secret (as it should).
    value = secrets.token_urlsafe(24).replace("-", "4").replace("_", "q") + "7k"
    repo.write(rel, "# config\n" + line.format(v=value) + "\n")
    code, out = run_guard(repo)
    assert code == 1, out
    assert f"{rel}:2: secret:" in out
    assert value not in out


@pytest.mark.parametrize(
    "line",
    [
        'api_key_ref = "env:PLANE_API_KEY"',
        'PLANE_API_KEY_REF = "file:/run/secrets/plane_api_key"',
        'token = f"pln_{{suffix}}"',
        "pln_refresh_token_value = refresh(pln_refresh_token_store)",
        'password = "changeme-please-123456"',
        'secret = os.environ["PLANE_WEBHOOK_SECRET"]',
        'DSN = "postgresql://odoo:{{password}}@db/odoo"',
        'token_url = "https://api.plane.so/auth/o/token/"',
        'secret_hash = "{h}"',
        'webhook_secret = "not-a-real-secret-just-words"',
    ],
)
def test_not_secrets(repo: GitRepo, run_guard: Run, line: str) -> None:
    repo.write("app/code.py", line.format(h=secrets.token_hex(32)) + "\n")
    code, out = run_guard(repo)
    assert code == 0, out


# --- allowlist ------------------------------------------------------------------------------


def _allow(repo: GitRepo, path: str, value: str, reason: str = "lab fixture, never live") -> None:
    repo.write(
        "ssot/secrets/allowlist.yaml",
        f"""\
        version: 1
        allow:
          - path: "{path}"
            sha256: "{sha(value)}"
            reason: "{reason}"
        """,
    )


def test_allowlist_admits_one_value_in_one_path(repo: GitRepo, run_guard: Run) -> None:
    allowed = webhook_secret()
    _allow(repo, "tests/fixtures/*.json", allowed)
    repo.write("tests/fixtures/delivery.json", f'{{"webhook_secret": "{allowed}"}}\n')
    code, out = run_guard(repo)
    assert code == 0, out
    assert "1 allowlisted" in out

    # The same value elsewhere, or another value in the allowed path, still fails.
    repo.write("app/hooks.py", f'SECRET = "{allowed}"\n')
    other = webhook_secret()
    repo.write("tests/fixtures/other.json", f'{{"webhook_secret": "{other}"}}\n')
    code, out = run_guard(repo)
    assert code == 1
    assert "app/hooks.py:1: secret" in out
    assert "tests/fixtures/other.json:1: secret" in out
    assert "tests/fixtures/delivery.json" not in out


def test_unused_allowlist_entry_is_noted_on_a_full_scan(repo: GitRepo, run_guard: Run) -> None:
    _allow(repo, "tests/fixtures/*.json", webhook_secret())
    code, out = run_guard(repo)
    assert code == 0, out
    assert "allowlist entry for tests/fixtures/*.json" in out and "matched nothing" in out
    base = repo.commit("allowlist")
    assert "matched nothing" not in run_guard(repo, base=base)[1]  # a PR diff cannot tell


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ('  - path: "x"\n    sha256: "' + "a" * 64 + '"\n', "lacks reason"),
        ('  - path: "x"\n    sha256: "abc"\n    reason: "a real reason here"\n', "64 hex"),
        ('  - path: "x"\n    sha256: "' + "a" * 64 + '"\n    reason: "ok"\n', "real reason"),
        ("  - just a string\n", "not a mapping"),
    ],
)
def test_malformed_allowlist_is_a_usage_error(
    repo: GitRepo, run_guard: Run, entry: str, needle: str
) -> None:
    (repo.root / "ssot/secrets/allowlist.yaml").write_text("allow:\n" + entry)
    code, out = run_guard(repo)
    assert code == 2
    assert needle in out


def test_our_fixture_allowlist_matches_the_recorded_lab_secrets() -> None:
    # Every webhook_secret in the recorded deliveries is admitted by exactly the reviewed entries.
    import fnmatch
    import json

    import yaml

    root = Path(__file__).resolve().parents[2]
    entries = yaml.safe_load((root / "ssot/secrets/allowlist.yaml").read_text())["allow"]
    headers = sorted((root / "tests/fixtures/plane-samples/webhooks").glob("*.headers.json"))
    assert headers
    for path in headers:
        rel = path.relative_to(root).as_posix()
        digest = sha(json.loads(path.read_text())["webhook_secret"])
        assert any(
            e["sha256"] == digest and fnmatch.fnmatchcase(rel, e["path"]) for e in entries
        ), rel


# --- registry -------------------------------------------------------------------------------


def _registry(repo: GitRepo) -> Path:
    return repo.root / "ssot/secrets/registry.yaml"


def test_registry_missing(repo: GitRepo, run_guard: Run) -> None:
    _registry(repo).unlink()
    code, out = run_guard(repo)
    assert code == 1
    assert "ssot/secrets/registry.yaml: registry: secrets registry is missing" in out


def test_registry_entry_missing(repo: GitRepo, run_guard: Run) -> None:
    text = _registry(repo).read_text()
    start = text.index("  plane_webhook_secret:")
    end = text.index("  plane_oauth_client_id:")
    _registry(repo).write_text(text[:start] + text[end:])
    code, out = run_guard(repo)
    assert code == 1
    assert "registry: entry plane_webhook_secret is missing" in out


def test_registry_entry_incomplete_names_its_line(repo: GitRepo, run_guard: Run) -> None:
    text = _registry(repo).read_text()
    lines = text.splitlines()
    entry_line = lines.index("  plane_api_key:") + 1
    text = text.replace('    rotation: "Create a second key', '    notes: "Create a second key', 1)
    text = text.replace("  plane_api_key:\n", "  plane_api_key:\n    value: oops\n", 1)
    _registry(repo).write_text(text)
    code, out = run_guard(repo)
    assert code == 1
    assert f"registry.yaml:{entry_line}: registry: plane_api_key: field rotation is missing" in out
    assert "plane_api_key: holds a value" in out


def test_registry_reference_must_fit_its_stores(repo: GitRepo, run_guard: Run) -> None:
    text = _registry(repo).read_text()
    text = text.replace('reference: "env:PLANE_WEBHOOK_SECRET"', 'reference: "vault:wh"', 1)
    text = text.replace(
        'stores: [env, keyring, vault, file]\n    reference: "vault:wh"',
        'stores: [env, file]\n    reference: "vault:wh"',
        1,
    )
    _registry(repo).write_text(text)
    code, out = run_guard(repo)
    assert code == 1
    assert "plane_webhook_secret: reference uses vault: which is not among its stores" in out


def test_plain_config_store_only_for_non_secrets(repo: GitRepo, run_guard: Run) -> None:
    text = _registry(repo).read_text()
    text = text.replace("stores: [env, keyring, vault, file]", "stores: [env, config]", 1)
    _registry(repo).write_text(text)
    code, out = run_guard(repo)
    assert code == 1
    assert "plane_api_key: store config (a plain value in configuration) is only for" in out


def test_unregistered_reference_key_in_code(repo: GitRepo, run_guard: Run) -> None:
    # Names assembled at run time, so our own tree does not use an unregistered reference key.
    key, var = "plane.jira_token" + "_ref", "PLANE_JIRA_TOKEN" + "_REF"
    repo.write(
        "addons/my_module/models/settings.py",
        f"""\
        def refs(env):
            ok = env["ir.config_parameter"].get_param("plane.api_key_ref")
            new = env["ir.config_parameter"].get_param("{key}")
            return ok, new, os.environ.get("{var}")
        """,
    )
    code, out = run_guard(repo)
    assert code == 1
    assert (
        "addons/my_module/models/settings.py:3: registry: secret reference config key "
        f"{key} is not listed"
    ) in out
    assert f"settings.py:4: registry: secret reference variable {var}" in out
    assert "plane.api_key_ref is not listed" not in out


def test_repository_without_registry_or_connector_skips_with_a_note(
    new_repo: NewRepo, run_guard: Run
) -> None:
    r = new_repo("plain")
    r.git("init", "-q", "-b", "main")
    r.write("README.md", "hello\n")
    r.commit()
    code, out = run_guard(r)
    assert code == 0, out
    assert "registry check skipped" in out
    assert "schema gate skipped" in out
    code, out = run_guard(r, "--require-model")
    assert code == 1
    assert "no model declares _name = 'plane.webhook.delivery'" in out


def test_registry_with_a_duplicate_key_is_refused_with_its_line(
    repo: GitRepo, run_guard: Run
) -> None:
    text = _registry(repo).read_text()
    _registry(repo).write_text(text + "\n  plane_api_key:\n    description: again\n")
    line = len(text.splitlines()) + 2
    code, out = run_guard(repo)
    assert code == 1
    assert f"registry.yaml:{line}: registry: unreadable: line {line}: duplicate key" in out


def test_guard_without_pyyaml_says_how_to_install_it(
    repo: GitRepo, run_guard: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError
    code, out = run_guard(repo)
    assert code == 2
    assert "pip install 'plane_connector[guard]'" in out


def test_guard_without_unidiff_says_how_to_install_it(
    repo: GitRepo, run_guard: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "unidiff", None)
    repo.write("config/app.py", "x = 1\n")
    code, out = run_guard(repo)
    assert code == 2
    assert "unidiff" in out and "pip install 'plane_connector[guard]'" in out


# --- schema gate: model source --------------------------------------------------------------

MODEL_PATH = "addons/ipai_plane_connector/models/plane_webhook_delivery.py"
MANIFEST = "addons/ipai_plane_connector/__manifest__.py"


CONSTRAINT_19 = (
    '_delivery_id_uniq = models.Constraint(\n        "unique(delivery_id)", '
    '"A delivery is stored once."\n    )'
)


def _declare(repo: GitRepo, declaration: str) -> None:
    """Write the model with its delivery_id constraint replaced by ``declaration``."""
    assert CONSTRAINT_19 in repo.MODEL_19
    repo.write(MODEL_PATH, repo.MODEL_19.replace(CONSTRAINT_19, declaration))


def test_dropped_constraint_fails_naming_the_model(repo: GitRepo, run_guard: Run) -> None:
    _declare(repo, "")
    code, out = run_guard(repo)
    assert code == 1
    assert (
        f"{MODEL_PATH}:5: schema: plane.webhook.delivery declares no unique constraint "
        "on (delivery_id)"
    ) in out


def test_odoo19_ignores_sql_constraints(repo: GitRepo, run_guard: Run) -> None:
    _declare(repo, '_sql_constraints = [("delivery_id_uniq", "unique(delivery_id)", "once")]')
    code, out = run_guard(repo)
    assert code == 1
    assert f"{MODEL_PATH}:5: schema: Odoo 19 ignores _sql_constraints" in out


def test_odoo18_sql_constraints_pass_and_constraint_class_fails(
    repo: GitRepo, run_guard: Run
) -> None:
    repo.write(MANIFEST, '{"name": "Plane connector", "version": "18.0.1.0.0"}\n')
    code, out = run_guard(repo)
    assert code == 1
    assert "Odoo 18 has no models.Constraint" in out
    _declare(
        repo,
        "_sql_constraints = [\n"
        '        ("delivery_id_uniq", "UNIQUE (delivery_id)", "once"),\n    ]',
    )
    code, out = run_guard(repo)
    assert code == 0, out


@pytest.mark.parametrize(
    "declaration",
    [
        '_delivery_id_uniq = models.Constraint("unique(delivery_id, webhook_id)", "x")',
        '_delivery_id_uniq = models.Constraint("check(delivery_id is not null)", "x")',
        "_delivery_id_idx = models.UniqueIndex(\"(delivery_id) WHERE state = 'done'\")",
        '_delivery_id_idx = models.Index("(delivery_id)")',
        '_delivery_id_uniq = models.Constraint("unique(delivery_id) deferrable", "x")',
    ],
)
def test_constraints_that_do_not_cover_exactly_delivery_id(
    repo: GitRepo, run_guard: Run, declaration: str
) -> None:
    _declare(repo, declaration)
    code, out = run_guard(repo)
    assert code == 1, out
    assert f"{MODEL_PATH}:5: schema:" in out


@pytest.mark.parametrize(
    "declaration",
    [
        '_delivery_id_idx = models.UniqueIndex("(delivery_id)")',
        '_delivery_id_uniq = models.Constraint("UNIQUE (delivery_id) NOT DEFERRABLE", "x")',
        "if True:\n        _delivery_id_uniq = models.Constraint('UNIQUE(delivery_id)', 'x')\n"
        "    else:\n        _sql_constraints = [('u', 'unique(delivery_id)', 'x')]",
    ],
)
def test_other_accepted_forms(repo: GitRepo, run_guard: Run, declaration: str) -> None:
    _declare(repo, declaration)
    code, out = run_guard(repo)
    assert code == 0, out


DUAL = (
    'if hasattr(models, "Constraint"):\n'
    '        _delivery_id_uniq = models.Constraint("UNIQUE (delivery_id)", "once")\n'
    '        _fingerprint_uniq = models.Constraint("UNIQUE (fingerprint)", "once")\n'
    "    else:\n"
    "        _sql_constraints = [\n"
    '            ("delivery_id_uniq", "UNIQUE (delivery_id)", "once"),\n'
    '            ("fingerprint_uniq", "UNIQUE (fingerprint)", "once"),\n'
    "        ]"
)


@pytest.mark.parametrize(
    ("drop", "needle"),
    [
        (None, None),
        ('("delivery_id_uniq", "UNIQUE (delivery_id)", "once"),', "_sql_constraints (Odoo <= 18)"),
        ('_delivery_id_uniq = models.Constraint("UNIQUE (delivery_id)", "once")', "Odoo 19+"),
    ],
)
def test_one_addon_for_18_and_19_needs_both_forms(
    repo: GitRepo, run_guard: Run, drop: str | None, needle: str | None
) -> None:
    # A version without an Odoo series installs on both: a drop from either branch counts.
    repo.write(MANIFEST, '{"name": "Plane connector", "version": "1.0.0"}\n')
    declaration = (
        DUAL if drop is None else DUAL.replace(drop, "pass" if "Constraint" in drop else "")
    )
    assert drop is None or declaration != DUAL
    _declare(repo, declaration)
    code, out = run_guard(repo)
    if needle is None:
        assert code == 0, out
    else:
        assert code == 1
        assert f"{MODEL_PATH}:5: schema:" in out and needle in out


def test_deleted_model_in_the_connector_addon_fails(repo: GitRepo, run_guard: Run) -> None:
    (repo.root / MODEL_PATH).unlink()
    code, out = run_guard(repo)
    assert code == 1
    assert "no model declares _name = 'plane.webhook.delivery'" in out


def test_inheriting_model_is_not_the_declaration(repo: GitRepo, run_guard: Run) -> None:
    repo.write(
        "addons/my_module/models/delivery.py",
        "from odoo import models\n\n\n"
        'class D(models.Model):\n    _inherit = "plane.webhook.delivery"\n',
    )
    code, out = run_guard(repo)
    assert code == 0, out


# --- usage ----------------------------------------------------------------------------------


def test_not_a_repository(new_repo: NewRepo, run_guard: Run) -> None:
    r = new_repo("not_git")
    code, out = run_guard(r)
    assert code == 2
    assert "not inside a git repository" in out


def test_unknown_base(repo: GitRepo, run_guard: Run) -> None:
    code, out = run_guard(repo, base="no-such-branch")
    assert code == 2
    assert "unknown base revision 'no-such-branch'" in out


def test_untracked_virtualenv_is_skipped(repo: GitRepo, run_guard: Run) -> None:
    repo.write("venv2/pyvenv.cfg", "home = /usr\n")
    repo.write("venv2/lib/site.py", f'KEY = "{api_key()}"\n')
    code, out = run_guard(repo)
    assert code == 0, out
    assert "skipped untracked virtualenv venv2/" in out


def test_json_output(repo: GitRepo, run_guard: Run) -> None:
    import json

    key = api_key()
    repo.write("k.py", f'K = "{key}"\n')
    code, out = run_guard(repo, "--json")
    assert code == 1
    data = json.loads(out[: out.rindex("}") + 1])
    assert data["ok"] is False
    assert data["findings"][0]["path"] == "k.py"
    assert data["findings"][0]["line"] == 1
    assert key not in out
