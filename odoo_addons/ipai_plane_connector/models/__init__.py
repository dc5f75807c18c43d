from . import plane_sync_guard  # noqa: F401, I001 - first: the models below inherit it
from . import (  # noqa: F401 - registers the models
    ir_config_parameter,
    plane_connector,
    plane_health_check,
    plane_outage,
    plane_project_link,
    plane_webhook_delivery,
    res_config_settings,
)
