"""The Plane health check: ``GET users/me/`` through the connector's client.

One implementation for the deploy gate (``plane-connector health``) and Odoo's health-check cron:
healthy means Plane answered 200 with a user. The result carries latency, the user, the remaining
rate budget and a value-free error message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from plane_connector import secrets
from plane_connector._errors import ConfigError, HTTPError, PlaneError, RateLimitError

__all__ = ["ME_PATH", "HealthResult", "check", "client_from_reference", "display_url"]

ME_PATH = "users/me/"


class _RateLimit(Protocol):
    @property
    def remaining(self) -> int | None: ...


class _Client(Protocol):
    @property
    def base_url(self) -> str: ...
    @property
    def rate_limit(self) -> _RateLimit: ...
    def me(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class HealthResult:
    """Outcome of one check. ``config_error`` marks problems no retry will fix (bad URL...)."""

    ok: bool
    status: int | None
    latency_ms: float
    endpoint: str
    user_display: str | None = None
    user_email: str | None = None
    remaining: int | None = None
    error: str | None = None
    config_error: bool = False
    #: What the server is and how work items are reached, e.g. "Plane CE 1.0.0 — work items
    #: via /issues/" (see ``plane_connector.server``); None when the check failed.
    server: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``--json`` and Odoo's stored check results)."""
        return asdict(self)

    def summary(self) -> str:
        """One human line: state, status, latency, endpoint and the error if any."""
        took = f"{self.latency_ms:.0f} ms"
        if self.ok:
            return f"OK: Plane answered {self.status} in {took} ({self.endpoint})"
        status = f"{self.status} " if self.status else ""
        return f"UNHEALTHY: {status}from {self.endpoint} after {took}: {self.error}"


def check(client: _Client, *, redact: Iterable[str | None] = ()) -> HealthResult:
    """Call ``users/me/`` once and describe the outcome; never raises for Plane-side failures.

    ``redact``: secret values to scrub from error text, as a second line of defence behind the
    client's own redaction.
    """
    hidden = [s for s in redact if s]
    endpoint = display_url(client.base_url)
    started = time.perf_counter()
    status: int | None = None
    try:
        user = client.me()
    except RateLimitError as exc:
        error, status = _message(exc, hidden), exc.status
        if exc.retry_after is not None:
            error += f" (retry after {exc.retry_after:.0f} s)"
        return _failed(client, endpoint, started, status, error)
    except HTTPError as exc:
        return _failed(client, endpoint, started, exc.status, _message(exc, hidden))
    except ConfigError as exc:
        return _failed(client, endpoint, started, None, _message(exc, hidden), config=True)
    except PlaneError as exc:
        return _failed(client, endpoint, started, None, _message(exc, hidden))
    except Exception as exc:  # noqa: BLE001 - a health check reports; a cron must not crash
        text = f"{type(exc).__name__}: {_message(exc, hidden)}"
        return _failed(client, endpoint, started, None, text)
    latency = _elapsed_ms(started)
    if not isinstance(user, dict) or not user.get("id"):
        return _failed(client, endpoint, started, 200, "users/me/ answered without a user")
    display = user.get("display_name") or " ".join(
        p for p in (user.get("first_name"), user.get("last_name")) if p
    )
    return HealthResult(
        ok=True,
        status=200,
        latency_ms=latency,
        endpoint=endpoint,
        user_display=display or None,
        user_email=user.get("email") or None,
        remaining=_remaining(client),
        server=_server(client),
    )


def _server(client: _Client) -> str | None:
    """The server's profile, detected afresh: each check notices a Plane upgraded in place."""
    from plane_connector import server

    try:
        return server.detect(client, refresh=True).label()
    except Exception:  # noqa: BLE001 - the profile is extra; the check's verdict stands
        return None


def client_from_reference(
    base_url: str,
    api_key_ref: str,
    *,
    timeout: float = 10.0,
    vault_dsn: str | None = None,
    policy: secrets.SecretPolicy | None = None,
    ca_bundle: str | None = None,
) -> tuple[Any, str]:
    """A PlaneClient for a health check, and the resolved key (for :func:`check`'s ``redact``).

    No retries and no throttle wait: a deploy gate wants the answer now, and a 429 already says
    the key works but has no budget left. Raises ``SecretError`` or ``ConfigError``; a
    reference ``policy`` refuses (a database-held one, e.g. "Test connection") is refused here,
    so no client exists and nothing is sent.
    """
    from plane_connector import PlaneClient

    key = secrets.resolve(api_key_ref, vault_dsn=vault_dsn, policy=policy)
    return (
        PlaneClient(
            base_url, api_key=key, timeout=timeout, max_retries=0, max_wait=0.0,
            ca_bundle=ca_bundle,
        ),  # fmt: skip
        key,
    )


def display_url(base_url: str) -> str:
    """The users/me/ URL for ``base_url``, without any user:password part."""
    from plane_connector import build_url

    parts = urlsplit(base_url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        base_url = urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))
    try:
        return build_url(base_url, ME_PATH)
    except (PlaneError, ValueError):
        return base_url


def _failed(
    client: _Client,
    endpoint: str,
    started: float,
    status: int | None,
    error: str,
    *,
    config: bool = False,
) -> HealthResult:
    return HealthResult(
        ok=False,
        status=status,
        latency_ms=_elapsed_ms(started),
        endpoint=endpoint,
        remaining=_remaining(client),
        error=error,
        config_error=config,
    )


def _message(exc: BaseException, hidden: list[str]) -> str:
    text = getattr(exc, "message", None) if isinstance(exc, HTTPError) else None
    text = text or str(exc) or type(exc).__name__
    if isinstance(exc, HTTPError) and exc.status in (401, 403):
        text += " (check the API key reference and the key's access to the workspace)"
    return secrets.redact(text, *hidden)


def _remaining(client: _Client) -> int | None:
    try:
        return client.rate_limit.remaining
    except (AttributeError, PlaneError):
        return None


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 1)
