"""The lines a change adds, read from git: the diff, wide (UTF-16/32) files, untracked files."""

from __future__ import annotations

import codecs
import difflib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from plane_connector.guard.report import (
    MAX_FILE_BYTES,
    GuardReport,
    GuardUsageError,
    require_extra,
)


@dataclass(frozen=True)
class _Added:
    path: str
    line: int
    text: str


class _Repo:
    def __init__(self, root: Path) -> None:
        try:
            top = self.git(root, "rev-parse", "--show-toplevel").strip()
        except GuardUsageError:
            raise GuardUsageError(f"{root} is not inside a git repository") from None
        self.root = Path(top)
        self.skipped_venvs: list[str] = []
        self.full_scan = False
        self.changed_paths: list[str] = []

    @staticmethod
    def git(cwd: Path, *args: str) -> str:
        return _Repo.git_bytes(cwd, *args).decode("utf-8", "replace")

    @staticmethod
    def git_bytes(cwd: Path, *args: str) -> bytes:
        try:
            done = subprocess.run(
                ["git", "-c", "core.quotepath=off", *args],
                cwd=cwd,
                capture_output=True,
                check=False,
            )
        except FileNotFoundError:
            raise GuardUsageError("git is not installed") from None
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GuardUsageError(f"git {args[0]} failed: {reason[-1] if reason else 'error'}")
        return done.stdout

    def files(self, *, untracked: bool = True) -> list[str]:
        out = self.git(self.root, "ls-files", "-z", "--cached")
        paths = [p for p in out.split("\0") if p]
        if untracked:
            paths += self._untracked()
        return sorted(set(paths))

    def _untracked(self) -> list[str]:
        out = self.git(self.root, "ls-files", "-z", "--others", "--exclude-standard")
        venvs: set[str] = set()
        kept = []
        for path in (p for p in out.split("\0") if p):
            parts = PurePosixPath(path).parts
            # A virtualenv that is not ignored is never part of a change; scanning its thousands of
            # vendored files would only bury real findings.
            prefix = next(
                (
                    "/".join(parts[:i])
                    for i in range(1, len(parts))
                    if "/".join(parts[:i]) in venvs
                    or (self.root / Path(*parts[:i]) / "pyvenv.cfg").is_file()
                ),
                None,
            )
            if prefix is not None:
                venvs.add(prefix)
                continue
            kept.append(path)
        self.skipped_venvs = sorted(venvs)
        return kept

    def resolve_base(self, base: str) -> str:
        try:
            self.git(self.root, "rev-parse", "--verify", "--quiet", f"{base}^{{tree}}")
        except GuardUsageError:
            raise GuardUsageError(f"unknown base revision {base!r}") from None
        # For a commit, diff against the merge base (what a pull request adds), as `a...b` would.
        try:
            self.git(self.root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
            return self.git(self.root, "merge-base", base, "HEAD").strip() or base
        except GuardUsageError:
            return base

    def added_lines(
        self, base: str, include_untracked: bool, report: GuardReport
    ) -> Iterator[_Added]:
        start = self.resolve_base(base)
        empty = self.git(self.root, "hash-object", "-t", "tree", os.devnull).strip()
        self.full_scan = (
            start == empty or self.git(self.root, "rev-parse", f"{start}^{{tree}}").strip() == empty
        )
        changed = self.git(
            self.root, "diff", "--name-only", "-z", "--no-renames", "--diff-filter=AMT", start
        )
        self.changed_paths = [p for p in changed.split("\0") if p]
        # git cuts UTF-16/32 text into lines at the wrong bytes: decode those files ourselves.
        wide = {p for p in self.changed_paths if _bom_codec(self._head(p)) is not None}
        # --text: a .gitattributes `binary` / `-diff` in the change must not hide content;
        # --no-textconv / --no-ext-diff: nor may a configured filter rewrite it.
        diff = self.git(
            self.root, "diff", "--text", "--no-textconv", "--no-ext-diff", "--unified=0",
            "--no-color", "--no-renames", start,
        )  # fmt: skip
        files: set[str] = set()
        for item in _parse_diff(diff, report):
            if item.path in wide:
                continue
            files.add(item.path)
            report.lines_scanned += 1
            yield item
        for path in sorted(wide):
            files.add(path)
            for item in self._wide_added(start, path):
                report.lines_scanned += 1
                yield item
        if include_untracked:
            self.skipped_venvs = []
            for path in self._untracked():
                self.changed_paths.append(path)
                lines = self._read_lines(path, report)
                if lines is None:
                    continue
                files.add(path)
                for number, text in enumerate(lines, start=1):
                    report.lines_scanned += 1
                    yield _Added(path, number, text)
            for venv in self.skipped_venvs:
                report.notes.append(f"skipped untracked virtualenv {venv}/")
        report.files_scanned = len(files)

    def _head(self, path: str) -> bytes:
        try:
            with open(self.root / path, "rb") as fh:
                return fh.read(4)
        except OSError:
            return b""

    def _wide_added(self, start: str, path: str) -> Iterator[_Added]:
        try:
            old = self.git_bytes(self.root, "cat-file", "blob", f"{start}:{path}")
        except GuardUsageError:
            old = b""  # added in the change
        try:
            new = (self.root / path).read_bytes()
        except OSError:
            return
        before, after = _lines(_decode(old)), _lines(_decode(new))
        matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
        for tag, _, _, j1, j2 in matcher.get_opcodes():
            if tag in ("replace", "insert"):
                for j in range(j1, j2):
                    yield _Added(path, j + 1, after[j])

    def _read_lines(self, path: str, report: GuardReport) -> list[str] | None:
        full = self.root / path
        try:
            if full.is_symlink():
                # What git would store for it: the link's target path.
                return [os.readlink(full)]
            if not full.is_file():
                return None
            if full.stat().st_size > MAX_FILE_BYTES:
                report.skip(path, "untracked, over 5 MiB")
                return None
            data = full.read_bytes()
        except OSError as exc:
            report.skip(path, f"untracked, cannot be read: {exc.strerror}")
            return None
        # No binary exemption: one NUL byte must not hide the text around it.
        return _lines(_decode(data))


def _bom_codec(head: bytes) -> str | None:
    """The codec a UTF-16/32 byte order mark announces (UTF-32 first: its LE BOM starts
    like UTF-16's)."""
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if head.startswith(bom):
            return codec
    return None


def _decode(data: bytes) -> str:
    codec = _bom_codec(data[:4])
    if codec is not None:
        return data.decode(codec, "replace")
    return data.decode("utf-8-sig", "replace")


def _lines(text: str) -> list[str]:
    # Lines as git numbers them: split on \n only (str.splitlines also splits on \x0b, \x1c...).
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _parse_diff(diff: str, report: GuardReport) -> Iterator[_Added]:
    """Added lines of ``git diff --unified=0``, read one file's section at a time.

    unidiff reads each hunk for exactly the line counts its ``@@`` header gives, so an added line
    reading ``++ /dev/null`` (shown as ``+++ /dev/null``) is content, not a header. It is given
    the hunks only: the section's ``diff --git a/X b/X`` line is ambiguous when a name holds
    " b/" (a folder ``plan b/``), while the ``+++`` line names the new side exactly."""
    unidiff = require_extra("unidiff", "the guard reads git's diff with unidiff")
    # A content line always starts with " ", "+", "-" or "\": only git starts one with "diff".
    for section in _SECTION.split(diff):
        head, sep, body = section.partition("\n@@ ")
        lines = head.split("\n")
        for line in lines:
            if line.startswith("Binary files ") or line == "GIT binary patch":
                report.skip(line, "git printed no text for it")
        target = next((line[4:] for line in lines if line.startswith("+++ ")), None)
        if not sep or target is None:
            continue
        # git appends a tab to names that contain a space (GNU diff's convention).
        target = target.removesuffix("\t")
        if target == "/dev/null":
            continue
        path = _unquote(target)[2:]  # drop "b/"
        try:
            (patched,) = unidiff.PatchSet("--- a\n+++ b\n@@ " + body)
        except (unidiff.UnidiffParseError, ValueError) as exc:
            raise GuardUsageError(f"cannot read git's diff of {path}: {exc}") from None
        for hunk in patched:
            for line in hunk:
                if line.is_added:
                    yield _Added(path, line.target_line_no, line.value.removesuffix("\n"))


_SECTION = re.compile(r"^(?=diff --git )", re.MULTILINE)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        raw = codecs.escape_decode(text[1:-1].encode("utf-8"))[0]
        return raw.decode("utf-8", "replace")
    return text
