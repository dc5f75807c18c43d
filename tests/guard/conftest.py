"""A throwaway git repository shaped like a user's Odoo repo, for the guard tests."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

MODEL_19 = """\
from odoo import fields, models


class PlaneWebhookDelivery(models.Model):
    _name = "plane.webhook.delivery"
    _description = "Plane webhook delivery"

    delivery_id = fields.Char(required=True)
    fingerprint = fields.Char(required=True)

    _delivery_id_uniq = models.Constraint(
        "unique(delivery_id)", "A delivery is stored once."
    )
    _fingerprint_uniq = models.Constraint("unique(fingerprint)", "Same body, same delivery.")
"""


class GitRepo:
    """A git work tree in tmp_path with helpers to write, commit and run the guard."""

    EMPTY_TREE = EMPTY_TREE
    MODEL_19 = MODEL_19

    def __init__(self, root: Path) -> None:
        self.root = root

    def git(self, *args: str) -> str:
        done = subprocess.run(
            [
                "git",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "commit.gpgsign=false",
                *args,
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture()
def repo(tmp_path: Path) -> GitRepo:
    """A committed baseline: our registry and allowlist, a v19 addon with the constraint."""
    root = tmp_path / "userrepo"
    root.mkdir()
    r = GitRepo(root)
    r.git("init", "-q", "-b", "main")
    for rel in ("ssot/secrets/registry.yaml", "ssot/secrets/allowlist.yaml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / rel, root / rel)
    r.write("addons/ipai_plane_connector/__init__.py", "from . import models\n")
    r.write(
        "addons/ipai_plane_connector/__manifest__.py",
        '{"name": "Plane connector", "version": "19.0.1.0.0", "license": "LGPL-3"}\n',
    )
    r.write("addons/ipai_plane_connector/models/plane_webhook_delivery.py", MODEL_19)
    r.commit("baseline")
    return r


@pytest.fixture()
def new_repo(tmp_path: Path) -> Callable[[str], GitRepo]:
    """Factory: an empty GitRepo object at tmp_path/<name> (not yet `git init`-ed)."""

    def _make(name: str) -> GitRepo:
        root = tmp_path / name
        root.mkdir()
        return GitRepo(root)

    return _make


@pytest.fixture()
def run_guard(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """Run `plane-connector guard` in-process; returns (exit code, stdout + stderr)."""
    from plane_connector.cli import main

    def _run(repo: GitRepo, *args: str, base: str = EMPTY_TREE) -> tuple[int, str]:
        code = main(["guard", "--repo", str(repo.root), "--base", base, *args])
        out = capsys.readouterr()
        return code, out.out + out.err

    return _run
