from . import bir_filing, plane_connector, res_config_settings  # noqa: F401 - registers the models
