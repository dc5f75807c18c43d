"""The secrets / schema guard behind ``plane-connector guard``.

Run from a repository root against a base revision, it fails (naming file and line, never printing
a secret) on:

- a secret in the lines the diff adds (Plane API keys, webhook secrets, OAuth tokens, private
  keys, credentials in URLs, high-entropy literals assigned to secret-like names), unless the
  exact value is in the reviewed allowlist ``ssot/secrets/allowlist.yaml``;
- a secrets registry ``ssot/secrets/registry.yaml`` that is missing, malformed, lacks a required
  entry, or does not list a ``plane.*_ref`` config key / ``PLANE_*_REF`` variable the diff uses;
- the Odoo model ``plane.webhook.delivery`` without its unique constraint on exactly
  ``(delivery_id)`` (Odoo 19: ``models.Constraint``; up to 18: ``_sql_constraints``), and, given a
  DSN, a live table ``plane_webhook_delivery`` without a unique index on exactly that column.

The library returns a :class:`GuardReport`; printing is the CLI's job.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bisect
import codecs
import difflib
import fnmatch
import hashlib
import importlib
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from plane_connector.secrets import (
    SCHEMES,
    SECRET_PATTERNS,
    SecretError,
    dereference_dsn,
    mask,
    shannon_entropy,
)

__all__ = [
    "DEFAULT_ALLOWLIST",
    "DEFAULT_REGISTRY",
    "DELIVERY_MODEL",
    "DELIVERY_TABLE",
    "REQUIRED_ENTRIES",
    "Finding",
    "GuardReport",
    "GuardUsageError",
    "run",
]

DEFAULT_REGISTRY = "ssot/secrets/registry.yaml"
DEFAULT_ALLOWLIST = "ssot/secrets/allowlist.yaml"
REQUIRED_ENTRIES = ("plane_api_key", "plane_webhook_secret")
DELIVERY_MODEL = "plane.webhook.delivery"
DELIVERY_TABLE = "plane_webhook_delivery"
# The addon that declares the delivery model; where it exists the schema gate may not be skipped.
CONNECTOR_ADDON = "ipai_plane_connector"
# Besides the reference schemes: values the connector writes itself (encrypted in Odoo's
# database) and, for identifiers that are not secret, plain configuration.
REGISTRY_STORES = (*SCHEMES, "odoo_db_encrypted", "config")
REGISTRY_FIELDS = ("description", "secret", "stores", "reference", "consumers", "rotation")

MAX_FILE_BYTES = 5 * 1024 * 1024


class GuardUsageError(Exception):
    """The guard cannot run as asked (not a git repository, unknown base, bad allowlist...)."""


@dataclass(frozen=True)
class Finding:
    """One problem; ``str()`` is ``path:line: kind: message`` and never holds a secret."""

    path: str
    line: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class GuardReport:
    """Findings (fail the guard), notes (informational) and what was scanned."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: why", each also a note
    files_scanned: int = 0
    lines_scanned: int = 0
    allowlisted: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.findings

    def skip(self, path: str, why: str) -> None:
        """Record a file the secret scan did not read (every one is reported)."""
        self.skipped.append(f"{path}: {why}")
        self.notes.append(f"skipped {path} ({why}): not scanned for secrets")


def run(
    root: str | os.PathLike[str],
    base: str,
    *,
    include_untracked: bool = True,
    dsn: str | None = None,
    registry: str | None = None,
    allowlist: str | None = None,
    require_model: bool = False,
) -> GuardReport:
    """Run every check on the repository at ``root`` against ``base`` (any git revision or tree)."""
    repo = _Repo(Path(root))
    report = GuardReport()
    added = list(repo.added_lines(base, include_untracked, report))
    allowed = _load_allowlist(repo, allowlist)
    used = _scan_secrets(added, allowed, report)
    used |= _scan_key_stores(repo, allowed, report)
    if repo.full_scan:
        # Only a whole-tree scan can tell that an entry no longer matches anything.
        for entry in allowed:
            if entry not in used:
                report.notes.append(
                    f"allowlist entry for {entry.path} (sha256 {entry.sha256[:12]}…) matched "
                    "nothing: remove it if the value is gone"
                )
    _check_registry(repo, added, registry, report)
    _check_model_source(repo, require_model, report)
    if dsn:
        _check_live_schema(dsn, report)
    return report


