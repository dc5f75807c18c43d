from . import models, wizard  # noqa: F401 - Odoo loads the addon through these imports
