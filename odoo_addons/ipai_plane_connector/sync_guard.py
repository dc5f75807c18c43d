"""Fields only the Plane sync may write, and how a write is known to be the sync's own."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from odoo.exceptions import AccessError


def plane_remote(env: Any) -> bool:
    """Whether the current write is the Plane sync's own (``plane_remote`` in the context).

    Honoured in superuser mode only: the sync always runs in ``sudo()``, and any RPC client
    can put ``plane_remote`` in the context it sends (a task deleted without archiving its
    work item, an edit that never reaches Plane), but none can enter superuser mode.
    """
    return bool(env.su and env.context.get("plane_remote"))


def guard_sync_fields(records: Any, vals_list: Iterable[dict], names: frozenset[str]) -> None:
    """Refuse a user's write of the Plane link/state fields of ``records``' model.

    Those fields hold Plane ids that later become request paths, so only the sync writes
    them, and it does so in superuser mode (``sudo()``), which an RPC caller cannot reach
    (unlike a context key, which any client can send).
    """
    if records.env.su:
        return
    touched = sorted({name for vals in vals_list for name in vals if name in names})
    if touched:
        raise AccessError(
            f"{', '.join(touched)} on {records._description} can only be set by the Plane "
            "synchronisation, not written directly."
        )
