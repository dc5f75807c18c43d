"""Ways a committed Plane key slipped past the guard (security review, issue 12 item 6).

Each test commits a key on a branch of a scratch repository, the way a pull request would, and
runs the guard against the branch point. Keys are generated at run time."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import GitRepo

Run = Callable[..., tuple[int, str]]
REPO_ROOT = Path(__file__).resolve().parents[2]


def api_key() -> str:
    return "plane_api_" + secrets.token_hex(16)


def on_branch(repo: GitRepo) -> str:
    base = repo.git("rev-parse", "HEAD").strip()
    repo.git("checkout", "-q", "-b", "pr")
    return base


def write_bytes(repo: GitRepo, rel: str, data: bytes) -> None:
    path = repo.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def pull_request(repo: GitRepo, files: dict[str, str | bytes]) -> str:
    """Commit ``files`` on a branch, as a pull request would; returns the branch point."""
    base = on_branch(repo)
    for rel, data in files.items():
        if isinstance(data, bytes):
            write_bytes(repo, rel, data)
        else:
            repo.write(rel, data)
    repo.commit("pull request")
    return base


def assert_found(code: int, out: str, where: str, key: str, kind: str = "Plane API key") -> None:
    assert code == 1, out
    assert f"{where}: secret: {kind}" in out, out
    assert key not in out


@pytest.mark.parametrize("attribute", ["-diff", "binary", "diff=hidden"])
def test_key_in_a_file_gitattributes_hides_from_diff(
    repo: GitRepo, run_guard: Run, attribute: str
) -> None:
    key = api_key()
    base = pull_request(
        repo,
        {".gitattributes": f"*.cfg {attribute}\n", "deploy/odoo.cfg": f"[options]\nk = {key}\n"},
    )
    # A textconv the user configured must not hide the content either.
    repo.git("config", "diff.hidden.textconv", "true")
    assert_found(*run_guard(repo, base=base), "deploy/odoo.cfg:2", key)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_key_in_a_utf16_file_with_a_bom(repo: GitRepo, run_guard: Run, codec: str) -> None:
    key = api_key()
    text = f"# settings\nAPI = '{key}'\n"
    bom = {"utf-16": b"", "utf-16-be": b"\xfe\xff", "utf-32": b""}[codec]
    base = pull_request(repo, {"deploy/settings.py": bom + text.encode(codec)})
    assert_found(*run_guard(repo, base=base), "deploy/settings.py:2", key)
    # Untracked, too.
    key2 = api_key()
    write_bytes(repo, "scratch/notes.txt", bom + f"x\ny\n{key2}\n".encode(codec))
    assert_found(*run_guard(repo, base=base), "scratch/notes.txt:3", key2)


def test_key_in_a_file_with_one_nul_byte(repo: GitRepo, run_guard: Run) -> None:
    key = api_key()
    base = pull_request(repo, {"deploy/env.txt": b"\0\n" + f"PLANE={key}\n".encode()})
    assert_found(*run_guard(repo, base=base), "deploy/env.txt:2", key)
    key2 = api_key()
    write_bytes(repo, "scratch/blob.bin", b"\0" + f" {key2}\n".encode())
    assert_found(*run_guard(repo, base=base), "scratch/blob.bin:1", key2)


@pytest.mark.parametrize("decoy", ["++ /dev/null", "++ b/other.py", "++ "])
def test_key_after_an_added_line_that_looks_like_a_file_header(
    repo: GitRepo, run_guard: Run, decoy: str
) -> None:
    key = api_key()
    base = pull_request(repo, {"notes/diff.md": f"{decoy}\n@@ -1 +1 @@\nKEY = '{key}'\n"})
    assert_found(*run_guard(repo, base=base), "notes/diff.md:3", key)


def test_key_after_a_removed_line_that_looks_like_a_header(repo: GitRepo, run_guard: Run) -> None:
    repo.write("notes/old.md", "-- a/x\nkeep\n")
    base = repo.commit("old")
    repo.git("checkout", "-q", "-b", "pr")
    key = api_key()
    repo.write("notes/old.md", f"keep\n{key}\n")
    repo.commit("edit")
    assert_found(*run_guard(repo, base=base), "notes/old.md:2", key)


@pytest.mark.parametrize("alphabet", ["standard", "urlsafe", "nested in json"])
def test_base64_encoded_key(repo: GitRepo, run_guard: Run, alphabet: str) -> None:
    base = on_branch(repo)
    key = api_key()
    raw = key.encode() if alphabet != "nested in json" else f'{{"key": "{key}"}}'.encode()
    encode = base64.urlsafe_b64encode if alphabet == "urlsafe" else base64.b64encode
    blob = encode(raw).decode()
    repo.write("k8s/secret.yaml", f"kind: Secret\ndata:\n  plane: {blob}\n")
    repo.commit("k8s secret")
    assert_found(*run_guard(repo, base=base), "k8s/secret.yaml:3", key, "base64-encoded")


def test_hex_encoded_key(repo: GitRepo, run_guard: Run) -> None:
    base = on_branch(repo)
    key = api_key()
    repo.write("app/blob.py", f'BLOB = bytes.fromhex("{key.encode().hex()}")\n')
    repo.commit("hex")
    assert_found(*run_guard(repo, base=base), "app/blob.py:1", key, "hex-encoded")


@pytest.mark.parametrize(
    "source",
    [
        'KEY = "{a}" "{b}"\n',
        "KEY = '{a}' + '{b}'\n",
        'KEY = (\n    "{a}"\n    "{b}"\n)\n',
        'const key = "{a}" +\n  "{b}";\n',
    ],
)
def test_key_split_across_string_literals(repo: GitRepo, run_guard: Run, source: str) -> None:
    base = on_branch(repo)
    key = api_key()
    cut = len("plane_api_") + secrets.randbelow(20) + 1  # both parts keep 12+ characters
    repo.write("app/split.py", source.format(a=key[:cut], b=key[cut:]))
    repo.commit("split")
    code, out = run_guard(repo, base=base)
    assert code == 1, out
    assert "app/split.py:" in out and "split across string literals" in out
    assert key not in out and key[cut:] not in out


def test_every_skipped_file_is_reported(repo: GitRepo, run_guard: Run) -> None:
    repo.write("big/dump.sql", "x" * (5 * 1024 * 1024 + 1))
    code, out = run_guard(repo, base=repo.git("rev-parse", "HEAD").strip())
    assert code == 0, out
    assert "skipped big/dump.sql" in out and "over 5 MiB" in out
    assert "1 skipped" in out  # in the summary line too, not only in a note


def test_untracked_symlink_is_scanned_as_git_would_store_it(repo: GitRepo, run_guard: Run) -> None:
    key = api_key()
    (repo.root / "deploy").mkdir()
    (repo.root / "deploy/current").symlink_to(f"/run/{key}")
    assert_found(
        *run_guard(repo, base=repo.git("rev-parse", "HEAD").strip()), "deploy/current:1", key
    )


def test_split_literal_detection_ignores_runtime_built_fakes(repo: GitRepo, run_guard: Run) -> None:
    # How our own tests build fake credentials: a prefix literal plus a call, not a literal.
    base = on_branch(repo)
    repo.write(
        "tests/test_x.py",
        'KEY = "plane_api_" + secrets.token_hex(16)\nWH = "plane_wh_" + "{}".format(x)\n',
    )
    repo.commit("fakes")
    code, out = run_guard(repo, base=base)
    assert code == 0, out


# --- residuals of the third review (issue 21 item 9) ----------------------------------------


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_key_in_wide_text_without_a_bom(repo: GitRepo, run_guard: Run, codec: str) -> None:
    key = api_key()
    text = f"# settings\r\nAPI = '{key}'\r\n"
    base = pull_request(repo, {"deploy/settings.py": text.encode(codec)})
    assert_found(*run_guard(repo, base=base), "deploy/settings.py:2", key)
    key2 = api_key()  # untracked, too
    write_bytes(repo, "scratch/notes.txt", f"x\ny\n{key2}\n".encode(codec))
    assert_found(*run_guard(repo, base=base), "scratch/notes.txt:3", key2)


@pytest.mark.parametrize("prefix", ["ab", "x", "xyz", "abcd", "Q0"])
def test_base64_key_behind_a_prefix(repo: GitRepo, run_guard: Run, prefix: str) -> None:
    # The prefix shifts the base64 blocks: decoded from the run's start, it is noise.
    key = api_key()
    blob = prefix + base64.b64encode(key.encode()).decode()
    base = pull_request(repo, {"k8s/secret.yaml": f"kind: Secret\ndata:\n  plane: {blob}\n"})
    assert_found(*run_guard(repo, base=base), "k8s/secret.yaml:3", key, "base64-encoded")


def test_hex_key_behind_an_odd_prefix(repo: GitRepo, run_guard: Run) -> None:
    key = api_key()
    base = pull_request(repo, {"app/blob.py": f'BLOB = "f{key.encode().hex()}"\n'})
    assert_found(*run_guard(repo, base=base), "app/blob.py:1", key, "hex-encoded")


@pytest.mark.parametrize(
    "source", ['KEY = "{r}"[::-1]\n', "const key = '{r}'.split('').reverse().join('');\n"]
)
def test_reversed_key(repo: GitRepo, run_guard: Run, source: str) -> None:
    key = api_key()
    base = pull_request(repo, {"app/rev.py": source.format(r=key[::-1])})
    code, out = run_guard(repo, base=base)
    assert_found(code, out, "app/rev.py:1", key, "reversed Plane API key")
    assert key[::-1] not in out


@pytest.mark.parametrize(
    "joiner",
    [
        '"\n    "',  # implicit concatenation, one piece per line
        '" +\n  "',  # JavaScript
        '", "',  # "".join([...])
        '"\n    . "',  # PHP
        "\\\n",  # a backslash-newline inside one literal (shell, Python)
    ],
)
def test_key_split_over_many_lines_and_pieces(repo: GitRepo, run_guard: Run, joiner: str) -> None:
    key = api_key()
    pieces = [key[i : i + 5] for i in range(0, len(key), 5)]  # 9 pieces, 9 lines
    source = 'KEY = "".join((\n    "' + joiner.join(pieces) + '"\n))\nOTHER = 1\n'
    base = pull_request(repo, {"app/split.py": source})
    code, out = run_guard(repo, base=base)
    assert code == 1, out
    assert "app/split.py:2: secret: Plane API key (split across string literals)" in out, out
    assert key not in out and all(p not in out for p in pieces[2:-1])  # the mask shows 4


def test_a_list_of_short_tokens_is_not_one_split_token(repo: GitRepo, run_guard: Run) -> None:
    # Joined over the comma they would pass for one long token: each starts like a credential.
    base = pull_request(
        repo, {"tests/test_t.py": 'TOKENS = iter(["pln_old_token_0001", "pln_new_token_0002"])\n'}
    )
    code, out = run_guard(repo, base=base)
    assert code == 0, out


def test_split_detection_reads_a_long_file_once(repo: GitRepo, run_guard: Run) -> None:
    # Lines of literals that join into nothing secret, and a key in pieces at the end.
    key = api_key()
    filler = "".join(f'    "piece {i}" "and more"\n' for i in range(20000))
    tail = '"\n    "'.join(key[i : i + 6] for i in range(0, len(key), 6))
    base = pull_request(repo, {"app/long.py": f'X = (\n{filler}    "{tail}"\n)\n'})
    code, out = run_guard(repo, base=base)
    assert code == 1 and "app/long.py:20002: secret: Plane API key (split" in out, out


# --- the workflow judges a pull request with the base branch's guard --------------------------


def test_workflow_runs_the_base_branch_guard_and_allowlist() -> None:
    import yaml
    workflow = yaml.safe_load(
        (REPO_ROOT / ".github/workflows/ssot-surface-guard.yml").read_text(encoding="utf-8")
    )
    steps = workflow["jobs"]["guard"]["steps"]
    checkouts = {
        s["with"]["path"]: s["with"].get("ref", "")
        for s in steps
        if str(s.get("uses", "")).startswith("actions/checkout")
    }
    base_dir = next(p for p, ref in checkouts.items() if "base.sha" in ref or "base_ref" in ref)
    pr_dir = next(p for p in checkouts if p != base_dir)
    runs = [str(s.get("run", "")) for s in steps if s.get("run")]
    installs = [r for r in runs if "pip install" in r]
    # Only the base checkout is installed; the pull request's code never runs.
    assert installs and all(f"./{base_dir}" in r and f"./{pr_dir}" not in r for r in installs)
    (guard,) = [r for r in runs if "plane-connector guard" in r]
    assert f"--repo {pr_dir}" in guard
    assert f"/{base_dir}/ssot/secrets/allowlist.yaml" in guard
    owners = (REPO_ROOT / ".github/CODEOWNERS").read_text(encoding="utf-8")
    owned = {line.split()[0] for line in owners.splitlines() if line and not line.startswith("#")}
    assert {"/ssot/secrets/", "/.github/", "/python/plane_connector/guard/"} <= owned


def test_a_pull_request_cannot_allowlist_its_own_secret_against_the_base_allowlist(
    repo: GitRepo, run_guard: Run, tmp_path: Path
) -> None:
    """What the workflow does: the PR's tree is scanned, the base branch's allowlist applies."""
    base_allowlist = tmp_path / "base-allowlist.yaml"
    base_allowlist.write_bytes((repo.root / "ssot/secrets/allowlist.yaml").read_bytes())
    base = on_branch(repo)
    key = api_key()
    repo.write("tests/fixtures/x.json", f'{{"k": "{key}"}}\n')
    repo.write(
        "ssot/secrets/allowlist.yaml",
        "allow:\n  - path: tests/fixtures/x.json\n"
        f"    sha256: {hashlib.sha256(key.encode()).hexdigest()}\n"
        "    reason: the pull request vouches for itself here\n",
    )
    repo.commit("secret plus its own allowlist entry")
    assert run_guard(repo, base=base)[0] == 0  # judged by its own allowlist: admitted
    code, out = run_guard(repo, "--allowlist", str(base_allowlist), base=base)
    assert_found(code, out, "tests/fixtures/x.json:1", key)
