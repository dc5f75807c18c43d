from . import models  # noqa: F401 - Odoo loads the addon through this import
