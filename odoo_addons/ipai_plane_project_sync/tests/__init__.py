from . import (  # noqa: F401
    test_backfill,
    test_claim,
    test_cron_budget,
    test_event_scope,
    test_mapping,
    test_outage,
    test_security,
    test_sync,
    test_tours,
)
