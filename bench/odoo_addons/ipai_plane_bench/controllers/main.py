"""``POST /plane_bench/ok``: answers 200 and does nothing else.

The baseline of ``python -m bench --only odoo_webhook``: the same dispatch as ``/plane/webhook``
(``type="http"``, ``auth="none"``, no CSRF, no session saved) with no work behind it, so its
throughput is the ceiling Odoo's own request handling sets on this machine. This addon lives under
bench/ and is put on the addons path only by the benchmark: it is never shipped.
"""

from odoo import http
from odoo.http import request


class PlaneBenchController(http.Controller):
    @http.route(
        "/plane_bench/ok", type="http", auth="none", methods=["POST"], csrf=False,
        save_session=False,
    )
    def plane_bench_ok(self, **_kwargs):
        return request.make_json_response({"status": "ok"})
