from . import (  # noqa: F401 - registers the models
    plane_connector,
    plane_health_check,
    plane_project_link,
    plane_webhook_delivery,
    res_config_settings,
)
