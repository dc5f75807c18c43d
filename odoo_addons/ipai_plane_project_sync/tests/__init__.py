from . import test_backfill, test_claim, test_mapping, test_security, test_sync  # noqa: F401
