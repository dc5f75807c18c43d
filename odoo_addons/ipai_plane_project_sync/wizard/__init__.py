from . import plane_project_pick  # noqa: F401 - registers the wizard
