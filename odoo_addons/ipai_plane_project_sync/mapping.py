"""The field mapping between a ``project.task`` and a Plane work item (no Odoo models here).

Plane-side values are kept in the shape Plane's API writes them (``state`` a UUID, ``labels`` and
``assignees`` sorted UUID lists, dates ``YYYY-MM-DD``), whether they came from a webhook (which
expands state, labels and assignees into objects) or from an API response (which does not).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any

#: The work-item fields the sync maps, in Plane's API names.
SYNC_KEYS = (
    "name", "description_html", "priority", "target_date", "start_date", "state", "labels",
    "assignees", "parent",
)  # fmt: skip
#: Per-project ownership of each mapped field; both dates share one setting.
MODE_FIELDS = {
    "name": "plane_mode_name",
    "description_html": "plane_mode_description",
    "priority": "plane_mode_priority",
    "target_date": "plane_mode_dates",
    "start_date": "plane_mode_dates",
    "state": "plane_mode_stage",
    "labels": "plane_mode_tags",
    "assignees": "plane_mode_assignees",
    "parent": "plane_mode_parent",
}
MODES = [
    ("odoo", "Odoo wins"),
    ("plane", "Accept from Plane"),
    ("off", "Not synced"),
]
#: Odoo task fields whose change must reach Plane.
ODOO_TRIGGERS = frozenset({
    "name", "description", "priority", "date_deadline", "plane_start_date", "stage_id",
    "tag_ids", "user_ids", "parent_id", "project_id",
})  # fmt: skip
STATE_GROUPS = [
    ("backlog", "Backlog"),
    ("unstarted", "Unstarted"),
    ("started", "Started"),
    ("completed", "Completed"),
    ("cancelled", "Cancelled"),
]
PLANE_PRIORITIES = ("urgent", "high", "medium", "low", "none")
# Odoo 18 has two task priorities, Odoo 19 four; the tables are chosen by the selection's keys.
_TO_PLANE_2 = {"0": "low", "1": "high"}
_TO_ODOO_2 = {"urgent": "1", "high": "1", "medium": "0", "low": "0", "none": "0"}
_TO_PLANE_4 = {"0": "low", "1": "medium", "2": "high", "3": "urgent"}
_TO_ODOO_4 = {"urgent": "3", "high": "2", "medium": "1", "low": "0", "none": "0"}

_GROUP_WORDS = (
    ("cancelled", ("cancel", "abandon", "rejected", "won't", "wont")),
    ("completed", ("done", "complete", "closed", "finished", "delivered", "resolved")),
    ("backlog", ("backlog", "new", "inbox", "idea")),
    ("unstarted", ("todo", "to do", "planned", "ready", "specification")),
)


def priority_to_plane(value: str | None, keys: tuple[str, ...]) -> str:
    table = _TO_PLANE_4 if len(keys) >= 4 else _TO_PLANE_2
    return table.get(value or "0", "none")


def priority_to_odoo(value: str | None, keys: tuple[str, ...]) -> str:
    table = _TO_ODOO_4 if len(keys) >= 4 else _TO_ODOO_2
    return table.get(value or "none", "0")


def guess_state_group(name: str | None, fold: bool = False) -> str:
    """The Plane state group a stage most likely means, from its name (then its fold)."""
    text = (name or "").lower()
    for group, words in _GROUP_WORDS:
        if any(word in text for word in words):
            return group
    return "completed" if fold else "started"


def ref_id(value: Any) -> str | None:
    """A related object's id from either an expanded object or a bare UUID."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


