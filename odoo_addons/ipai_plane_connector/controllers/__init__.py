from . import main, oauth  # noqa: F401
