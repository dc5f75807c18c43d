"""The secret scan of added lines: known credential shapes, assignments, encoded and split
values, key store files, and the reviewed allowlist."""

from __future__ import annotations

import base64
import binascii
import bisect
import fnmatch
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from plane_connector.guard.diff import _Added, _Repo
from plane_connector.guard.report import DEFAULT_ALLOWLIST, Finding, GuardReport, GuardUsageError
from plane_connector.guard.yamlfile import _load_yaml, _YamlError
from plane_connector.secrets import SCHEMES, SECRET_PATTERNS, mask, shannon_entropy


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
