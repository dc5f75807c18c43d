from . import test_backfill, test_sync  # noqa: F401
