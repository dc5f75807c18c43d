# The version carries no Odoo series: Odoo prefixes it, so the same addon installs on 18.0 and
# 19.0 (a "18.0.x" version makes it silently uninstallable on 19.0, and the reverse).
{  # noqa: B018 - an Odoo manifest is a bare dict
    "name": "Plane Connector",
    "summary": "Connect Odoo with Plane (plane.so): REST client, signed webhooks, sync crons",
    "version": "1.1.0",
    "category": "Productivity/Project",
    "license": "LGPL-3",
    "author": "IPAI",
    "website": "https://github.com/",
    "depends": ["base_setup"],
    "external_dependencies": {"python": ["plane_connector"]},
    "data": [
        "security/ir.model.access.csv",
        "data/ir_cron.xml",
        "views/plane_webhook_delivery_views.xml",
        "views/plane_project_link_views.xml",
        "views/plane_health_check_views.xml",
        "views/res_config_settings_views.xml",
        "views/menus.xml",
    ],
    "assets": {
        # Browser tours (tests/test_tours.py); loaded only when tests run in the browser.
        "web.assets_tests": ["ipai_plane_connector/static/tests/tours/*.js"],
    },
    "post_init_hook": "post_init_hook",
    "installable": True,
    "application": False,
}
