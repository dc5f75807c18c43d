"""Which Plane a base URL is, and the paths that server answers.

Self-hosted Plane is run at tagged releases and upgraded late. Up to 1.0.x the public API has only
``…/issues/…`` routes; ``…/work-items/…`` appeared in 1.1.0 and both exist since. A client that
always says ``work-items`` gets Django's 404 "Page not found." for every record on an old server.

So the server is detected once per base URL and process (:func:`detect`), and every path that
names a work item comes from :func:`segments` / :class:`Routes` for that server: no caller spells
``work-items`` or ``issues``. Detection:

1. ``GET <root>/api/instances/`` without any credential (Plane answers it to anyone, with
   ``instance.current_version`` and ``instance.edition``);
2. where that is missing, forbidden or says nothing (Plane Cloud, a proxy that hides it, an
   instance not registered yet): one probe of a workspace-level work-items route in a workspace
   nobody owns. A server without the route answers 404 "Page not found." before it looks at the
   key; one with it answers 401/403, which cost no rate budget;
3. Plane Cloud (``api.plane.so``) is taken to run the newest family without a request.

A 404 "Page not found." (a route the server lacks, not a missing record) on a known route means
the server changed under us (upgraded or downgraded in place): :func:`is_missing_route` tells it
apart, :func:`forget` drops the cached profile, and :class:`Workspace` re-detects and retries once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from plane_connector._errors import AuthError, HTTPError, NotFoundError, PlaneError

__all__ = [
    "ISSUES",
    "RESOURCES",
    "WORK_ITEMS",
    "Collection",
    "MissingRouteError",
    "Routes",
    "ServerProfile",
    "Workspace",
    "cached",
    "detect",
    "forget",
    "is_missing_route",
    "missing_route",
    "profile_for_version",
    "segments",
]

log = logging.getLogger(__name__)

WORK_ITEMS = "work-items"
ISSUES = "issues"
#: The first release with ``/work-items/`` routes (both families are served since).
WORK_ITEMS_SINCE = (1, 1, 0)
#: Django's body for a URL no route matches (Plane's handler404), as opposed to a view's
#: "The requested resource does not exist." for an id it does not know.
PAGE_NOT_FOUND = "Page not found."
#: A workspace slug nobody owns, for the probe: its answer never holds data.
PROBE_WORKSPACE = "plane-connector-probe"
#: How long an undetermined profile (Plane unreachable, a 5xx) is kept before asking again.
RETRY_AFTER = 60.0
CLOUD_HOSTS = frozenset({"api.plane.so", "app.plane.so"})

_ID = object()  # a slot for a caller's id in a template
_FAMILY = object()  # the work-item route word of the server's family
_ATTACHMENTS = object()  # "attachments" (work-items family) or "issue-attachments" (issues)

#: resource -> path segments under ``workspaces/<slug>/``. Each ``_ID`` takes one of the
#: caller's ids in order; one more id, when given, addresses a single object of the list.
RESOURCES: Mapping[str, tuple[object, ...]] = {
    "members": ("members",),
    "projects": ("projects",),
    "project_members": ("projects", _ID, "members"),
    "project_archive": ("projects", _ID, "archive"),
    "states": ("projects", _ID, "states"),
    "labels": ("projects", _ID, "labels"),
    "work_items": ("projects", _ID, _FAMILY),
    "comments": ("projects", _ID, _FAMILY, _ID, "comments"),
    "links": ("projects", _ID, _FAMILY, _ID, "links"),
    "activities": ("projects", _ID, _FAMILY, _ID, "activities"),
    "attachments": ("projects", _ID, _FAMILY, _ID, _ATTACHMENTS),
    "cycles": ("projects", _ID, "cycles"),
    "cycle_items": ("projects", _ID, "cycles", _ID, "cycle-issues"),
    "modules": ("projects", _ID, "modules"),
    "module_items": ("projects", _ID, "modules", _ID, "module-issues"),
    "work_item_search": (_FAMILY, "search"),
    # The one extra id is the item's key, e.g. "ERP-12".
    "work_item_by_key": (_FAMILY,),
}


def segments(family: str, resource: str, *ids: str) -> list[str]:
    """The path segments of ``resource`` under ``workspaces/<slug>/`` on a server of ``family``.

    ``ids`` fill the template's slots in order (project, then work item, …); one more id
    addresses a single object. Raises ``ValueError`` for an unknown resource or a wrong count.
    """
    if family not in (WORK_ITEMS, ISSUES):
        raise ValueError(f"unknown route family {family!r}")
    try:
        template = RESOURCES[resource]
    except KeyError:
        raise ValueError(
            f"unknown Plane resource {resource!r}; known: {', '.join(sorted(RESOURCES))}"
        ) from None
    slots = sum(1 for part in template if part is _ID)
    if len(ids) not in (slots, slots + 1):
        raise ValueError(f"{resource} takes {slots} or {slots + 1} ids, got {len(ids)}")
    given = iter(str(i) for i in ids)
    out: list[str] = []
    for part in template:
        if part is _ID:
            out.append(next(given))
        elif part is _FAMILY:
            out.append(family)
        elif part is _ATTACHMENTS:
            out.append("attachments" if family == WORK_ITEMS else "issue-attachments")
        else:
            out.append(str(part))
    out.extend(given)
    return out


def _parse_version(text: Any) -> tuple[int, ...] | None:
    if not isinstance(text, str):
        return None
    m = re.match(r"\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if not m:
        return None
    return tuple(int(g or 0) for g in m.groups())


_EDITIONS = {"PLANE_COMMUNITY": "CE", "CLOUD": "Cloud"}


@dataclass(frozen=True)
class ServerProfile:
    """What one Plane server is and which route family it answers.

    ``source``: ``instances`` (its own ``/api/instances/`` answer), ``probe`` (a route probe),
    ``assumed`` (Plane Cloud, or undetermined because the server could not be asked).
    """

    base_url: str
    family: str
    version: str | None = None
    edition: str | None = None
    source: str = "assumed"
    detected_at: float = field(default_factory=time.time, compare=False)

    @property
    def capabilities(self) -> frozenset[str]:
        """The route families this server answers (``work-items`` implies ``issues`` too)."""
        return frozenset({WORK_ITEMS, ISSUES} if self.family == WORK_ITEMS else {ISSUES})

    @property
    def missing(self) -> frozenset[str]:
        """Capabilities the connector can use that this server lacks."""
        return frozenset({WORK_ITEMS}) - self.capabilities

    @property
    def routes(self) -> Routes:
        return Routes(self.family)

    @property
    def edition_label(self) -> str:
        if not self.edition:
            return ""
        return _EDITIONS.get(self.edition.upper(), self.edition.replace("PLANE_", "").title())

    def label(self) -> str:
        """One line for people: ``Plane CE 1.0.0 — work items via /issues/``."""
        name = " ".join(p for p in ("Plane", self.edition_label, self.version or "") if p)
        if not self.version:
            name += " (version unknown)"
        how = {"probe": ", found by a route probe", "assumed": ", assumed"}.get(self.source, "")
        return f"{name} — work items via /{self.family}/{how}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "version": self.version,
            "edition": self.edition,
            "family": self.family,
            "source": self.source,
            "missing": sorted(self.missing),
            "label": self.label(),
        }


def profile_for_version(base_url: str, version: str | None, edition: str | None = None,
                        source: str = "instances") -> ServerProfile:  # fmt: skip
    """The profile of a server that reports ``version`` (newest family when it is unknown)."""
    parsed = _parse_version(version)
    family = ISSUES if parsed is not None and parsed < WORK_ITEMS_SINCE else WORK_ITEMS
    return ServerProfile(base_url, family, version.strip() if version else None, edition, source)


class Routes:
    """Paths (relative to ``/api/v1/``) of the resources for one route family."""

    def __init__(self, family: str) -> None:
        if family not in (WORK_ITEMS, ISSUES):
            raise ValueError(f"unknown route family {family!r}")
        self.family = family

    def __repr__(self) -> str:
        return f"Routes({self.family!r})"

    def path(self, workspace: str, resource: str, *ids: str) -> str:
        return "/".join(["workspaces", workspace, *segments(self.family, resource, *ids)]) + "/"

    def work_items(self, workspace: str, project: str) -> str:
        return self.path(workspace, "work_items", project)

    def work_item(self, workspace: str, project: str, item: str) -> str:
        return self.path(workspace, "work_items", project, item)

    def comments(self, workspace: str, project: str, item: str) -> str:
        return self.path(workspace, "comments", project, item)

    def comment(self, workspace: str, project: str, item: str, comment: str) -> str:
        return self.path(workspace, "comments", project, item, comment)


# -- detection and the per-process cache ------------------------------------------------------

_lock = threading.Lock()
_cache: dict[str, tuple[ServerProfile, float | None]] = {}  # root -> (profile, expires or None)
_warned: set[tuple[str, str]] = set()


def _root(base_url: str) -> str:
    root = base_url.strip().rstrip("/")
    for suffix in ("/api/v1", "/api"):
        if root.endswith(suffix):
            root = root[: -len(suffix)].rstrip("/")
    return root


def cached(base_url: str) -> ServerProfile | None:
    """The cached profile of ``base_url`` (None when not detected or expired)."""
    with _lock:
        hit = _cache.get(_root(base_url))
    if hit is None or (hit[1] is not None and hit[1] <= time.monotonic()):
        return None
    return hit[0]


def forget(base_url: str | None = None) -> None:
    """Drop the cached profile of ``base_url`` (all of them when None)."""
    with _lock:
        if base_url is None:
            _cache.clear()
        else:
            _cache.pop(_root(base_url), None)


class MissingRouteError(HTTPError):
    """The server has no such route (its version lacks it), as opposed to ``NotFoundError``, an
    object that does not exist.

    Deliberately not a ``NotFoundError``: code that reads a 404 as "deleted in Plane" must not
    flag every record because the server was swapped for an older one.
    """


def is_missing_route(exc: BaseException) -> bool:
    """True for a 404 that means "no such route" (the server lacks it), not "no such object"."""
    if isinstance(exc, MissingRouteError):
        return True
    if not isinstance(exc, NotFoundError):
        return False
    return PAGE_NOT_FOUND.rstrip(".").lower() in f"{exc.message} {exc.body}".lower()


def missing_route(exc: NotFoundError, base_url: str, path: str) -> MissingRouteError:
    """The ``MissingRouteError`` for ``exc`` (a missing-route 404 of ``path``); forgets the cached
    profile of ``base_url`` so that the next path is built for what the server is now."""
    forget(base_url)
    log.warning("Plane at %s has no route %s: it changed since it was detected (upgraded or "
                "restored in place?); detecting it again", _root(base_url), path.split("?")[0])
    text = (f"Plane at {_root(base_url)} has no route {path.split('?')[0]!r} (its version lacks "
            f"it); the server is detected again on the next call")
    return MissingRouteError(text, status=404, body=exc.body, message=text)


def detect(client: Any, *, refresh: bool = False) -> ServerProfile:
    """The profile of ``client``'s server, from the cache unless ``refresh``.

    Never raises for Plane-side failures: an unreachable server gives an ``assumed`` newest
    profile that is asked again after ``RETRY_AFTER`` seconds.
    """
    base_url = client.base_url
    root = _root(base_url)
    if not refresh:
        hit = cached(root)
        if hit is not None:
            return hit
    profile, definite = _detect(client, root)
    with _lock:
        old = _cache.get(root)
        _cache[root] = (profile, None if definite else time.monotonic() + RETRY_AFTER)
    if old is not None and old[0].family != profile.family:
        log.warning("Plane at %s changed: %s (was: %s)", root, profile.label(), old[0].label())
    _say_missing(profile)
    return profile


def _say_missing(profile: ServerProfile) -> None:
    """Log once per server and missing capability, not once per record."""
    for capability in sorted(profile.missing):
        key = (profile.base_url, capability)
        with _lock:
            if key in _warned:
                continue
            _warned.add(key)
        log.warning("Plane at %s (%s) has no /%s/ routes: the connector uses /%s/ there",
                    profile.base_url, profile.label(), capability, profile.family)  # fmt: skip


def _detect(client: Any, root: str) -> tuple[ServerProfile, bool]:
    host = re.sub(r"^[a-z]+://", "", root).split("/")[0].split(":")[0].lower()
    if host in CLOUD_HOSTS:
        return ServerProfile(root, WORK_ITEMS, None, "cloud", "assumed"), True
    try:
        # No credential goes with it (the call the client makes for OAuth's root routes).
        answer = client.oauth_request("GET", "api/instances/")
    except (PlaneError, ValueError):
        answer = None
    instance = answer.get("instance") if isinstance(answer, dict) else None
    if isinstance(instance, dict) and _parse_version(instance.get("current_version")):
        edition = instance.get("edition") if isinstance(instance.get("edition"), str) else None
        return profile_for_version(root, instance["current_version"], edition), True
    probe = f"workspaces/{PROBE_WORKSPACE}/{WORK_ITEMS}/search/"
    try:
        client.get(probe, params={"search": "plane-connector", "limit": "1"})
    except AuthError:
        return ServerProfile(root, WORK_ITEMS, source="probe"), True
    except NotFoundError as exc:
        family = ISSUES if is_missing_route(exc) else WORK_ITEMS
        return ServerProfile(root, family, source="probe"), True
    except (HTTPError, PlaneError):
        return ServerProfile(root, WORK_ITEMS, source="assumed"), False
    return ServerProfile(root, WORK_ITEMS, source="probe"), True


# -- the typed API ----------------------------------------------------------------------------


class Workspace:
    """Typed access to one workspace's resources on a detected server.

    ``Workspace(client, "acme").work_items(project_id).list()`` walks the right route for the
    server (``/issues/`` on Plane ≤ 1.0, ``/work-items/`` after); the raw-path API of the client
    stays as it is. A call that meets a missing route re-detects the server once and retries
    with the new profile's path when the family changed (a server upgraded in place).
    """

    def __init__(self, client: Any, slug: str) -> None:
        if not slug or "/" in slug:
            raise ValueError("a workspace slug is required (no '/')")
        self.client = client
        self.slug = slug

    def __repr__(self) -> str:
        return f"<Workspace {self.slug!r} on {self.client.base_url}>"

    @property
    def profile(self) -> ServerProfile:
        return detect(self.client)

    def path(self, resource: str, *ids: str) -> str:
        return self.profile.routes.path(self.slug, resource, *ids)

    def request(self, method: str, resource: str, ids: tuple[str, ...] = (), **kw: Any) -> Any:
        """``client.request`` on ``resource``'s path; one re-detection on a missing route."""
        family = self.profile.family
        path = self.path(resource, *ids)
        try:
            return self.client.request(method, path, **kw)
        except NotFoundError as exc:
            if not is_missing_route(exc):
                raise
            error = missing_route(exc, self.client.base_url, path)
            if detect(self.client).family == family:
                raise error from exc
        return self.client.request(method, self.path(resource, *ids), **kw)

    def collection(self, resource: str, *parents: str) -> Collection:
        return Collection(self, resource, tuple(parents))

    def projects(self) -> Collection:
        return self.collection("projects")

    def members(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "members") or [])

    def states(self, project: str) -> Collection:
        return self.collection("states", project)

    def labels(self, project: str) -> Collection:
        return self.collection("labels", project)

    def work_items(self, project: str) -> Collection:
        return self.collection("work_items", project)

    def comments(self, project: str, item: str) -> Collection:
        return self.collection("comments", project, item)

    def links(self, project: str, item: str) -> Collection:
        return self.collection("links", project, item)

    def activities(self, project: str, item: str) -> Collection:
        return self.collection("activities", project, item)

    def cycles(self, project: str) -> Collection:
        return self.collection("cycles", project)

    def modules(self, project: str) -> Collection:
        return self.collection("modules", project)

    def search(self, text: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """Work items whose name or key matches ``text`` (Plane's ``…/search/``)."""
        found = self.request("GET", "work_item_search", params={"search": text, "limit": limit})
        return list(found.get("issues") or []) if isinstance(found, dict) else []

    def work_item_by_key(self, key: str) -> dict[str, Any]:
        """A work item by its human key, e.g. ``ERP-12``."""
        return dict(self.request("GET", "work_item_by_key", (key,)))


class Collection:
    """One list resource (and its objects) of a :class:`Workspace`."""

    def __init__(self, workspace: Workspace, resource: str, parents: tuple[str, ...]) -> None:
        segments(WORK_ITEMS, resource, *parents)  # checks the resource and the id count now
        self.workspace = workspace
        self.resource = resource
        self.parents = parents

    def __repr__(self) -> str:
        return f"<Collection {self.resource} {'/'.join(self.parents)}>"

    @property
    def path(self) -> str:
        return self.workspace.path(self.resource, *self.parents)

    def _call(self, method: str, *extra: str, **kw: Any) -> Any:
        return self.workspace.request(method, self.resource, (*self.parents, *extra), **kw)

    def list(
        self, *, params: Mapping[str, Any] | None = None, per_page: int = 100
    ) -> Iterator[Any]:
        """Every object, page by page (a cursor pager)."""
        pager: Iterator[Any] = self.workspace.client.paginate(
            self.path, params=dict(params or {}), per_page=per_page
        )
        return pager

    def get(self, oid: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self._call("GET", oid, params=dict(params or {}) or None)

    def create(self, json: Mapping[str, Any]) -> Any:
        return self._call("POST", json=dict(json))

    def create_idempotent(self, json: Mapping[str, Any]) -> Any:
        """POST with ``external_id``/``external_source``: a repeat returns the existing object."""
        return self.workspace.client.create_idempotent(self.path, dict(json))

    def update(self, oid: str, json: Mapping[str, Any]) -> Any:
        return self._call("PATCH", oid, json=dict(json))

    def delete(self, oid: str) -> Any:
        return self._call("DELETE", oid)
