from . import controllers, models  # noqa: F401 - Odoo loads the addon through these imports
from .hooks import post_init_hook

__all__ = ["post_init_hook"]
