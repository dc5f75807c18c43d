{  # noqa: B018 - an Odoo manifest is a bare dict
    "name": "Plane Connector benchmark probe (not for production)",
    "summary": "A trivial auth='none' route: the ceiling Odoo's own dispatch sets (bench only)",
    "version": "1.0.0",
    "category": "Hidden",
    "license": "LGPL-3",
    "author": "IPAI",
    "website": "https://github.com/",
    "depends": ["base"],
    "data": [],
    "installable": True,
    "application": False,
}
