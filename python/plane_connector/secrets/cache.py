"""Resolved secrets kept for a while: :class:`SecretCache`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from plane_connector.secrets.policy import SecretPolicy
from plane_connector.secrets.redaction import Redacted
from plane_connector.secrets.references import SecretError, SecretRef, parse
from plane_connector.secrets.resolvers import resolve


class SecretCache:
    """Resolved secrets kept for ``ttl`` seconds, per (reference, policy).

    For callers that resolve on every request (a webhook controller, a sync job): a vault or
    keyring round trip per request is slow and hammers the store. A failure is remembered for
    ``negative_ttl`` seconds only (so a reference that does not resolve is not retried by every
    request, and a fixed one works again quickly) and re-raised as a fresh :class:`SecretError`
    with the same message. Values are held as :class:`Redacted`. Thread-safe; the lock is not
    held while a store is queried, so two threads missing at once may both resolve.
    """

    def __init__(
        self,
        ttl: float = 300.0,
        *,
        negative_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        resolver: Callable[..., str] | None = None,
    ) -> None:
        if ttl < 0 or negative_ttl < 0:
            raise ValueError("ttl and negative_ttl must be >= 0")
        self.ttl = float(ttl)
        # A failure is never remembered longer than a success would be.
        self.negative_ttl = float(min(negative_ttl, ttl))
        self._clock = clock
        self._resolve = resolver or resolve
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, SecretPolicy | None, str | None], _CacheEntry] = {}

    def get(
        self,
        ref: str | SecretRef,
        policy: SecretPolicy | None = None,
        *,
        vault_dsn: str | None = None,
    ) -> Redacted:
        """The value behind ``ref`` (resolved under ``policy``), from the cache when fresh."""
        parsed = parse(ref)
        key = (str(parsed), policy, vault_dsn)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and now < entry.expires:
            if entry.error is not None:
                raise SecretError(entry.error)
            assert entry.value is not None
            return entry.value
        try:
            value = Redacted(self._resolve(parsed, vault_dsn=vault_dsn, policy=policy))
        except SecretError as exc:
            with self._lock:
                self._entries[key] = _CacheEntry(None, str(exc), now + self.negative_ttl)
            raise
        with self._lock:
            self._entries[key] = _CacheEntry(value, None, now + self.ttl)
        return value

    def invalidate(self, prefix: str = "") -> int:
        """Forget the entries whose reference starts with ``prefix`` (all with ``""``).

        Call it when a setting that holds a reference changes, or after a rotation. Returns
        how many entries were dropped."""
        with self._lock:
            doomed = [k for k in self._entries if k[0].startswith(prefix)]
            for key in doomed:
                del self._entries[key]
        return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"SecretCache(ttl={self.ttl}, entries={len(self)})"


@dataclass(frozen=True)
class _CacheEntry:
    value: Redacted | None
    error: str | None
    expires: float
