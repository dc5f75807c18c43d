from . import (  # noqa: F401
    test_connector,
    test_cron,
    test_oauth,
    test_schema,
    test_wake,
    test_webhook_http,
)
