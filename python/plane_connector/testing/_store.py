"""In-memory Plane data and its serializers (key order as Plane's serializers emit it).

The key orders below were read off the recordings in tests/fixtures/plane-samples/ (API
responses and webhook bodies from Plane CE @ 4ca6d6c7); entities that were not recorded
(labels, cycles, modules) follow the same model-field order Plane's serializers use.
"""

from __future__ import annotations

import html
import json
import random
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

PRIORITIES = ("urgent", "high", "medium", "low", "none")
STATE_GROUPS = ("backlog", "unstarted", "started", "completed", "cancelled")

# The five default states Plane creates with a project (names, colours and sequence from the
# recorded states list).
DEFAULT_STATES = (
    ("Backlog", "#60646C", 15000.0, "backlog", True),
    ("Todo", "#60646C", 25000.0, "unstarted", False),
    ("In Progress", "#F59E0B", 35000.0, "started", False),
    ("Done", "#46A758", 45000.0, "completed", False),
    ("Cancelled", "#9AA4BC", 55000.0, "cancelled", False),
)

WORK_ITEM_API_KEYS = (
    "id", "type_id", "created_at", "updated_at", "deleted_at", "point", "name",
    "description_html", "description_binary", "priority", "start_date", "target_date",
    "sequence_id", "sort_order", "completed_at", "archived_at", "is_draft", "external_source",
    "external_id", "created_by", "updated_by", "project", "workspace", "parent", "state",
    "estimate_point", "type", "assignees", "labels",
)  # fmt: skip
WORK_ITEM_WEBHOOK_KEYS = (
    "id", "labels", "assignees", "state", "description", "created_at", "updated_at",
    "deleted_at", "point", "name", "description_json", "description_html",
    "description_stripped", "description_binary", "priority", "start_date", "target_date",
    "sequence_id", "sort_order", "completed_at", "archived_at", "is_draft", "external_source",
    "external_id", "created_by", "updated_by", "project", "workspace", "parent",
    "estimate_point", "type",
)  # fmt: skip
# Plane 1.0.0 (recorded live): no description_json, and the model's description after name.
WORK_ITEM_WEBHOOK_KEYS_1_0 = (
    "id", "labels", "assignees", "state", "created_at", "updated_at", "deleted_at", "point",
    "name", "description", "description_html", "description_stripped", "description_binary",
    "priority", "start_date", "target_date", "sequence_id", "sort_order", "completed_at",
    "archived_at", "is_draft", "external_source", "external_id", "created_by", "updated_by",
    "project", "workspace", "parent", "estimate_point", "type",
)  # fmt: skip
# Fields a client may write on a work item (everything else is read-only and ignored).
WORK_ITEM_WRITABLE = (
    "name", "description_html", "priority", "state", "assignees", "labels", "parent",
    "start_date", "target_date", "estimate_point", "type_id", "external_id", "external_source",
    "sort_order", "is_draft",
)  # fmt: skip


def now_iso(moment: datetime | None = None) -> str:
    """Plane's (DRF's) timestamp format: ISO 8601, microseconds, ``Z``."""
    moment = moment or datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compact(value: Any) -> bytes:
    """JSON as DRF's renderer writes it: no spaces, non-ASCII left as UTF-8.

    DRF still escapes U+2028/U+2029, which are line breaks to JavaScript.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode("utf-8")


def strip_html(text: str | None) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", text or "")).strip()


def stripped_description(description_html: str | None) -> str | None:
    """``description_stripped`` as Plane's Issue.save sets it: NULL only for no HTML at all.

    ``<p></p>`` gives ``""`` (seen live), so an empty item is not the same as one never given a
    description."""
    if not description_html:
        return None
    return strip_html(description_html)


def slugify(value: str) -> str:
    """Django's slugify (State.slug): ASCII-folded, lower-case, words joined by ``-``."""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text.lower())
    return re.sub(r"[-\s]+", "-", text).strip("-_")


