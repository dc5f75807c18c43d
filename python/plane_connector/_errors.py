"""Exceptions raised by the Rust core (``plane_connector._core``) and re-exported by the package.

They live in Python so they can carry typed attributes and so ``TimeoutError`` can also be a
builtin ``TimeoutError``. No message or attribute ever holds an API key or a token: the core
redacts them before it builds the error.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

#: Longest wait (seconds) a ``retry_after`` ever carries, whatever the server sent. The Rust core
#: clamps ``Retry-After`` to the same value (``MAX_RETRY_AFTER`` in src/retry.rs); an hour is far
#: past Plane's 60 s window, and far below what breaks ``timedelta`` or a scheduler's arithmetic.
MAX_RETRY_AFTER = 3600.0


class PlaneError(Exception):
    """Base class of every error raised by plane_connector."""


class ConfigError(PlaneError, ValueError):
    """Bad configuration or arguments: base URL, per_page, missing credentials."""


class TransportError(PlaneError):
    """No HTTP answer was received: connect failure, reset, DNS, TLS, or timeout."""


class TimeoutError(TransportError, builtins.TimeoutError):  # noqa: A001 - shadows on purpose
    """The request timed out (connect or read)."""


class PaginationError(PlaneError):
    """A cursor walk cannot continue: server loop, rejected cursor, or a body that is no page."""


class HTTPError(PlaneError):
    """Plane answered with an error status.

    ``status`` is the HTTP status, ``message`` the text Plane gave (from ``detail``, ``error``,
    ``error_message``/``error_code`` or a field map) and ``body`` an excerpt of the raw body.
    """

    def __init__(
        self,
        text: str,
        *,
        status: int = 0,
        body: str = "",
        message: str = "",
        retry_after: float | None = None,
        existing_id: str | None = None,
    ) -> None:
        super().__init__(text)
        self.status = status
        self.body = body
        self.message = message or text
        self.retry_after = clamp_retry_after(retry_after)
        self.existing_id = existing_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes are lost by the default exception pickling (multiprocessing).
        return (
            _rebuild,
            (
                type(self),
                str(self),
                {
                    "status": self.status,
                    "body": self.body,
                    "message": self.message,
                    "retry_after": self.retry_after,
                    "existing_id": self.existing_id,
                },
            ),
        )


class AuthError(HTTPError):
    """401 or 403: missing, invalid or expired credentials, or no permission.

    Plane answers 403 (not 401) to an invalid API key and to an unknown workspace or project.
    """


class NotFoundError(HTTPError):
    """404: the object or route does not exist."""


class ConflictError(HTTPError):
    """409: an object with the same external_id/external_source exists; see ``existing_id``."""


class RateLimitError(HTTPError):
    """429 after the retries were used up; ``retry_after`` is the wait the server asked for.

    ``retry_after`` is None (no usable ``Retry-After``) or a finite float clamped to
    ``[0, MAX_RETRY_AFTER]`` (an hour), whatever the server sent or the caller passed.
    """


def clamp_retry_after(value: Any) -> float | None:
    """``value`` as a finite wait in ``[0, MAX_RETRY_AFTER]`` seconds, or None when it is none.

    An error handler computes ``now + timedelta(seconds=retry_after)``: 3e11 s raised
    ``OverflowError`` inside it. Too large (``inf`` included) is the ceiling; NaN, negative,
    non-numbers and None are no usable wait (None).
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        secs = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if math.isnan(secs) or secs < 0:
        return None
    return min(secs, MAX_RETRY_AFTER)


def _rebuild(cls: type[HTTPError], text: str, attrs: dict[str, Any]) -> HTTPError:
    return cls(text, **attrs)


__all__ = [
    "AuthError",
    "ConfigError",
    "ConflictError",
    "HTTPError",
    "MAX_RETRY_AFTER",
    "NotFoundError",
    "PaginationError",
    "PlaneError",
    "RateLimitError",
    "TimeoutError",
    "TransportError",
]
