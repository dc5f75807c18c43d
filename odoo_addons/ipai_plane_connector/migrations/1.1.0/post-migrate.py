"""1.1.0: purged deliveries keep their fingerprint (``plane_webhook_delivery_fingerprint``).

The ORM has created the table from its model by now; this adds the wheel's index on it in
databases updated from 1.0.0, so that the claim's lookup and the purge of old fingerprints
stay fast. Done rows purged before this version are gone, with their fingerprints.
"""

import logging

_log = logging.getLogger(__name__)


def migrate(cr, version):
    if not version:
        return
    from plane_connector.dedupe import ensure_fingerprint_schema

    ensure_fingerprint_schema(cr)
    _log.info("plane_webhook_delivery_fingerprint ready: purged deliveries keep refusing replays")