def ref_ids(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return sorted({i for i in (ref_id(v) for v in values) if i})


def plane_values(data: dict) -> dict[str, Any]:
    """The mapped fields of a work item, normalized (only the keys present in ``data``)."""
    out: dict[str, Any] = {}
    for key in SYNC_KEYS:
        if key not in data:
            continue
        value = data[key]
        if key in ("labels", "assignees"):
            value = ref_ids(value)
        elif key in ("state", "parent"):
            value = ref_id(value)
        elif key == "description_html":
            value = value or ""
        out[key] = value
    return out


def learned_names(data: dict) -> tuple[dict[str, str], dict[str, str], dict[str, dict]]:
    """What an expanded payload tells about labels (id->name), members (id->email), states."""
    labels = {
        v["id"]: v["name"] for v in data.get("labels") or []
        if isinstance(v, dict) and v.get("id") and v.get("name")
    }  # fmt: skip
    members = {
        v["id"]: (v.get("email") or "").lower() for v in data.get("assignees") or []
        if isinstance(v, dict) and v.get("id") and v.get("email")
    }  # fmt: skip
    states = {}
    state = data.get("state")
    if isinstance(state, dict) and state.get("id") and state.get("group"):
        states[state["id"]] = {"name": state.get("name") or "", "group": state["group"]}
    return labels, members, states


_EMPTY_HTML = re.compile(r"^(<p>(\s|<br\s*/?>|&nbsp;)*</p>|\s)*$", re.IGNORECASE)


def html_is_empty(value: str | None) -> bool:
    return not value or bool(_EMPTY_HTML.match(value))


def html_key(value: str | None) -> str:
    """A comparison key for two HTML texts that Odoo's sanitizer may have spaced differently."""
    if html_is_empty(value):
        return ""
    return re.sub(r"\s+", " ", re.sub(r">\s+<", "><", value or "")).strip()


def parse_date(value: Any) -> dt.date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def date_string(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


#: What Plane refuses in a project name and identifier, with a 400 on create and update
#: (``Project.FORBIDDEN_IDENTIFIER_CHARS_PATTERN``, CE 4ca6d6c7; tests/contract/recordings).
PLANE_FORBIDDEN_CHARS = "&+,:;$^}{*=?@#|'<>.()%!-"
PLANE_NAME_MAX = 255
PLANE_IDENTIFIER_MAX = 12
PROJECT_NAME_FALLBACK = "Odoo project"
_SPOKEN = {"&": " and ", "+": " plus ", "@": " at ", "%": " percent "}
_FORBIDDEN_RE = re.compile("[" + re.escape(PLANE_FORBIDDEN_CHARS) + "]")


def plane_project_name(name: str | None) -> str:
    """A Plane-valid, readable project name for an Odoo project name.

    ``&``, ``+``, ``@`` and ``%`` become words, an apostrophe goes (``Client's`` ->
    ``Clients``), a point between digits becomes ``_`` (``2.1`` -> ``2_1``), every other
    forbidden character a space; spaces are then collapsed. Never empty, at most 255
    characters (cut at a word), and a valid name maps to itself.
    """
    text = re.sub(r"(?<=\d)\.(?=\d)", "_", name or "")
    text = text.replace("'", "")
    for char, word in _SPOKEN.items():
        text = text.replace(char, word)
    text = " ".join(_FORBIDDEN_RE.sub(" ", text).split())
    if len(text) > PLANE_NAME_MAX:
        head = text[:PLANE_NAME_MAX + 1]
        cut = head.rsplit(" ", 1)[0] if " " in head else ""
        text = cut if len(cut) >= PLANE_NAME_MAX // 2 else text[:PLANE_NAME_MAX].rstrip()
    return text or PROJECT_NAME_FALLBACK


def unique_project_name(name: str, taken: set[str]) -> str:
    """``name``, or ``name 2``, ``name 3``… : Plane refuses a name another live project has
    (case-sensitive, 409)."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f" {n}"
        candidate = name[:PLANE_NAME_MAX - len(suffix)].rstrip() + suffix
    return candidate


def plane_identifier(name: str, taken: set[str] | None = None) -> str:
    """A Plane project identifier (A-Z and 0-9, at most 12, unique) from a name.

    The initials of a name of several words, else its first five characters; accents are
    folded (``Über`` gives ``U``), and a taken identifier gets a number.
    """
    ascii_name = unicodedata.normalize("NFKD", (name or "").replace("'", "")).encode(
        "ascii", "ignore").decode()
    words = re.findall(r"[A-Za-z0-9]+", ascii_name)
    base = "".join(w[0] for w in words).upper() if len(words) > 1 else "".join(words)[:5]
    base = (base.upper() or "ODOO")[:8]
    candidate, n = base, 1
    while taken and candidate in taken:
        n += 1
        candidate = f"{base}{n}"[:PLANE_IDENTIFIER_MAX]
    return candidate


def plane_project_description(name: str | None) -> str:
    """The Plane project's description: where the full Odoo name is kept."""
    return f"Odoo project: {name or ''} (managed from Odoo)"
