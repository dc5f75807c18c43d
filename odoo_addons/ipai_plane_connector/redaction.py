"""The one redactor for the addons (the wheel's, which knows every secret shape)."""

from __future__ import annotations

from typing import Any


def redact(text: Any) -> str:
    """The one redactor for every error text the addons store on a record, log or raise."""
    try:
        from plane_connector.secrets import redact as wheel_redact
    except ImportError:  # pragma: no cover - external_dependencies stops the install first
        return str(text)
    return wheel_redact(str(text))
