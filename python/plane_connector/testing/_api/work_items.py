"""Views: work items (list, order, create, validate, update, delete), search, by identifier."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

from plane_connector.testing._api.base import NOT_FOUND, _Ctx, _Reply
from plane_connector.testing._api.kit import ViewKit
from plane_connector.testing._store import PRIORITIES, STATE_GROUPS, WorkItem

ORDER_BY_ALLOWED = (
    "created_at", "updated_at", "sequence_id", "name", "priority", "state__group", "state__name",
    "sort_order", "start_date", "target_date", "completed_at", "labels__name",
    "assignees__first_name",
)  # fmt: skip


class WorkItemViews(ViewKit):
    def _v_work_items(self, ctx: _Ctx) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        if ctx.method == "POST":
            return self._create_work_item(ctx, pid)
        fields, expand = ctx.csv("fields"), ctx.csv("expand")
        ext_id, ext_source = ctx.q("external_id"), ctx.q("external_source")
        if ext_id and ext_source:
            found = self.store.find_by_external(pid, ext_id, ext_source)
            if found is None:
                raise _Reply(404, NOT_FOUND)
            return 200, self.store.serialize_work_item(found, fields, expand)
        items = self._ordered_items(pid, ctx.q("order_by", "-created_at") or "-created_at")
        if self.store.projects[pid].data["archived_at"]:
            items = []
        if fields or expand:
            rows: list[Any] = [self.store.serialize_work_item(i, fields, expand) for i in items]
            return 200, self._page(ctx, rows)
        return 200, self._page(ctx, items, raw=self.store.work_item_json)

    def _ordered_items(self, pid: str, order_by: str) -> list[WorkItem]:
        base = self.store.ordered_work_items(pid)
        desc = order_by.startswith("-")
        key = order_by.lstrip("-")
        if key not in ORDER_BY_ALLOWED:
            return base  # Plane replaces an unknown order_by with -created_at
        if key == "created_at":
            return base if desc else base[::-1]
        states = self.store.states[pid]

        def value(item: WorkItem) -> Any:
            d = item.data
            if key == "priority":
                return PRIORITIES.index(d["priority"])
            if key in ("state__group", "state__name"):
                state = states.get(d["state"])
                if state is None:
                    return len(STATE_GROUPS)
                return (
                    STATE_GROUPS.index(state.data["group"])
                    if key == "state__group"
                    else (state.data["name"])
                )
            if key == "labels__name":
                names = [
                    self.store.labels[pid][x].data["name"]
                    for x in d["labels"]
                    if x in self.store.labels[pid]
                ]
                return max(names) if names else None
            if key == "assignees__first_name":
                names = [
                    self.store.users[x].first_name for x in d["assignees"] if x in self.store.users
                ]
                return max(names) if names else None
            return d.get(key)

        # Plane orders priority/state by their fixed rank lists (reversed for "-"); other keys
        # like PostgreSQL: NULLs last ascending, first descending. Ties keep -created_at.
        return sorted(base, key=lambda i: (value(i) is None, value(i)), reverse=desc)

    def _create_work_item(self, ctx: _Ctx, pid: str) -> tuple[int, Any]:
        data = self._validate_work_item(pid, ctx.data(), partial=False)
        ext_id, ext_source = data.get("external_id"), data.get("external_source")
        if ext_id and ext_source:
            existing = self.store.find_by_external(pid, str(ext_id), str(ext_source))
            if existing is not None:
                raise _Reply(
                    409,
                    {
                        "error": "Issue with the same external id and external "
                        "source already exists",
                        "id": existing.id,
                    },
                )
        item = self.store.create_work_item(pid, data, ctx.actor_id)
        self._emit_created("issue", item, ctx.actor_id)
        return 201, self.store.serialize_work_item(item)

    def _validate_work_item(
        self, pid: str, data: dict[str, Any], *, partial: bool
    ) -> dict[str, Any]:
        """The API's IssueSerializer on a work item's input; returns what it keeps.

        Field errors first, all of them, keyed in the serializer's field order; then its
        ``validate``, whose first failure is a ``non_field_errors`` answer. Labels of another
        project and assignees who are not members of this one are dropped without a word
        (seen live)."""
        errors: dict[str, Any] = {}
        if not partial or "name" in data:
            name = data.get("name")
            if "name" not in data:
                errors["name"] = ["This field is required."]
            elif name is None:
                errors["name"] = ["This field may not be null."]
            elif not isinstance(name, str) or not name.strip():
                errors["name"] = ["This field may not be blank."]
            elif len(name) > 255:
                errors["name"] = ["Ensure this field has no more than 255 characters."]
        if "priority" in data:
            if data["priority"] is None:
                errors["priority"] = ["This field may not be null."]
            elif data["priority"] not in PRIORITIES:
                errors["priority"] = [f'"{data["priority"]}" is not a valid choice.']
        # The related-field querysets span the whole workspace, not this project.
        tables = {"state": self.store.states, "parent": self.store.work_items,
                  "labels": self.store.labels, "assignees": {"": self.store.users}}
        for key in ("state", "parent"):
            problem = _pk_problem(data.get(key), tables[key])
            if problem:
                errors[key] = [problem]
        for key in ("labels", "assignees"):
            known = tables[key]
            if key not in data:
                continue
            values = data[key]
            if not isinstance(values, list):
                kind = type(values).__name__
                errors[key] = [f'Expected a list of items but got type "{kind}".']
                continue
            bad = {str(i): [msg] for i, v in enumerate(values) if (msg := _pk_problem(v, known))}
            if bad:
                errors[key] = bad
        for key in ("start_date", "target_date"):
            value = data.get(key)
            if value is not None and not _is_date(value):
                errors[key] = [
                    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
                ]
        if errors:
            raise _Reply(400, {k: errors[k] for k in sorted(errors, key=_field_rank)})
        clean = dict(data)
        if data.get("start_date") and data.get("target_date") and (
            data["start_date"] > data["target_date"]
        ):
            raise _Reply(400, {"non_field_errors": ["Start date cannot exceed target date"]})
        if data.get("assignees"):
            members = set(self.store.project_members.get(pid, ()))
            clean["assignees"] = [a for a in data["assignees"] if a in members]
        if data.get("labels"):
            clean["labels"] = [x for x in data["labels"] if x in self.store.labels[pid]]
        if data.get("state") and data["state"] not in self.store.states[pid]:
            raise _Reply(400, {"non_field_errors": [
                "State is not valid please pass a valid state_id"]})
        if data.get("parent") and data["parent"] not in self.store.work_items[pid]:
            raise _Reply(400, {"non_field_errors": [
                "Parent is not valid issue_id please pass a valid issue_id"]})
        return clean

    def _v_work_item(self, ctx: _Ctx) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        if self.store.projects[pid].data["archived_at"]:
            raise _Reply(404, NOT_FOUND)  # Plane's work-item manager hides archived projects
        item = self._get(self.store.work_items[pid], ctx.params["oid"])
        assert isinstance(item, WorkItem)
        if ctx.method == "GET":
            return 200, self.store.serialize_work_item(item, ctx.csv("fields"), ctx.csv("expand"))
        if ctx.method == "DELETE":
            self.store.delete_work_item(item)
            self._emit_deleted("issue", item, ctx.actor_id)
            return 204, None
        data = ctx.data()
        clean = self._validate_work_item(pid, data, partial=True)
        ext_id = data.get("external_id")
        if ext_id and item.data["external_id"] != str(ext_id):
            source = data.get("external_source", item.data["external_source"])
            if self.store.find_by_external(pid, str(ext_id), str(source)) is not None:
                raise _Reply(
                    409,
                    {
                        "error": "Issue with the same external id and external "
                        "source already exists",
                        "id": item.id,
                    },
                )
        # Plane 1.0.0's API v1 work-item PATCH never calls model_activity: no "updated" webhook
        # (recorded live; its web app's edits, update_work_item here, still send one).
        self._apply_work_item_update(item, clean, ctx.actor_id, requested=data,
                                     webhook=self.serves_work_items)
        return 200, self.store.serialize_work_item(item)

    def _apply_work_item_update(
        self,
        item: WorkItem,
        data: dict[str, Any],
        actor: str,
        requested: dict[str, Any] | None = None,
        webhook: bool = True,
    ) -> None:
        """Store the cleaned values; the webhooks compare the *requested* ones (Plane's
        model_activity diffs the request against the object as it was)."""
        before = dict(item.data)
        self.store.update_work_item(item, data, actor)
        if webhook:
            self._emit_updated("issue", item, before,
                               data if requested is None else requested, actor)

    def _v_search(self, ctx: _Ctx) -> tuple[int, Any]:
        term = (ctx.q("search") or "").strip()
        if not term:
            raise _Reply(400, {"error": "Search query is required"})
        try:
            limit = int(ctx.q("limit", "10") or 10)
        except ValueError:
            limit = 10
        hits = []
        for pid in self.store.projects:
            ident = self.store.projects[pid].data["identifier"]
            for item in self.store.ordered_work_items(pid):
                d = item.data
                if term.lower() in d["name"].lower() or term == str(d["sequence_id"]):
                    hits.append(
                        {
                            "name": d["name"],
                            "id": d["id"],
                            "sequence_id": d["sequence_id"],
                            "project__identifier": ident,
                            "project_id": pid,
                            "workspace__slug": self.store.workspace_slug,
                        }
                    )
        return 200, {"issues": hits[:limit]}

    def _v_by_identifier(self, ctx: _Ctx) -> tuple[int, Any]:
        seq = ctx.params["seq"]
        if not seq.isdecimal():
            raise _Reply(404, {"error": "Work item not found"})
        project = self.store.project_by_identifier(ctx.params["ident"])
        if project is not None:
            for item in self.store.work_items[project.id].values():
                if item.data["sequence_id"] == int(seq):
                    return 200, self.store.serialize_work_item(
                        item, ctx.csv("fields"), ctx.csv("expand")
                    )
        raise _Reply(404, NOT_FOUND)


def _pk_problem(value: Any, known: dict[str, dict[str, Any]]) -> str | None:
    """DRF's error for a related-object id (a UUID primary key), or None when it is fine.

    ``known``: rows by project (or any grouping); the id may be in any of them."""
    if value is None:
        return None
    try:
        uuid.UUID(str(value))
    except ValueError:
        return f"\u201c{value}\u201d is not a valid UUID."
    if not any(str(value) in rows for rows in known.values()):
        return f'Invalid pk "{value}" - object does not exist.'
    return None


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


#: IssueSerializer's writable fields in DRF's order (declared fields, then the model's plain
#: fields, then its foreign keys): the order of the keys of a 400 answer.
_ERROR_ORDER = (
    "assignees", "labels", "type_id", "name", "description_html", "priority", "start_date",
    "target_date", "sort_order", "is_draft", "external_source", "external_id", "parent",
    "state", "estimate_point",
)  # fmt: skip


def _field_rank(name: str) -> int:
    return _ERROR_ORDER.index(name) if name in _ERROR_ORDER else len(_ERROR_ORDER)