@dataclass
class User:
    id: str
    first_name: str
    last_name: str
    email: str
    display_name: str
    role: int = 20

    def lite(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "avatar": "",
            "avatar_url": None,
            "display_name": self.display_name,
        }


@dataclass
class Entity:
    """A stored row: ``data`` holds the API serialization in Plane's key order."""

    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])


@dataclass
class WorkItem(Entity):
    cached_json: bytes | None = field(default=None, repr=False)


class PlaneStore:
    """Workspace, projects and everything in them. Callers hold the emulator lock."""

    def __init__(self, rng: random.Random, workspace_slug: str, workspace_name: str) -> None:
        self.rng = rng
        #: Serialise as Plane 1.0.0 does (set by the emulator playing a version before 1.1.0).
        self.plane_1_0 = False
        self.workspace_id = self.new_id()
        self.workspace_slug = workspace_slug
        self.workspace_name = workspace_name
        self.admin = User(self.new_id(), "Plane", "Admin", "admin@plane-emulator.local", "admin")
        self.users: dict[str, User] = {self.admin.id: self.admin}
        self.projects: dict[str, Entity] = {}
        self.project_members: dict[str, list[str]] = {}
        self.states: dict[str, dict[str, Entity]] = {}
        self.labels: dict[str, dict[str, Entity]] = {}
        self.work_items: dict[str, dict[str, WorkItem]] = {}
        self.comments: dict[str, dict[str, Entity]] = {}
        self.cycles: dict[str, dict[str, Entity]] = {}
        self.modules: dict[str, dict[str, Entity]] = {}
        self.cycle_items: dict[str, list[str]] = {}
        self.module_items: dict[str, list[str]] = {}
        self.next_sequence: dict[str, int] = {}
        # Per-project cache of work items in default order (-created_at); dropped on writes.
        self._ordered: dict[str, list[WorkItem]] = {}
        # Largest work-item sort order per (project, state): where a new item goes.
        self._sort_max: dict[tuple[str, str], float] = {}
        self._clock_floor = datetime.now(timezone.utc)

    # -- ids and time ------------------------------------------------------------------------
    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _stamp(self) -> dict[str, Any]:
        """The leading keys most of Plane's model serializers share, in their order."""
        ts = self.timestamp()
        return {"id": self.new_id(), "created_at": ts, "updated_at": ts, "deleted_at": None}

    def timestamp(self) -> str:
        # Strictly increasing so that -created_at ordering is total and reproducible.
        moment = max(datetime.now(timezone.utc), self._clock_floor + timedelta(microseconds=1))
        self._clock_floor = moment
        return now_iso(moment)

    # -- projects ----------------------------------------------------------------------------
    def create_project(self, name: str, identifier: str, description: str = "",
                       *, views_on: bool = False) -> Entity:
        """``views_on``: modules, cycles and views switched on in a new project (Plane 1.0.0's
        defaults, recorded live; off since)."""
        ts = self.timestamp()
        pid = self.new_id()
        project = Entity(
            {
                "id": pid,
                "cover_image_url": None,
                "created_at": ts,
                "updated_at": ts,
                "deleted_at": None,
                "name": name,
                "description": description,
                "description_text": None,
                "description_html": None,
                "network": 2,
                "identifier": identifier.upper(),
                "emoji": None,
                "icon_prop": None,
                "module_view": views_on,
                "cycle_view": views_on,
                "issue_views_view": views_on,
                "page_view": True,
                "intake_view": False,
                "is_time_tracking_enabled": False,
                "is_issue_type_enabled": False,
                "guest_view_all_features": False,
                "cover_image": None,
                "archive_in": 0,
                "close_in": 0,
                "logo_props": {"icon": {"name": "diamond", "color": "#f38e82"}, "in_use": "icon"},
                "archived_at": None,
                "timezone": "UTC",
                "external_source": None,
                "external_id": None,
                "created_by": self.admin.id,
                "updated_by": None,
                "workspace": self.workspace_id,
                "default_assignee": None,
                "project_lead": None,
                "cover_image_asset": None,
                "estimate": None,
                "default_state": None,
            }
        )
        self.projects[pid] = project
        self.project_members[pid] = [self.admin.id]
        for bucket in (self.states, self.labels, self.work_items, self.comments, self.cycles):
            bucket[pid] = {}
        self.modules[pid] = {}
        self.next_sequence[pid] = 1
        for name_, color, sequence, group, default in DEFAULT_STATES:
            state = self.create_state(pid, name_, color, group, sequence=sequence,
                                      default=default)
            state.data["slug"] = ""  # bulk-created, bypassing State.save and its slugify
        return project

    def project_api(self, project: Entity) -> dict[str, Any]:
        """The API's ProjectSerializer: the row plus the annotations its querysets add.

        Webhooks carry the bare row (``project.data``); API answers put the counts and the
        caller's membership right after ``id`` (seen live)."""
        data = project.data
        pid = data["id"]
        annotations = {
            "total_members": len(self.project_members.get(pid, ())),
            "total_cycles": len(self.cycles.get(pid, {})),
            "total_modules": len(self.modules.get(pid, {})),
            "is_member": True,
            "member_role": 20,
            "is_deployed": False,
        }
        return {"id": pid, **annotations, **{k: v for k, v in data.items() if k != "id"}}

    def project_by_identifier(self, identifier: str) -> Entity | None:
        for project in self.projects.values():
            if project.data["identifier"] == identifier.upper():
                return project
        return None

    # -- states and labels -------------------------------------------------------------------
    def create_state(
        self,
        project_id: str,
        name: str,
        color: str,
        group: str,
        *,
        sequence: float | None = None,
        default: bool = False,
        external_id: str | None = None,
        external_source: str | None = None,
    ) -> Entity:
        states = self.states[project_id]
        if sequence is None:
            # State.save: the project's largest sequence + 15000 (Plane's hidden Triage state
            # is not counted), 65535 in a project without states.
            largest = max((s.data["sequence"] for s in states.values()), default=None)
            sequence = 65535.0 if largest is None else largest + 15000
        state = Entity(
            {
                **self._stamp(),
                "name": name,
                "description": "",
                "color": color,
                "slug": slugify(name),
                "sequence": float(sequence),
                "group": group,
                "is_triage": False,
                "default": default,
                "external_source": external_source,
                "external_id": external_id,
                "created_by": self.admin.id,
                "updated_by": None,
                "project": project_id,
                "workspace": self.workspace_id,
            }
        )
        states[state.id] = state
        return state

    def default_state(self, project_id: str) -> Entity:
        states = list(self.states[project_id].values())
        return next((s for s in states if s.data["default"]), states[0])

    def create_label(
        self, project_id: str, name: str, color: str = "", **extra: Any
    ) -> Entity:
        labels = self.labels[project_id]
        largest = max((lb.data["sort_order"] for lb in labels.values()), default=None)
        label = Entity(
            {
                **self._stamp(),
                "name": name,
                "description": extra.get("description") or "",
                "color": color,
                "sort_order": 65535.0 if largest is None else largest + 10000,
                "external_source": extra.get("external_source"),
                "external_id": extra.get("external_id"),
                "created_by": self.admin.id,
                "updated_by": None,
                "workspace": self.workspace_id,
                "project": project_id,
                "parent": extra.get("parent"),
            }
        )
        labels[label.id] = label
        return label

    # -- work items --------------------------------------------------------------------------
    def create_work_item(
        self, project_id: str, values: dict[str, Any], actor_id: str | None
    ) -> WorkItem:
        ts = self.timestamp()
        seq = self.next_sequence[project_id]
        self.next_sequence[project_id] = seq + 1
        state_id = values.get("state") or self.default_state(project_id).id
        # Issue.save: after the largest sort order among the project's items in that state.
        largest = self._sort_max.get((project_id, state_id))
        sort_order = 65535.0 if largest is None else largest + 10000
        item = WorkItem(
            {
                "id": self.new_id(),
                "type_id": values.get("type_id"),
                "created_at": ts,
                "updated_at": ts,
                "deleted_at": None,
                "point": None,
                "name": values["name"],
                "description_html": values.get("description_html", "<p></p>"),
                "description_binary": None,
                "priority": values.get("priority", "none"),
                "start_date": values.get("start_date"),
                "target_date": values.get("target_date"),
                "sequence_id": seq,
                "sort_order": float(values.get("sort_order", sort_order)),
                "completed_at": None,
                "archived_at": None,
                "is_draft": bool(values.get("is_draft", False)),
                "external_source": values.get("external_source"),
                "external_id": values.get("external_id"),
                "created_by": actor_id,
                "updated_by": None,
                "project": project_id,
                "workspace": self.workspace_id,
                "parent": values.get("parent"),
                "state": state_id,
                "estimate_point": values.get("estimate_point"),
                "type": None,
                "assignees": list(values.get("assignees", [])),
                "labels": list(values.get("labels", [])),
            }
        )
        self._mark_completed(item)
        self.work_items[project_id][item.id] = item
        self._ordered.pop(project_id, None)
        self._note_sort_order(item)
        return item

    def _note_sort_order(self, item: WorkItem) -> None:
        key = (item.data["project"], item.data["state"])
        self._sort_max[key] = max(self._sort_max.get(key, item.data["sort_order"]),
                                  item.data["sort_order"])

    def update_work_item(
        self, item: WorkItem, values: dict[str, Any], actor_id: str | None
    ) -> None:
        for key, value in values.items():
            if key in WORK_ITEM_WRITABLE:
                item.data[key] = list(value) if key in ("assignees", "labels") else value
        item.data["updated_at"] = self.timestamp()
        item.data["updated_by"] = actor_id
        self._mark_completed(item)
        item.cached_json = None
        self._ordered.pop(item.data["project"], None)
        self._note_sort_order(item)

    def delete_work_item(self, item: WorkItem) -> None:
        pid = item.data["project"]
        self.work_items[pid].pop(item.id, None)
        self._ordered.pop(pid, None)

    def _mark_completed(self, item: WorkItem) -> None:
        state = self.states[item.data["project"]].get(item.data["state"])
        done = state is not None and state.data["group"] == "completed"
        if done and not item.data["completed_at"]:
            item.data["completed_at"] = item.data["updated_at"]
        elif not done:
            item.data["completed_at"] = None

    def ordered_work_items(self, project_id: str) -> list[WorkItem]:
        cached = self._ordered.get(project_id)
        if cached is None:
            cached = sorted(
                self.work_items[project_id].values(),
                key=lambda w: w.data["created_at"],
                reverse=True,
            )
            self._ordered[project_id] = cached
        return cached

    def work_item_json(self, item: WorkItem) -> bytes:
        if item.cached_json is None:
            item.cached_json = compact(item.data)
        return item.cached_json

    def find_work_item(self, item_id: str) -> WorkItem | None:
        for items in self.work_items.values():
            if item_id in items:
                return items[item_id]
        return None

    def find_by_external(self, project_id: str, ext_id: str, ext_source: str) -> WorkItem | None:
        for item in self.work_items[project_id].values():
            if item.data["external_id"] == ext_id and item.data["external_source"] == ext_source:
                return item
        return None

    # -- serializers -------------------------------------------------------------------------
    def state_lite(self, project_id: str, state_id: str | None) -> dict[str, Any] | None:
        state = self.states[project_id].get(state_id or "")
        if state is None:
            return None
        d = state.data
        return {"id": d["id"], "name": d["name"], "color": d["color"], "group": d["group"]}

    def label_lite(self, project_id: str, label_id: str) -> dict[str, Any]:
        label = self.labels[project_id].get(label_id)
        if label is None:
            return {"id": label_id, "name": None, "color": None}
        return {"id": label.id, "name": label.data["name"], "color": label.data["color"]}

    def label_full(self, project_id: str, label_id: str) -> dict[str, Any]:
        """An expanded label in an API answer: the whole LabelSerializer row."""
        label = self.labels[project_id].get(label_id)
        return dict(label.data) if label is not None else self.label_lite(project_id, label_id)

    def user_lite(self, user_id: str) -> dict[str, Any]:
        user = self.users.get(user_id)
        return user.lite() if user else {"id": user_id}

    def serialize_work_item(
        self, item: WorkItem, fields: list[str] | None = None, expand: list[str] | None = None
    ) -> dict[str, Any]:
        """The API's IssueSerializer, honouring ``?fields=`` and ``?expand=``."""
        d = item.data
        pid = d["project"]
        out = dict(d)
        if expand:
            if "state" in expand:
                out["state"] = self.state_lite(pid, d["state"])
            if "project" in expand:
                p = self.projects[pid].data
                out["project"] = {"id": pid, "identifier": p["identifier"], "name": p["name"]}
            # labels and assignees are write-only fields that the serializer appends: expanded
            # ones first, in the order asked for (seen live), then the others.
            lists = {"labels": [self.label_full(pid, x) for x in d["labels"]]
                     if "labels" in expand else d["labels"],
                     "assignees": [self.user_lite(x) for x in d["assignees"]]
                     if "assignees" in expand else d["assignees"]}
            order = [e for e in expand if e in lists]
            order += [k for k in ("assignees", "labels") if k not in order]
            for key in ("assignees", "labels"):
                out.pop(key)
            out.update((key, lists[key]) for key in order)
        if fields:
            out = {k: v for k, v in out.items() if k in fields}
        return out

    def webhook_work_item(self, item: WorkItem) -> dict[str, Any]:
        """The webhook's IssueExpandSerializer: state, labels and assignees as objects."""
        d = item.data
        pid = d["project"]
        expanded = {
            "labels": [self.label_lite(pid, x) for x in d["labels"]],
            "assignees": [self.user_lite(x) for x in d["assignees"]],
            "state": self.state_lite(pid, d["state"]),
            "description": {},
            "description_json": {},
            "description_stripped": stripped_description(d["description_html"]),
        }
        keys = WORK_ITEM_WEBHOOK_KEYS_1_0 if self.plane_1_0 else WORK_ITEM_WEBHOOK_KEYS
        return {k: expanded[k] if k in expanded else d.get(k) for k in keys}

    # -- comments, cycles, modules -----------------------------------------------------------
    def create_comment(
        self, project_id: str, item_id: str, values: dict[str, Any], actor_id: str | None
    ) -> Entity:
        comment = Entity(
            {
                **self._stamp(),
                "comment_html": values.get("comment_html", "<p></p>"),
                "attachments": [],
                "access": values.get("access", "INTERNAL"),
                "external_source": values.get("external_source"),
                "external_id": values.get("external_id"),
                "edited_at": None,
                "created_by": actor_id,
                "updated_by": None,
                "project": project_id,
                "workspace": self.workspace_id,
                "description": self.new_id(),
                "issue": item_id,
                "actor": actor_id,
                "parent": None,
            }
        )
        if self.plane_1_0:
            # Plane 1.0.0's comments have neither (recorded live, API answers and webhooks).
            del comment.data["description"], comment.data["parent"]
        self.comments[project_id][comment.id] = comment
        return comment

    def create_cycle(self, project_id: str, values: dict[str, Any]) -> Entity:
        cycle = Entity(
            {
                **self._stamp(),
                "name": values["name"],
                "description": values.get("description", ""),
                "start_date": values.get("start_date"),
                "end_date": values.get("end_date"),
                "view_props": {},
                "sort_order": 65535.0,
                "external_source": values.get("external_source"),
                "external_id": values.get("external_id"),
                "progress_snapshot": {},
                "archived_at": None,
                "logo_props": {},
                "timezone": "UTC",
                "version": 1,
                "created_by": self.admin.id,
                "updated_by": None,
                "project": project_id,
                "workspace": self.workspace_id,
                "owned_by": values.get("owned_by", self.admin.id),
            }
        )
        self.cycles[project_id][cycle.id] = cycle
        self.cycle_items[cycle.id] = []
        return cycle

    def create_module(self, project_id: str, values: dict[str, Any]) -> Entity:
        module = Entity(
            {
                **self._stamp(),
                "name": values["name"],
                "description": values.get("description", ""),
                "description_text": None,
                "description_html": None,
                "start_date": values.get("start_date"),
                "target_date": values.get("target_date"),
                "status": values.get("status", "planned"),
                "view_props": {},
                "sort_order": 65535.0,
                "external_source": values.get("external_source"),
                "external_id": values.get("external_id"),
                "archived_at": None,
                "logo_props": {},
                "created_by": self.admin.id,
                "updated_by": None,
                "project": project_id,
                "workspace": self.workspace_id,
                "lead": values.get("lead"),
                "members": list(values.get("members", [])),
            }
        )
        self.modules[project_id][module.id] = module
        self.module_items[module.id] = []
        return module

    def members(self, user_ids: Iterable[str]) -> list[dict[str, Any]]:
        out = []
        for uid in user_ids:
            user = self.users[uid]
            out.append({**user.lite(), "role": user.role})
        return out


