from . import test_backfill, test_claim, test_mapping, test_sync, test_tours  # noqa: F401
