from . import controllers  # noqa: F401
