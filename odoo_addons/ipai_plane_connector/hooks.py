"""Install hooks."""

DEFAULT_BASE_URL = "https://api.plane.so"


def post_init_hook(env):
    """Set ``plane.base_url`` only when absent: a value set before install is kept."""
    params = env["ir.config_parameter"].sudo()
    if not params.get_param("plane.base_url"):
        params.set_param("plane.base_url", DEFAULT_BASE_URL)