# --- git ------------------------------------------------------------------------------------


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


_HUNK = re.compile(r"@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _parse_diff(diff: str, report: GuardReport) -> Iterator[_Added]:
    """Added lines of ``git diff --unified=0``.

    File headers are read only between ``diff --git`` and the first hunk, and a hunk is read for
    exactly the line counts its ``@@`` header gives: an added line reading ``++ /dev/null``
    (shown as ``+++ /dev/null``) is content, not a header."""
    path: str | None = None
    in_header = False
    old_left = new_left = number = 0
    for line in diff.split("\n"):
        if old_left > 0 or new_left > 0:
            tag = line[:1]
            if tag == "+":
                if path is not None:
                    yield _Added(path, number, line[1:])
                number += 1
                new_left -= 1
                continue
            if tag == "-":
                old_left -= 1
                continue
            if tag == " ":
                old_left, new_left, number = old_left - 1, new_left - 1, number + 1
                continue
            if tag == "\\":
                continue  # "\ No newline at end of file"
            old_left = new_left = 0  # a malformed hunk: fall back to header parsing
        if line.startswith("diff --git "):
            path, in_header = None, True
        elif line.startswith("@@ ") and (in_header or path is not None):
            match = _HUNK.match(line)
            if match is None:
                continue
            in_header = False
            old_left = int(match.group(1) or 1)
            new_left = int(match.group(3) or 1)
            number = int(match.group(2))
        elif in_header and line.startswith("+++ "):
            # git appends a tab to names that contain a space (GNU diff's convention).
            target = line[4:].removesuffix("\t")
            path = None if target == "/dev/null" else _unquote(target)[2:]  # drop "b/"
        elif in_header and (line.startswith("Binary files ") or line == "GIT binary patch"):
            report.skip(line, "git printed no text for it")


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        raw = codecs.escape_decode(text[1:-1].encode("utf-8"))[0]
        return raw.decode("utf-8", "replace")
    return text


# --- YAML (ssot/secrets/*.yaml) -------------------------------------------------------------


class _YamlError(ValueError):
    """Unreadable YAML; ``line`` is 1-based (None when PyYAML gives no position)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


_LOADER: Any = None


def _load_yaml(text: str) -> Any:
    """PyYAML's safe loader, refusing duplicate keys: a reviewed data file is better rejected
    than read with one of two entries silently dropped."""
    global _LOADER  # noqa: PLW0603 - one loader class per process, built on first use
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise GuardUsageError(
            "the guard reads ssot/secrets/*.yaml with PyYAML, which is not installed: "
            "pip install 'plane_connector[guard]'"
        ) from None
    if _LOADER is None:

        class StrictLoader(yaml.SafeLoader):  # type: ignore[misc, name-defined]
            pass

        def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = loader.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
            return loader.construct_mapping(node, deep)

        StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
        _LOADER = StrictLoader
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _YamlError(str(problem), mark.line + 1 if mark is not None else None) from None


# --- secrets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Allow:
    path: str
    sha256: str
    reason: str


_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----")
_PRIVATE_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^/\s:@\"'`]+:(?P<value>[^/\s@\"'`]+)@")
_SECRET_NAME = re.compile(
    r"secret|token|passw(?:or)?d|passwd|\bpwd\b|_pwd|api[_\-]?key|apikey|private[_\-]?key"
    r"|access[_\-]?key|auth[_\-]?key|credential|encryption[_\-]?key|signing[_\-]?key",
    re.IGNORECASE,
)
# Names that mention a secret but hold something else: where it lives, what it is called.
_NOT_A_VALUE_NAME = re.compile(
    r"(?:_ref|_reference|_url|_uri|_path|_file|_env|_name|_field|_header|_param|_id|_type"
    r"|_endpoint|_length|_len|_prefix|_pattern|_regex|_re|_format|_hash|_sha256|_kind)$",
    re.IGNORECASE,
)
_ASSIGN_QUOTED = re.compile(
    r"""["']?(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)["']?\s*"""
    r"""(?::\s*[A-Za-z_][\w\[\], |.]*\s*=|:=|=>|=|:)\s*"""
    r"""(?P<q>["'])(?P<value>[^"'\\]{8,400})(?P=q)"""
)
_ASSIGN_BARE = re.compile(
    r"""^\s*(?:export\s+|ENV\s+|-\s+)?["']?(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)["']?\s*[:=]\s*"""
    r"""(?P<value>[A-Za-z0-9+/=_\-.~!@$%^&*]{16,400})\s*(?:#.*)?$"""
)
_KEY_STORE_SUFFIXES = {".p12", ".pfx", ".pkcs12", ".jks", ".keystore", ".bks"}
_CONFIG_SUFFIXES = {
    ".env", ".ini", ".cfg", ".conf", ".yaml", ".yml", ".toml", ".properties", ".tfvars",
}  # fmt: skip
_PLACEHOLDER = re.compile(
    r"example|changeme|change_me|dummy|placeholder|your[_\-]|redacted|xxxx|\*\*\*|\.\.\.|…",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Hit:
    kind: str
    value: str
    shown: str


def _load_allowlist(repo: _Repo, path: str | None) -> list[_Allow]:
    rel = path or DEFAULT_ALLOWLIST
    full = repo.root / rel
    if not full.is_file():
        if path:
            raise GuardUsageError(f"allowlist {rel} not found")
        return []
    try:
        data = _load_yaml(full.read_text(encoding="utf-8"))
    except _YamlError as exc:
        raise GuardUsageError(f"allowlist {rel}: {exc}") from None
    entries = (data or {}).get("allow") if isinstance(data, dict) else None
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise GuardUsageError(f"allowlist {rel}: `allow` must be a list")
    out = []
    for i, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise GuardUsageError(f"allowlist {rel}: entry {i} is not a mapping")
        missing = [k for k in ("path", "sha256", "reason") if not str(entry.get(k) or "").strip()]
        if missing:
            raise GuardUsageError(f"allowlist {rel}: entry {i} lacks {', '.join(missing)}")
        digest = str(entry["sha256"]).lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise GuardUsageError(f"allowlist {rel}: entry {i}: sha256 must be 64 hex digits")
        if len(str(entry["reason"]).split()) < 3:
            raise GuardUsageError(f"allowlist {rel}: entry {i}: give a real reason")
        out.append(_Allow(str(entry["path"]), digest, str(entry["reason"])))
    return out


def _scan_secrets(added: list[_Added], allowed: list[_Allow], report: GuardReport) -> set[_Allow]:
    """Record findings; return the allowlist entries that admitted something."""
    used: set[_Allow] = set()
    by_file: dict[str, list[_Added]] = {}
    for item in added:
        by_file.setdefault(item.path, []).append(item)
    for path, items in by_file.items():
        config_like = _is_config_file(path)
        split = _split_hits(items)
        index = 0
        while index < len(items):
            item = items[index]
            hits = list(_line_hits(item.text, config_like))
            hits += split.get(index, [])
            begin = _PRIVATE_KEY_BEGIN.search(item.text)
            if begin:
                block, end = _private_key_block(items, index)
                hits.append(_Hit("private key", block, begin.group(0)))
                for inside in range(index + 1, end):
                    hits += split.get(inside, [])
                index = end
            else:
                index += 1
            seen: set[str] = set()
            for hit in hits:
                if hit.value in seen:
                    continue
                seen.add(hit.value)
                digest = hashlib.sha256(hit.value.encode("utf-8")).hexdigest()
                admitted = [
                    a for a in allowed if a.sha256 == digest and fnmatch.fnmatchcase(path, a.path)
                ]
                if admitted:
                    used.update(admitted)
                    report.allowlisted += 1
                    continue
                report.findings.append(
                    Finding(path, item.line, "secret", f"{hit.kind} {hit.shown} (sha256 {digest})")
                )
    return used


def _scan_key_stores(repo: _Repo, allowed: list[_Allow], report: GuardReport) -> set[_Allow]:
    # Binary key stores carry private keys the line scan cannot see; the value is the file.
    used: set[_Allow] = set()
    for path in repo.changed_paths:
        if PurePosixPath(path).suffix.lower() not in _KEY_STORE_SUFFIXES:
            continue
        try:
            digest = hashlib.sha256((repo.root / path).read_bytes()).hexdigest()
        except OSError:
            continue
        admitted = [a for a in allowed if a.sha256 == digest and fnmatch.fnmatchcase(path, a.path)]
        if admitted:
            used.update(admitted)
            report.allowlisted += 1
            continue
        report.findings.append(
            Finding(path, None, "secret", f"key store file (sha256 {digest} of the file)")
        )
    return used


def _private_key_block(items: list[_Added], index: int) -> tuple[str, int]:
    # The whole block is the value (so an allowlist entry pins one key, not every key in a path).
    lines = [items[index].text]
    end = index + 1
    while end < len(items) and items[end].line == items[end - 1].line + 1:
        lines.append(items[end].text)
        end += 1
        if _PRIVATE_KEY_END.search(lines[-1]):
            break
    return "\n".join(lines), end


def _line_hits(text: str, config_like: bool) -> Iterator[_Hit]:
    if "\0" in text:
        # UTF-16/32 without a BOM: git and UTF-8 see NULs between the characters. A key is
        # ASCII, so what is left without them is the key (and nothing a key could hide in).
        text = text.replace("\0", "")
    for kind, pattern in SECRET_PATTERNS:
        for match in pattern.finditer(text):
            yield _Hit(kind, match.group(0), mask(match.group(0)))
        # A reversed literal ("…_ipa_enalp"[::-1]) reads forwards in the reversed line.
        for match in pattern.finditer(text[::-1]):
            yield _Hit(f"reversed {kind}", match.group(0), mask(match.group(0)))
    for match in _URL_CREDENTIALS.finditer(text):
        value = match.group("value")
        if _is_random_literal(value, min_len=8, min_entropy=2.5):
            yield _Hit("password in a URL", value, "…://user:***@")
    matches = list(_ASSIGN_QUOTED.finditer(text))
    if config_like:
        bare = _ASSIGN_BARE.match(text)
        if bare:
            matches.append(bare)
    for match in matches:
        name, value = match.group("name"), match.group("value")
        if not _SECRET_NAME.search(name) or _NOT_A_VALUE_NAME.search(name):
            continue
        if _is_random_literal(value, min_len=16, min_entropy=3.5):
            yield _Hit(f"high-entropy value assigned to {name}", value, mask(value))
    yield from _encoded_hits(text)


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{24,}={0,2}")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{40,}(?![0-9A-Fa-f])")
# A string literal closed and the next one opened, with at most a concatenation operator (or a
# comma: "".join([...])) and line breaks between: "plane_api_0123" "4567", 'plane_' + 'api_',
# "..." .\n "...", or a backslash-newline inside one literal.
_CREDENTIAL_PREFIXES = ("plane_api_", "plane_wh_", "pln_")
_LITERAL_JOIN = re.compile(r"""["']\s*(?:[+.,\\]\s*)?["']|\\\r?\n""")


def _encoded_hits(text: str) -> Iterator[_Hit]:
    """Plane credentials inside base64 or hex runs (Kubernetes secrets, bytes.fromhex...).

    Each run is decoded from each of its first four (hex: two) characters: a prefix of
    alphabet characters ("ab" + base64) shifts the blocks, and decoded from the run's start
    the key is noise."""
    for match in _BASE64_RUN.finditer(text):
        run = match.group(0)
        for shift in range(4):
            raw = _b64decode(run[shift:])
            if raw is not None:
                yield from _decoded_hits(raw, "base64-encoded")
    for match in _HEX_RUN.finditer(text):
        run = match.group(0)
        for shift in range(2):
            digits = run[shift:]
            yield from _decoded_hits(bytes.fromhex(digits[: len(digits) // 2 * 2]), "hex-encoded")


def _b64decode(run: str) -> bytes | None:
    body = run.rstrip("=")
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return None
    if len(body) % 4 == 1:
        body = body[:-1]  # a dangling character decodes to no byte; the blocks before still do
    try:
        return base64.b64decode(
            body + "=" * (-len(body) % 4), altchars=b"-_" if urlsafe else None, validate=True
        )
    except (binascii.Error, ValueError):
        return None


def _decoded_hits(raw: bytes, how: str) -> Iterator[_Hit]:
    text = raw.decode("utf-8", "replace")
    for kind, pattern in SECRET_PATTERNS:
        for match in pattern.finditer(text):
            yield _Hit(f"{how} {kind}", match.group(0), mask(match.group(0)))
    begin = _PRIVATE_KEY_BEGIN.search(text)
    if begin:
        yield _Hit(f"{how} private key", text, begin.group(0))


def _split_hits(items: list[_Added]) -> dict[int, list[_Hit]]:
    """Plane credentials cut into string literals, in any number of pieces over any number of
    lines; keyed by the index of the item where the credential starts.

    Each run of consecutive added lines is joined once, the junctions between literals removed;
    a match with no junction inside is whole on one line, where the line scan has it."""
    out: dict[int, list[_Hit]] = {}
    start = 0
    while start < len(items):
        end = start + 1
        while end < len(items) and items[end].line == items[end - 1].line + 1:
            end += 1
        _split_run(items, start, end, out)
        start = end
    return out


def _split_run(items: list[_Added], start: int, end: int, out: dict[int, list[_Hit]]) -> None:
    text = "\n".join(items[i].text.replace("\0", "") for i in range(start, end))
    if not any(q in text for q in "\"'\\"):
        return
    parts: list[str] = []
    cuts: list[int] = []  # offsets in the joined text where a junction was removed
    resume: list[int] = []  # the offset in ``text`` where it goes on after that junction
    pos = 0
    for match in _LITERAL_JOIN.finditer(text):
        parts.append(text[pos : match.start()])
        cuts.append((cuts[-1] if cuts else 0) + match.start() - pos)
        resume.append(match.end())
        pos = match.end()
    if not cuts:
        return
    parts.append(text[pos:])
    joined = "".join(parts)
    for kind, pattern in SECRET_PATTERNS:
        for match in pattern.finditer(joined):
            k = bisect.bisect_right(cuts, match.start())
            if k == len(cuts) or cuts[k] >= match.end():
                continue  # no junction inside: whole on one line (the line scan has it)
            inside = cuts[k : bisect.bisect_left(cuts, match.end())]
            if any(joined.startswith(_CREDENTIAL_PREFIXES, c) for c in inside):
                continue  # literals that each start like a credential: a list of values
            where = match.start() if k == 0 else resume[k - 1] + match.start() - cuts[k - 1]
            value = match.group(0)
            hit = _Hit(f"{kind} (split across string literals)", value, mask(value))
            out.setdefault(start + text.count("\n", 0, where), []).append(hit)


def _is_random_literal(value: str, *, min_len: int, min_entropy: float) -> bool:
    if len(value) < min_len or any(c.isspace() for c in value):
        return False
    if value.partition(":")[0] in SCHEMES or "://" in value:
        return False  # a secret reference or a URL, not a value
    if any(s in value for s in ("${", "{{", "%(", "<", ">", "{", "}")) or value.startswith("$"):
        return False  # templated
    if _PLACEHOLDER.search(value):
        return False
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    threshold = min_entropy - 0.5 if re.fullmatch(r"[0-9a-fA-F]+", value) else min_entropy
    return shannon_entropy(value) >= threshold


def _is_config_file(path: str) -> bool:
    name = PurePosixPath(path).name
    suffix = PurePosixPath(path).suffix.lower()
    return suffix in _CONFIG_SUFFIXES or name.startswith(".env") or name == "Dockerfile"


# --- registry -------------------------------------------------------------------------------

_CONFIG_KEY_USE = re.compile(r"(?<![\w.])plane\.[a-z0-9_]+(?:\.[a-z0-9_]+)*_ref\b")
_ENV_REF_USE = re.compile(r"\bPLANE_[A-Z0-9_]*_REF\b")
_CODE_SUFFIXES = {
    ".py", ".xml", ".csv", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".conf", ".sh",
    ".js", ".ts", ".env", ".rs",
}  # fmt: skip


def _check_registry(
    repo: _Repo, added: list[_Added], path: str | None, report: GuardReport
) -> None:
    rel = path or DEFAULT_REGISTRY
    full = repo.root / rel
    if not full.is_file():
        if path or (repo.root / "ssot").is_dir() or _declares_connector(repo.root):
            report.findings.append(Finding(rel, None, "registry", "secrets registry is missing"))
        else:
            report.notes.append(f"no {rel}: registry check skipped (pass --registry to require it)")
        return
    text = full.read_text(encoding="utf-8")
    try:
        data = _load_yaml(text)
    except _YamlError as exc:
        report.findings.append(Finding(rel, exc.line, "registry", f"unreadable: {exc}"))
        return
    entries = data.get("secrets") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        report.findings.append(Finding(rel, None, "registry", "no `secrets:` mapping"))
        return
    lines = text.splitlines()

    def line_of(name: str) -> int | None:
        pattern = re.compile(rf"^\s*['\"]?{re.escape(name)}['\"]?\s*:")
        return next((i for i, ln in enumerate(lines, start=1) if pattern.match(ln)), None)

    for name in REQUIRED_ENTRIES:
        if name not in entries:
            report.findings.append(Finding(rel, None, "registry", f"entry {name} is missing"))
    config_keys: set[str] = set()
    env_names: set[str] = set()
    for name, entry in entries.items():
        for problem in _entry_problems(entry):
            report.findings.append(Finding(rel, line_of(name), "registry", f"{name}: {problem}"))
        if isinstance(entry, dict):
            config_keys.update(str(k) for k in entry.get("config_keys") or [])
            env_names.update(str(k) for k in entry.get("env") or [])
    reported: set[tuple[str, str]] = set()
    for item in added:
        if PurePosixPath(item.path).suffix.lower() not in _CODE_SUFFIXES:
            continue
        uses = [("config key", k, config_keys) for k in _CONFIG_KEY_USE.findall(item.text)]
        uses += [("variable", v, env_names) for v in _ENV_REF_USE.findall(item.text)]
        for what, used, known in uses:
            if used in known or (item.path, used) in reported:
                continue
            reported.add((item.path, used))
            report.findings.append(
                Finding(
                    item.path,
                    item.line,
                    "registry",
                    f"secret reference {what} {used} is not listed in {rel}",
                )
            )


def _entry_problems(entry: Any) -> Iterator[str]:
    if not isinstance(entry, dict):
        yield "must be a mapping"
        return
    for key in REGISTRY_FIELDS:
        if entry.get(key) in (None, "", []):
            yield f"field {key} is missing"
    if "value" in entry or "values" in entry:
        yield "holds a value: the registry lists names and references only"
    if "secret" in entry and not isinstance(entry["secret"], bool):
        yield "field secret must be true or false"
    stores = entry.get("stores") or []
    if not isinstance(stores, list):
        yield "field stores must be a list"
        stores = []
    unknown = [s for s in stores if s not in REGISTRY_STORES]
    if unknown:
        yield f"unknown store {unknown[0]!r} (known: {', '.join(REGISTRY_STORES)})"
    if "config" in stores and entry.get("secret") is not False:
        yield "store config (a plain value in configuration) is only for entries with secret: false"
    reference = entry.get("reference")
    if isinstance(reference, str) and reference.partition(":")[0] in SCHEMES:
        try:
            from plane_connector.secrets import parse

            parsed = parse(reference)
        except SecretError as exc:
            yield f"reference: {exc}"
        else:
            if stores and parsed.scheme not in stores:
                yield f"reference uses {parsed.scheme}: which is not among its stores"
    elif isinstance(reference, str) and reference.partition(":")[0] not in REGISTRY_STORES:
        yield "reference must be a secret reference (env:, keyring:, vault:, file:)"
    for key in ("config_keys", "env", "consumers"):
        if key in entry and not isinstance(entry[key] or [], list):
            yield f"field {key} must be a list"


def _declares_connector(root: Path) -> bool:
    return (root / "python" / "plane_connector" / "__init__.py").is_file() or any(
        (root / "odoo_addons" / CONNECTOR_ADDON / m).is_file()
        for m in ("__manifest__.py", "__openerp__.py")
    )


# --- schema gate: model source --------------------------------------------------------------

# NOT DEFERRABLE only: ON CONFLICT DO NOTHING (the delivery claim) cannot use a deferrable
# constraint as its arbiter, so a duplicate would fail at commit instead of being skipped.
_UNIQUE_DELIVERY = re.compile(
    r'\s*unique\s*(?:nulls\s+(?:not\s+)?distinct\s*)?\(\s*"?delivery_id"?\s*\)'
    r"\s*(?:not\s+deferrable\s*)?",
    re.IGNORECASE | re.DOTALL,
)
_INDEX_DELIVERY = re.compile(r'\s*\(\s*"?delivery_id"?\s*\)\s*', re.DOTALL)


@dataclass
class _ModelForms:
    sql_constraints: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)  # models.Constraint / UniqueIndex


def _check_model_source(repo: _Repo, require_model: bool, report: GuardReport) -> None:
    found = False
    for path in repo.files():
        if not path.endswith(".py"):
            continue
        full = repo.root / path
        try:
            source = full.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if DELIVERY_MODEL not in source:
            continue
        try:
            tree = ast.parse(source, filename=path)
        except SyntaxError as exc:
            report.findings.append(Finding(path, exc.lineno, "schema", "cannot parse the file"))
            continue
        for cls, name_line in _delivery_models(tree):
            found = True
            version = _odoo_major(repo.root, full)
            problem = _constraint_problem(_collect_forms(cls.body), version)
            if problem:
                report.findings.append(Finding(path, name_line, "schema", problem))
    if not found:
        addon = any(
            (repo.root / d / CONNECTOR_ADDON).is_dir() for d in ("", "odoo_addons", "addons")
        )
        if require_model or addon:
            report.findings.append(
                Finding(
                    ".",
                    None,
                    "schema",
                    f"no model declares _name = {DELIVERY_MODEL!r} (the dedupe table is gone)",
                )
            )
        else:
            report.notes.append(
                f"no {DELIVERY_MODEL} model in this repository: schema gate skipped"
            )


def _delivery_models(tree: ast.AST) -> Iterator[tuple[ast.ClassDef, int]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            value, target = _assignment(stmt)
            if target == "_name" and _const_str(value) == DELIVERY_MODEL:
                yield node, stmt.lineno


def _assignment(stmt: ast.stmt) -> tuple[ast.expr | None, str | None]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        return stmt.value, target.id if isinstance(target, ast.Name) else None
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.value, stmt.target.id
    return None, None


def _const_str(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) or node is None:
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "unique(" "delivery_id)"
        left, right = _const_str(node.left), _const_str(node.right)
        return left + right if left is not None and right is not None else None
    return None


def _collect_forms(body: Iterable[ast.stmt]) -> _ModelForms:
    forms = _ModelForms()
    for stmt in body:
        # Version switches (`if odoo_version >= 19:`) and try/except live in class bodies too.
        if isinstance(stmt, ast.If):
            nested = _collect_forms([*stmt.body, *stmt.orelse])
        elif isinstance(stmt, ast.Try):
            nested = _collect_forms([*stmt.body, *stmt.orelse, *stmt.finalbody])
            for handler in stmt.handlers:
                more = _collect_forms(handler.body)
                nested.sql_constraints += more.sql_constraints
                nested.constraints += more.constraints
        else:
            value, target = _assignment(stmt)
            if target == "_sql_constraints" and isinstance(value, (ast.List, ast.Tuple)):
                for elt in value.elts:
                    if isinstance(elt, (ast.Tuple, ast.List)) and len(elt.elts) >= 2:
                        definition = _const_str(elt.elts[1])
                        if definition is not None:
                            forms.sql_constraints.append(definition)
            elif target and isinstance(value, ast.Call):
                kind = _call_name(value.func)
                definition = _const_str(value.args[0]) if value.args else None
                if kind in ("Constraint", "UniqueIndex") and definition is not None:
                    forms.constraints.append(f"{kind}:{definition}")
            continue
        forms.sql_constraints += nested.sql_constraints
        forms.constraints += nested.constraints
    return forms


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _constraint_problem(forms: _ModelForms, version: int | None) -> str | None:
    sql_ok = any(_UNIQUE_DELIVERY.fullmatch(d) for d in forms.sql_constraints)
    new_ok = any(
        (kind == "Constraint" and _UNIQUE_DELIVERY.fullmatch(d))
        or (kind == "UniqueIndex" and _INDEX_DELIVERY.fullmatch(d))
        for kind, _, d in (c.partition(":") for c in forms.constraints)
    )
    if version is not None and version >= 19:
        if new_ok:
            return None
        if sql_ok:
            return (
                f"Odoo {version} ignores _sql_constraints: declare "
                "models.Constraint('unique(delivery_id)') for the delivery_id unique constraint"
            )
    elif version is not None:
        if sql_ok:
            return None
        if new_ok:
            return (
                f"Odoo {version} has no models.Constraint: declare "
                "_sql_constraints = [(..., 'unique(delivery_id)', ...)]"
            )
    elif forms.constraints and forms.sql_constraints:
        # Declared both ways (one addon for 18 and 19): each Odoo reads only its own form, so a
        # drop from either branch silently loses the constraint on that series.
        if sql_ok and new_ok:
            return None
        if sql_ok or new_ok:
            missing = "models.Constraint (Odoo 19+)" if sql_ok else "_sql_constraints (Odoo <= 18)"
            return (
                f"{DELIVERY_MODEL} declares unique(delivery_id) in one form only: the "
                f"{missing} declaration lacks it"
            )
    elif sql_ok or new_ok:
        return None
    seen = [d for d in forms.sql_constraints] + [c.partition(":")[2] for c in forms.constraints]
    near = [d.strip() for d in seen if "delivery_id" in d]
    detail = f" (found {near[0]!r}, which does not cover exactly (delivery_id))" if near else ""
    return f"{DELIVERY_MODEL} declares no unique constraint on (delivery_id){detail}"


def _odoo_major(root: Path, model_file: Path) -> int | None:
    folder = model_file.parent
    while True:
        for name in ("__manifest__.py", "__openerp__.py"):
            manifest = folder / name
            if manifest.is_file():
                try:
                    data = ast.literal_eval(manifest.read_text(encoding="utf-8"))
                    version = str(data.get("version", ""))
                except (ValueError, SyntaxError, OSError, AttributeError):
                    return None
                match = re.match(r"(\d+)\.\d+\.\d+\.\d+", version)
                return int(match.group(1)) if match else None
        if folder == root or folder.parent == folder:
            return None
        folder = folder.parent


# --- schema gate: live database -------------------------------------------------------------

_UNIQUE_INDEXES_SQL = """
SELECT ic.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = %s::regclass
  AND i.indisunique AND i.indisvalid AND i.indimmediate
  AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indnkeyatts = 1 AND a.attname = 'delivery_id'
"""


def _check_live_schema(dsn: str, report: GuardReport) -> None:
    try:
        psycopg2 = importlib.import_module("psycopg2")
    except ImportError:
        raise GuardUsageError("--dsn needs psycopg2 (pip install psycopg2-binary)") from None
    try:
        dsn = dereference_dsn(dsn)
    except SecretError as exc:
        raise GuardUsageError(f"--dsn: {exc}") from None
    try:
        conn = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or ["error"])[0]
        raise GuardUsageError(
            f"cannot connect to the database: {first.replace(dsn, '***')}"
        ) from None
    try:
        params = conn.get_dsn_parameters()
        where = (
            f"postgresql://{params.get('user', '')}@{params.get('host', '')}:"
            f"{params.get('port', '')}/{params.get('dbname', '')}"
        )
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)::text", (DELIVERY_TABLE,))
            table = cur.fetchone()[0]
            if table is None:
                report.findings.append(
                    Finding(where, None, "schema", f"live database has no table {DELIVERY_TABLE}")
                )
                return
            cur.execute(_UNIQUE_INDEXES_SQL, (table,))
            rows = cur.fetchall()
    finally:
        conn.close()
    if rows:
        report.notes.append(f"live schema: {table} unique on (delivery_id) via {rows[0][0]}")
    else:
        report.findings.append(
            Finding(
                where,
                None,
                "schema",
                f"live table {table} has no unique constraint or index on exactly (delivery_id) "
                "(valid, not partial, not deferrable)",
            )
        )