# -- Cloud v2 webhook rows ----------------------------------------------------------------------
# Plane's docs show v2 ``data`` as a database row: foreign keys as ``*_id``, keys in PostgreSQL
# jsonb order (shorter first, then bytewise), integral floats as integers, ``+00:00`` timestamps
# and, in work-item rows, NULL rendered as the string "None" (a quirk a receiver must survive).
V2_NAMES = {
    "workspace": "workspace_id", "project": "project_id", "created_by": "created_by_id",
    "updated_by": "updated_by_id", "parent": "parent_id", "state": "state_id",
    "estimate_point": "estimate_point_id", "owned_by": "owned_by_id", "lead": "lead_id",
    "default_assignee": "default_assignee_id", "project_lead": "project_lead_id",
    "estimate": "estimate_id", "default_state": "default_state_id", "issue": "issue_id",
    "actor": "actor_id", "cover_image_asset": "cover_image_asset_id", "labels": "label_ids",
    "assignees": "assignee_ids", "members": "member_ids",
}  # fmt: skip
V2_WORK_ITEM_KEYS = (
    "id", "name", "point", "type_id", "is_draft", "priority", "state_id", "label_ids",
    "parent_id", "created_at", "deleted_at", "project_id", "sort_order", "start_date",
    "updated_at", "archived_at", "external_id", "sequence_id", "target_date", "assignee_ids",
    "completed_at", "workspace_id", "created_by_id", "updated_by_id", "external_source",
    "description_json", "last_activity_at", "estimate_point_id",
)  # fmt: skip
V2_ENTITY_TYPES = {
    "project": "project", "issue": "issue", "cycle": "cycle", "module": "module",
    "issue_comment": "issue",
}  # fmt: skip
V2_EVENT_PREFIX = {
    "project": "project", "issue": "workitem", "cycle": "cycle", "module": "module",
    "issue_comment": "workitem.comment",
}  # fmt: skip


def jsonb_order(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in sorted(row, key=lambda k: (len(k), k))}


def _v2_value(key: str, value: Any, none: Any) -> Any:
    if value is None:
        return none
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if key.endswith("_at") and isinstance(value, str) and value.endswith("Z"):
        return value[:-1] + "+00:00"
    return value


def v2_row(data: dict[str, Any], *, work_item: bool = False) -> dict[str, Any]:
    """An API serialization turned into the row shape of a v2 webhook's ``data``."""
    row = {V2_NAMES.get(k, k): v for k, v in data.items()}
    if work_item:
        row.update(description_json={}, last_activity_at=data["updated_at"])
        row = {k: row.get(k) for k in V2_WORK_ITEM_KEYS}
    none = "None" if work_item else None
    return jsonb_order({k: _v2_value(k, v, none) for k, v in row.items()})


def pg_text(value: Any) -> Any:
    """How the docs' ``previous_attributes`` show a timestamp: PostgreSQL's text output."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", value):
        return value[:-1].replace("T", " ") + "+00"
    return value
