"""The building blocks of the views: list + create, detail, membership, Plane's paginator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plane_connector.testing._api.base import (
    MAX_PER_PAGE,
    NOT_FOUND,
    SERVER_ERROR,
    _Ctx,
    _Reply,
    _required,
)
from plane_connector.testing._api.events import WebhookEvents
from plane_connector.testing._store import Entity, compact

# Detail views that only read, patch the listed fields and delete: (webhook event, store table,
# writable fields).
_EXT = ("external_id", "external_source")
SIMPLE_DETAILS: dict[str, tuple[str | None, str, tuple[str, ...]]] = {
    "state": (None, "states", ("name", "color", "group", "description", *_EXT)),
    "label": (None, "labels", ("name", "color", "description", "parent", *_EXT)),
    "cycle": ("cycle", "cycles", ("name", "description", "start_date", "end_date", *_EXT)),
    "module": (
        "module",
        "modules",
        ("name", "description", "start_date", "target_date", "status", "lead", "members", *_EXT),
    ),
}


class ViewKit(WebhookEvents):
    """What several resources' views share."""

    def _collection(
        self,
        ctx: _Ctx,
        event: str,
        table: dict[str, dict[str, Entity]],
        create: Callable[[str, dict[str, Any]], Entity],
    ) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        rows = table[pid]
        if ctx.method == "GET":
            ordered = sorted(rows.values(), key=lambda e: e.data["created_at"], reverse=True)
            return 200, self._page(ctx, [e.data for e in ordered])
        data = ctx.data()
        errors = _required(data, ("name",))
        if errors:
            raise _Reply(400, errors)
        self._external_conflict(event.capitalize(), rows.values(), data)
        entity = create(pid, data)
        self._emit_created(event, entity, ctx.actor_id)
        return 201, entity.data

    def _membership(
        self, ctx: _Ctx, table: dict[str, dict[str, Entity]], members: dict[str, list[str]]
    ) -> tuple[int, Any]:
        ids = self._member_ids(ctx, table, members)
        items = self.store.work_items[ctx.params["pid"]]
        if ctx.method == "GET":
            rows = [self.store.serialize_work_item(items[i]) for i in ids if i in items]
            return 200, self._page(ctx, rows)
        data = ctx.data()
        wanted = data.get("issues")
        if not isinstance(wanted, list) or not wanted:
            raise _Reply(400, {"error": "Issues are required"})
        missing = [i for i in wanted if i not in items]
        if missing:
            raise _Reply(404, NOT_FOUND)
        for i in wanted:
            if i not in ids:
                ids.append(i)
        return 201, [self.store.serialize_work_item(items[i]) for i in wanted]

    def _membership_item(
        self, ctx: _Ctx, table: dict[str, dict[str, Entity]], members: dict[str, list[str]]
    ) -> tuple[int, Any]:
        ids = self._member_ids(ctx, table, members)
        oid = ctx.params["oid"]
        if oid not in ids:
            raise _Reply(404, NOT_FOUND)
        if ctx.method == "DELETE":
            ids.remove(oid)
            return 204, None
        return 200, self.store.serialize_work_item(self.store.work_items[ctx.params["pid"]][oid])

    def _member_ids(
        self, ctx: _Ctx, table: dict[str, dict[str, Entity]], members: dict[str, list[str]]
    ) -> list[str]:
        """The work item ids of the cycle or module the route names (404 when it is missing)."""
        return members[self._get(table[ctx.params["pid"]], ctx.params["cid"]).id]

    def _simple_detail(self, ctx: _Ctx, kind: str) -> tuple[int, Any]:
        event, table_name, writable = SIMPLE_DETAILS[kind]
        table: dict[str, Entity] = getattr(self.store, table_name)[ctx.params["pid"]]
        entity = self._get(table, ctx.params["oid"])
        return self._detail(ctx, event, entity, writable, lambda e: table.pop(e.id, None))

    def _detail(
        self,
        ctx: _Ctx,
        event: str | None,
        entity: Entity,
        writable: tuple[str, ...],
        delete: Callable[[Entity], Any],
    ) -> tuple[int, Any]:
        if ctx.method == "GET":
            return 200, entity.data
        if ctx.method == "DELETE":
            delete(entity)
            if event:
                self._emit_deleted(event, entity, ctx.actor_id)
            return 204, None
        data = ctx.data()
        before = dict(entity.data)
        for key, value in data.items():
            if key in writable:
                entity.data[key] = value
        entity.data["updated_at"] = self.store.timestamp()
        entity.data["updated_by"] = ctx.actor_id
        if event:
            self._emit_updated(event, entity, before, data, ctx.actor_id)
        return 200, entity.data

    @staticmethod
    def _get(table: dict[str, Any], oid: str) -> Any:
        entity = table.get(oid)
        if entity is None:
            raise _Reply(404, NOT_FOUND)
        return entity

    @staticmethod
    def _external_conflict(label: str, rows: Any, data: dict[str, Any]) -> None:
        ext_id, source = data.get("external_id"), data.get("external_source")
        if not (ext_id and source):
            return
        for row in rows:
            if row.data.get("external_id") == ext_id and row.data.get("external_source") == source:
                raise _Reply(
                    409,
                    {
                        "error": f"{label} with the same external id and external "
                        "source already exists",
                        "id": row.id,
                    },
                )

    def _page(self, ctx: _Ctx, rows: list[Any], raw: Callable[[Any], bytes] | None = None) -> bytes:
        """Plane's OffsetPaginator: the cursor's middle part is a page index times per_page."""
        raw_per_page = ctx.q("per_page")
        try:
            per_page = int(raw_per_page) if raw_per_page is not None else MAX_PER_PAGE
        except ValueError:
            raise _Reply(400, {"detail": "Invalid per_page parameter."}) from None
        if per_page > MAX_PER_PAGE:
            raise _Reply(400, {"detail": f"Invalid per_page value. Cannot exceed {MAX_PER_PAGE}."})
        cursor = ctx.q("cursor", f"{per_page}:0:0") or ""
        bits = cursor.split(":")
        try:
            if len(bits) != 3:
                raise ValueError(cursor)
            float(bits[0]) if "." in bits[0] else int(bits[0])
            page = int(bits[1])
            int(bits[2])
        except ValueError:
            raise _Reply(400, {"detail": "Invalid cursor parameter."}) from None
        offset = page * per_page
        if offset < 0:
            raise _Reply(400, {"detail": "Error in parsing"})
        total = len(rows)
        if per_page < 0 or (per_page == 0 and total):
            # Plane slices the queryset with a negative stop, or divides the total by 0: a 500.
            raise _Reply(500, SERVER_ERROR)
        chunk = rows[offset : offset + per_page]
        has_next = total > offset + per_page
        if self.faults.take(ctx.method, ctx.path, ("page_repeat",)) is not None:
            chunk, has_next = rows[:per_page], True
        meta = (
            b'{"grouped_by":null,"sub_grouped_by":null,"total_count":%d,'
            b'"next_cursor":"%d:%d:0","prev_cursor":"%d:%d:1",'
            b'"next_page_results":%s,"prev_page_results":%s,"count":%d,"total_pages":%d,'
            b'"total_results":%d,"extra_stats":null,"results":['
        ) % (
            total, per_page, page + 1, per_page, page - 1,
            b"true" if has_next else b"false", b"true" if page > 0 else b"false", len(chunk),
            -(-total // per_page) if total else 0, total,
        )  # fmt: skip
        encode = raw or compact
        return meta + b",".join(encode(r) for r in chunk) + b"]}"
