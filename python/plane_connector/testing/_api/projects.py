"""Views: the current user, members, projects (create, update, archive, delete)."""

from __future__ import annotations

import re
from typing import Any

from plane_connector.testing._api.base import NO_PERMISSION, NOT_FOUND, _Ctx, _Reply
from plane_connector.testing._api.kit import ViewKit
from plane_connector.testing._store import Entity

#: Project.FORBIDDEN_IDENTIFIER_CHARS_PATTERN (CE 4ca6d6c7), applied with re.match to project
#: names and identifiers on create and update.
FORBIDDEN_PROJECT_CHARS = re.compile(r"^.*[&+,:;$^}{*=?@#|'<>.()%!-].*$")
PROJECT_NAME_TAKEN = {"name": "The project name is already taken"}


class ProjectViews(ViewKit):
    def _v_me(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, self.store.user_lite(ctx.actor_id)

    def _v_workspace_members(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, self.store.members(self.store.users)

    def _v_project_members(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, self.store.members(self.store.project_members[ctx.params["pid"]])

    def _v_projects(self, ctx: _Ctx) -> tuple[int, Any]:
        if ctx.method == "GET":
            rows = sorted(
                self.store.projects.values(), key=lambda e: e.data["created_at"], reverse=True
            )
            return 200, self._page(ctx, [self.store.project_api(e) for e in rows])
        data = _project_input(ctx.data(), None, special_chars_check=self.checks_project_chars)
        # Both unique constraints (name, identifier among live projects) end in the same
        # IntegrityError branch of the view, which names the name whichever clashed (seen live).
        if self._project_clash(data, None):
            raise _Reply(409, PROJECT_NAME_TAKEN)
        project = self.store.create_project(
            data["name"], data["identifier"], str(data.get("description", "")),
            views_on=not self.serves_work_items,
        )
        self._emit_created("project", project, ctx.actor_id)
        return 201, self.store.project_api(project)

    def _v_project(self, ctx: _Ctx) -> tuple[int, Any]:
        project = self.store.projects.get(ctx.params["pid"])
        if project is None:
            # GET looks the project up (404); PATCH and DELETE first check that the caller is
            # a member of it, which nobody is of a missing or deleted project (403).
            raise _Reply(404, NOT_FOUND) if ctx.method == "GET" else _Reply(403, NO_PERMISSION)
        if ctx.method == "GET":
            return 200, self.store.project_api(project)
        if ctx.method == "DELETE":
            self.store.projects.pop(project.id, None)
            self._emit_deleted("project", project, ctx.actor_id)
            return 204, None
        if project.data["archived_at"]:
            raise _Reply(400, {"error": "Archived project cannot be updated"})
        data = _project_input(ctx.data(), project, special_chars_check=self.checks_project_chars)
        if self._project_clash(data, project):
            raise _Reply(409, PROJECT_NAME_TAKEN)
        before = dict(project.data)
        for key in ("name", "description", "identifier"):
            if key in data:
                project.data[key] = data[key]
        project.data["updated_at"] = self.store.timestamp()
        project.data["updated_by"] = ctx.actor_id
        self._emit_updated("project", project, before, ctx.data(), ctx.actor_id)
        return 200, self.store.project_api(project)

    def _project_clash(self, data: dict[str, Any], project: Entity | None) -> bool:
        for other in self.store.projects.values():
            if other is project:
                continue
            if data.get("name") == other.data["name"] or (
                data.get("identifier") == other.data["identifier"]
            ):
                return True
        return False

    def _v_project_archive(self, ctx: _Ctx) -> tuple[int, Any]:
        project = self.store.projects.get(ctx.params["pid"])
        if project is None:
            raise _Reply(404, NOT_FOUND)
        project.data["archived_at"] = self.store.timestamp() if ctx.method == "POST" else None
        project.data["updated_at"] = self.store.timestamp()
        project.data["updated_by"] = ctx.actor_id
        return 204, None


def _project_input(
    data: dict[str, Any], project: Entity | None, *, special_chars_check: bool = True
) -> dict[str, Any]:
    """ProjectCreateSerializer / ProjectUpdateSerializer on name and identifier (CE 4ca6d6c7).

    Field checks first (DRF CharField: required, trimmed, blank, max length), then the
    serializer's ``validate``: the forbidden characters, name before identifier. The identifier
    is stored stripped and upper-cased (Project.save). Returns the cleaned values."""
    errors: dict[str, list[str]] = {}
    out = dict(data)
    for key, limit in (("name", 255), ("identifier", 12)):
        if key not in data:
            if project is None:
                errors[key] = ["This field is required."]
            continue
        value = data[key]
        if value is None:
            errors[key] = ["This field may not be null."]
            continue
        text = str(value).strip()
        if not text:
            errors[key] = ["This field may not be blank."]
        elif len(text) > limit:
            errors[key] = [f"Ensure this field has no more than {limit} characters."]
        out[key] = text.upper() if key == "identifier" else text
    if errors:
        raise _Reply(400, errors)
    for key, label in (("name", "name"), ("identifier", "identifier")):
        # Plane 1.0.0's serializers have no such check: R&D is a project name there (recorded).
        if special_chars_check and key in out and FORBIDDEN_PROJECT_CHARS.match(out[key]):
            raise _Reply(400, {"non_field_errors": [
                f"Project {label} cannot contain special characters."]})
    return out
