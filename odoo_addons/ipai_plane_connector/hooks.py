"""Install hooks."""

from .settings import BASE_URL


def post_init_hook(env):
    """Set ``plane.base_url`` only when absent: a value set before install is kept."""
    params = env["ir.config_parameter"].sudo()
    if not params.get_param(BASE_URL.param):
        params.set_param(BASE_URL.param, BASE_URL.default)
