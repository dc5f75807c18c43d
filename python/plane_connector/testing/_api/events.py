"""The webhooks a change sends: Plane's v1 activity deliveries and Cloud's v2 events."""

from __future__ import annotations

from typing import Any

from plane_connector.testing import _store
from plane_connector.testing._api.base import ApiBase
from plane_connector.testing._store import Entity, WorkItem
from plane_connector.testing.webhook_sender import WebhookEvent


class WebhookEvents(ApiBase):
    """Turning a change into deliveries (``_emit_*``), held or duplicated by faults."""

    def _webhook_data(self, event: str, entity: Entity) -> dict[str, Any]:
        if event == "issue" and isinstance(entity, WorkItem):
            return self.store.webhook_work_item(entity)
        return dict(entity.data)

    def _activity(
        self, actor_id: str, field_: str | None = None, old: Any = None, new: Any = None
    ) -> dict[str, Any]:
        return {
            "field": field_,
            "new_value": new,
            "old_value": old,
            "actor": self.store.user_lite(actor_id),
            "old_identifier": None,
            "new_identifier": None,
        }

    def _emit_created(self, event: str, entity: Entity, actor_id: str) -> None:
        self._dispatch_event(WebhookEvent(
            event, "created", self._webhook_data(event, entity), self._activity(actor_id),
            entity.id, self._v2(event, "created", entity),
        ))  # fmt: skip

    def _emit_deleted(self, event: str, entity: Entity, actor_id: str) -> None:
        # Plane's v1 webhooks (CE 4ca6d6c7, web app and API alike) report a deletion only for
        # projects: deleting a work item, comment, cycle or module queues the activity log and
        # nothing else (checked live). The v2 payloads of Plane's docs (cloud) do have
        # `*.deleted` events.
        versions = ("v1", "v2") if event == "project" else ("v2",)
        self._dispatch_event(WebhookEvent(
            event, "deleted", {"id": entity.id}, self._activity(actor_id), entity.id,
            self._v2(event, "deleted", entity),
        ), versions=versions)  # fmt: skip

    def _emit_updated(
        self,
        event: str,
        entity: Entity,
        before: dict[str, Any],
        requested: dict[str, Any],
        actor_id: str,
    ) -> None:
        # Plane's model_activity: one delivery per requested key whose value differs from the
        # instance before the save, each carrying the whole current object.
        changed = [k for k in requested if k in before and before[k] != requested[k]]
        if not changed:
            return
        data = self._webhook_data(event, entity)
        for key in changed:
            v1 = WebhookEvent(
                event,
                "updated",
                data,
                self._activity(actor_id, key, before[key], requested[key]),
                entity.id,
            )
            self._dispatch_event(v1, versions=("v1",))
        # v2 (cloud): one event per update carrying the old values of the changed fields.
        previous = {_store.V2_NAMES.get(k, k): _store.pg_text(before[k]) for k in changed}
        v2 = WebhookEvent(event, "updated", data, self._activity(actor_id), entity.id,
                          self._v2(event, "updated", entity, previous))  # fmt: skip
        self._dispatch_event(v2, versions=("v2",))

    def _v2(
        self, event: str, action: str, entity: Entity, previous: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The Cloud v2 view of a change (None in CE, which has no v2 webhooks)."""
        if self.edition != "cloud":
            return None
        if event == "issue_comment":
            item = self.store.find_work_item(entity.data["issue"])
            comment = entity.data
            row = {
                "id": comment["issue"],
                "name": item.data["name"] if item else None,
                "comment": _store.jsonb_order({
                    "id": comment["id"], "access": comment["access"],
                    "actor_id": comment["actor"], "issue_id": comment["issue"],
                    "edited_at": comment["edited_at"],
                    "comment_stripped": _store.strip_html(comment["comment_html"]),
                }),
            }  # fmt: skip
            entity_id = comment["issue"]
        else:
            row = _store.v2_row(entity.data, work_item=event == "issue")
            entity_id = entity.id
        if action == "deleted":
            data, previous = {}, row  # the docs: the full record before deletion
        else:
            data = row
        return {
            "event": f"{_store.V2_EVENT_PREFIX[event]}.{action}",
            "entity_type": _store.V2_ENTITY_TYPES[event],
            "entity_id": entity_id,
            "data": data,
            "previous_attributes": previous or {},
        }

    def _dispatch_event(self, ev: WebhookEvent, versions: tuple[str, ...] = ("v1", "v2")) -> None:
        hooks = [
            h for h in self._webhooks.values()
            if h.is_active and ev.event in h.events and h.version in versions
        ]  # fmt: skip
        if not hooks:
            return
        target = f"{ev.event}.{ev.action}"
        duplicate = self.faults.take("WEBHOOK", target, ("webhook_duplicate",))
        reorder = self.faults.take("WEBHOOK", target, ("webhook_reorder",))
        for hook in hooks:
            if reorder is not None:
                self._held_events.append((hook, ev))
            else:
                self._sender.enqueue(hook, ev)
                if duplicate is not None:
                    self._sender.enqueue(hook, ev)
        if reorder is not None and reorder.count == 0:
            self.flush_held_webhooks()

    def flush_held_webhooks(self) -> None:
        """Send events held by a ``webhook_reorder`` fault now, newest first."""
        with self._lock:
            held, self._held_events = self._held_events, []
        for hook, ev in reversed(held):
            self._sender.enqueue(hook, ev)
