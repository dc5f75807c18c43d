"""Saying what went wrong without saying a secret: one error description for rows and logs."""

from __future__ import annotations

#: The longest ``last_error`` a delivery row (or a sync job) keeps.
MAX_ERROR_CHARS = 2000


def redact_error(text: str) -> str:
    """Blank out anything shaped like a credential (API keys, tokens, DSN passwords)."""
    # Imported here, not at the top: ``secrets`` may itself import from this module.
    from plane_connector.secrets import redact  # noqa: PLC0415

    return redact(text)


def describe_error(exc: BaseException, *, limit: int = MAX_ERROR_CHARS) -> str:
    """``Type: message`` of an exception, redacted and cut to ``limit`` characters."""
    text = redact_error(f"{type(exc).__name__}: {exc}")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
