"""Views: a project's states and labels."""

from __future__ import annotations

from typing import Any

from plane_connector.testing import _store
from plane_connector.testing._api.base import PAYLOAD_INVALID, _Ctx, _Reply, _required
from plane_connector.testing._api.kit import SIMPLE_DETAILS, ViewKit
from plane_connector.testing._store import STATE_GROUPS, Entity


class StateLabelViews(ViewKit):
    def _v_states(self, ctx: _Ctx) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        if ctx.method == "GET":
            rows = sorted(self.store.states[pid].values(), key=lambda e: e.data["sequence"])
            return 200, self._page(ctx, [e.data for e in rows])
        data = ctx.data()
        errors = _required(data, ("name", "color"))
        if data.get("group", "backlog") not in STATE_GROUPS:
            errors["group"] = [f'"{data["group"]}" is not a valid choice.']
        if errors:
            raise _Reply(400, errors)
        self._external_conflict("State", self.store.states[pid].values(), data)
        for state in self.store.states[pid].values():
            if state.data["name"] == data["name"]:
                raise _Reply(409, {
                    "error": "State with the same name already exists in the project",
                    "id": state.id,
                })  # fmt: skip
        state = self.store.create_state(
            pid, str(data["name"]), str(data["color"]), data.get("group", "backlog"),
            external_id=data.get("external_id"), external_source=data.get("external_source"),
        )  # fmt: skip
        return 200, state.data  # sic: Plane's state create answers 200, not 201

    def _delete_state(self, state: Entity) -> None:
        pid = state.data["project"]
        if state.data["default"]:
            raise _Reply(400, {"error": "Default state cannot be deleted"})
        if any(i.data["state"] == state.id for i in self.store.work_items[pid].values()):
            raise _Reply(400, {"error": "The state is not empty, only empty states can be deleted"})
        self.store.states[pid].pop(state.id, None)

    def _v_state(self, ctx: _Ctx) -> tuple[int, Any]:
        state = self._get(self.store.states[ctx.params["pid"]], ctx.params["oid"])
        _, _, writable = SIMPLE_DETAILS["state"]
        status, body = self._detail(ctx, None, state, writable, self._delete_state)
        if ctx.method == "PATCH":
            state.data["slug"] = _store.slugify(state.data["name"])  # State.save
        return status, body

    def _v_labels(self, ctx: _Ctx) -> tuple[int, Any]:
        pid = ctx.params["pid"]
        labels = self.store.labels[pid]
        if ctx.method == "GET":
            rows = sorted(labels.values(), key=lambda e: e.data["created_at"])
            return 200, self._page(ctx, [e.data for e in rows])
        data = ctx.data()
        errors = _required(data, ("name",))
        if errors:
            raise _Reply(400, errors)
        for label in labels.values():
            if label.data["name"] == data["name"]:
                raise _Reply(
                    409,
                    {
                        "error": "Label with the same name already exists in the project",
                        "id": label.id,
                    },
                )
        self._external_conflict("Label", labels.values(), data)
        label = self.store.create_label(
            pid,
            str(data["name"]),
            str(data.get("color") or ""),
            **{k: data.get(k) for k in ("description", "parent", "external_id", "external_source")},
        )
        return 201, label.data

    def _v_label(self, ctx: _Ctx) -> tuple[int, Any]:
        labels = self.store.labels[ctx.params["pid"]]
        label = self._get(labels, ctx.params["oid"])
        if ctx.method == "PATCH" and not self.serves_work_items:
            self._label_patch_conflict_1_0(labels, label, ctx.data())
        if ctx.method == "PATCH":
            name = ctx.data().get("name")
            if any(o.data["name"] == name for o in labels.values() if o is not label):
                raise _Reply(400, PAYLOAD_INVALID)  # the unique (project, name) constraint
        return self._simple_detail(ctx, "label")

    @staticmethod
    def _label_patch_conflict_1_0(labels: dict[str, Entity], label: Entity,
                                  data: dict[str, Any]) -> None:
        """Plane 1.0.0's LabelDetailAPIEndpoint.patch: it tests ``str(external_id)``, so a body
        without one looks for another label with external id and source both NULL (the label's
        own source when the body names none), and any such label is a 409 naming this label."""
        raw = data.get("external_id")
        wanted = None if raw is None else str(raw)
        if label.data.get("external_id") == str(raw):
            return
        source = data.get("external_source", label.data.get("external_source"))
        for other in labels.values():
            if other is label:
                continue
            if (other.data.get("external_id") == wanted
                    and other.data.get("external_source") == source):
                raise _Reply(409, {"error": "Label with the same external id and external "
                                            "source already exists", "id": label.id})
