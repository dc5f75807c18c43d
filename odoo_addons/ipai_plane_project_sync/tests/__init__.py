from . import test_backfill, test_claim, test_sync  # noqa: F401
