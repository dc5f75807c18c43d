"""plane_connector: the Odoo <-> Plane connector core.

The network-facing pieces (URL joining, the throttled client, the cursor pager, the signature
verifier) live in the Rust extension ``plane_connector._core``; this package re-exports them and
adds the pure-Python parts (webhook receiver, delivery stores, secrets, MCP config, emulator, CLI).
"""

from plane_connector._core import (
    AsyncPlaneClient,
    CursorPager,
    PlaneClient,
    RateLimitInfo,
    __version__,
    build_url,
    sign_body,
    verify_signature,
)
from plane_connector._errors import (
    AuthError,
    ConfigError,
    ConflictError,
    HTTPError,
    NotFoundError,
    PaginationError,
    PlaneError,
    RateLimitError,
    TimeoutError,
    TransportError,
)

__all__ = [
    "AsyncPlaneClient",
    "AuthError",
    "ConfigError",
    "ConflictError",
    "CursorPager",
    "HTTPError",
    "NotFoundError",
    "PaginationError",
    "PlaneClient",
    "PlaneError",
    "RateLimitError",
    "RateLimitInfo",
    "TimeoutError",
    "TransportError",
    "__version__",
    "build_url",
    "sign_body",
    "verify_signature",
]
