from . import (  # noqa: F401 - registers the models
    mail_message,
    plane_connector,
    plane_sweep_seen,
    plane_sync_job,
    project_project,
    project_task,
    project_task_type,
)
