"""Views: a work item's comments."""

from __future__ import annotations

from typing import Any

from plane_connector.testing._api.base import NOT_FOUND, PAYLOAD_INVALID, _Ctx, _Reply
from plane_connector.testing._api.kit import ViewKit


class CommentViews(ViewKit):
    def _v_comments(self, ctx: _Ctx) -> tuple[int, Any]:
        pid, iid = ctx.params["pid"], ctx.params["iid"]
        comments = self.store.comments[pid]
        if ctx.method == "GET":
            # The list filters comments by the item id: an unknown item has none (200).
            rows = [_comment_read(c.data) for c in comments.values() if c.data["issue"] == iid]
            return 200, self._page(ctx, sorted(rows, key=lambda r: r["created_at"], reverse=True))
        data = ctx.data()
        self._external_conflict("Work item comment", comments.values(), data)
        if iid not in self.store.work_items[pid]:
            raise _Reply(400, PAYLOAD_INVALID)  # the comment's foreign key fails on insert
        comment = self.store.create_comment(pid, iid, data, ctx.actor_id)
        self._emit_created("issue_comment", comment, ctx.actor_id)
        # The view saves the new comment once more (created_at, created_by only): the answer
        # shows the updated_by that second save set in memory; the row keeps NULL (seen live).
        return 201, {**comment.data, "updated_by": ctx.actor_id}

    def _v_comment(self, ctx: _Ctx) -> tuple[int, Any]:
        comments = self.store.comments[ctx.params["pid"]]
        comment = self._get(comments, ctx.params["oid"])
        if comment.data["issue"] != ctx.params["iid"]:
            raise _Reply(404, NOT_FOUND)
        if ctx.method == "GET":
            return 200, _comment_read(comment.data)
        return self._detail(
            ctx,
            "issue_comment",
            comment,
            ("comment_html", "access", "external_id", "external_source"),
            lambda e: comments.pop(e.id, None),
        )


def _comment_read(data: dict[str, Any]) -> dict[str, Any]:
    """A comment as the read views give it: their queryset adds ``is_member`` (seen live)."""
    return {"id": data["id"], "is_member": True, **{k: v for k, v in data.items() if k != "id"}}
