from . import (  # noqa: F401
    test_connector,
    test_cron,
    test_event_scope,
    test_oauth,
    test_operator_host,
    test_schema,
    test_security,
    test_server_profile,
    test_settings_table,
    test_tours,
    test_wake,
    test_webhook_http,
)
