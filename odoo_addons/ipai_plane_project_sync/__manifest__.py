# Series-free version: Odoo prefixes it, so the same code installs on 18.0 and 19.0.
{  # noqa: B018 - an Odoo manifest is a bare dict
    "name": "Plane project sync",
    "summary": "Odoo projects and tasks shown and worked on in Plane (Odoo owns the data)",
    "version": "1.1.0",
    "category": "Services/Project",
    "license": "LGPL-3",
    "author": "IPAI",
    "depends": ["project", "ipai_plane_connector"],
    "data": [
        "security/ir.model.access.csv",
        "security/plane_security.xml",
        "data/ir_cron.xml",
        "views/plane_sync_job_views.xml",
        "views/project_project_views.xml",
        "views/project_task_views.xml",
        "views/project_task_type_views.xml",
        "wizard/plane_project_pick_views.xml",
    ],
    "assets": {
        # Browser tours (tests/test_tours.py); loaded only when tests run in the browser.
        "web.assets_tests": ["ipai_plane_project_sync/static/tests/tours/*.js"],
    },
    "installable": True,
    "application": False,
}
