"""Values that become request paths: Plane ids, the workspace slug, every path segment.

A Plane id is a UUID, a workspace slug is letters, digits, "-" and "_", and every segment of a
path we send is one of those or a word such as "work-items" (never "..", "%2e", "/").
"""

from __future__ import annotations

import re
from typing import Any

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def is_slug(value: Any) -> bool:
    return isinstance(value, str) and _SLUG.fullmatch(value) is not None


def bad_path_segment(path: str) -> str | None:
    """The first segment of an API path that is not a plain word or id, or None when all are.

    Paths are relative to /api/v1/ and end with "/": every segment in between must be a
    word, a slug or a UUID, so no value can climb out of the workspace it was joined into.
    """
    segments = path.split("/")
    if segments and segments[-1] == "":
        segments.pop()
    for segment in segments or [""]:
        if _SEGMENT.fullmatch(segment) is None:
            return segment
    return None
