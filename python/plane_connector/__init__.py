"""plane_connector: the Odoo <-> Plane connector core.

The network-facing pieces (URL joining, the throttled client, the cursor pager, the signature
verifier) live in the Rust extension ``plane_connector._core``; this package re-exports them and
adds the pure-Python parts (webhook receiver, delivery stores, secrets, MCP config, emulator, CLI).
"""

from plane_connector._core import __version__, sign_body, verify_signature

__all__ = ["__version__", "sign_body", "verify_signature"]
