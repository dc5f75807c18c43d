from . import test_connector, test_cron, test_schema, test_webhook_http  # noqa: F401
