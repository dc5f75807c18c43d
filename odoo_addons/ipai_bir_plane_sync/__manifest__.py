# Series-free version: Odoo prefixes it, so the same code installs on 18.0 and 19.0.
{  # noqa: B018 - an Odoo manifest is a bare dict
    "name": "BIR filings in Plane",
    "summary": "Track Philippine BIR tax filings as Plane work items (worked example)",
    "version": "1.0.0",
    "category": "Accounting",
    "license": "LGPL-3",
    "author": "IPAI",
    "depends": ["ipai_plane_connector"],
    "data": [
        "security/ir.model.access.csv",
        "data/ir_cron.xml",
        "views/bir_filing_views.xml",
        "views/res_config_settings_views.xml",
    ],
    "installable": True,
    "application": False,
}
