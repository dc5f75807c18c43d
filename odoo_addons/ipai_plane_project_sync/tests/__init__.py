from . import test_backfill, test_claim, test_cron_budget, test_mapping, test_sync  # noqa: F401
