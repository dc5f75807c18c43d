from . import bir_filing, plane_connector  # noqa: F401 - registers the models
