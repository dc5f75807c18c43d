"""The contract probes: what is asked of Plane, as data. One list, two targets (emulator, live).

Templates: ``{ws}`` is ``/api/v1/workspaces/<slug>``, ``{project}`` the target's project,
``{UNIQ}``/``{uniq}`` a fresh 5-letter token per run (upper/lower case: names and identifiers
must not clash with what earlier runs left on a live server), ``{me}``/``{member}`` the two
users' ids, and ``{name.path}`` a value from an answer saved by an earlier step
(``{states.results[name=Done].id}`` picks from a list). A step with ``record=False`` is set-up:
its answer is not part of the comparison. Clean-up steps always run and are never compared.
"""

from __future__ import annotations

from .runner import Probe, Step

P = "{ws}/projects/{project}"
ITEMS = P + "/work-items/"
NOWHERE = "00000000-0000-4000-8000-000000000000"
NO_PROJECT = "{ws}/projects/" + NOWHERE
#: The characters Plane refuses in project names and identifiers (Project model, CE 4ca6d6c7).
FORBIDDEN = "&+,:;$^}{*=?@#|'<>.()%!-"
INVALID_KEY = "plane_api_" + "0" * 32


def get(path: str, **kw) -> Step:
    return Step("GET", path, **kw)


def post(path: str, body=None, **kw) -> Step:
    return Step("POST", path, body, **kw)


def patch(path: str, body=None, **kw) -> Step:
    return Step("PATCH", path, body, **kw)


def delete(path: str, **kw) -> Step:
    return Step("DELETE", path, **kw)


def new_project(save: str, name: str = "Probe {UNIQ}", ident: str = "{UNIQ}", **kw) -> Step:
    return post("{ws}/projects/", {"name": name, "identifier": ident}, save=save, **kw)


def drop_project(save: str) -> Step:
    return delete("{ws}/projects/{" + save + ".id}/")


def new_item(save: str, name: str = "Probe item {UNIQ}", project: str = P, **extra) -> Step:
    record = extra.pop("record", True)
    return post(project + "/work-items/", {"name": name, **extra}, save=save, record=record)


def drop_item(save: str) -> Step:
    return delete(ITEMS + "{" + save + ".id}/")


AUTH = [
    Probe("auth.no_key", "no X-API-Key", (get("/api/v1/users/me/", key=None),)),
    Probe("auth.invalid_key", "a well-formed key Plane does not know",
          (get("/api/v1/users/me/", key=INVALID_KEY),)),
    Probe("auth.unknown_workspace", "a slug that is no workspace",
          (get("/api/v1/workspaces/nowhere-{uniq}/projects/"),)),
    Probe("auth.unknown_project", "a project id that does not exist, under its sub-resources",
          (get(NO_PROJECT + "/work-items/"), get(NO_PROJECT + "/states/"),
           post(NO_PROJECT + "/work-items/", {"name": "x"}))),
    Probe("auth.unknown_project_detail", "a project id that does not exist, the project itself",
          (get(NO_PROJECT + "/"), patch(NO_PROJECT + "/", {"name": "x"}),
           delete(NO_PROJECT + "/"))),
    Probe("errors.unknown_objects", "unknown ids below a real project: 404 bodies",
          (get(ITEMS + NOWHERE + "/"), patch(ITEMS + NOWHERE + "/", {"name": "x"}),
           delete(ITEMS + NOWHERE + "/"), get(P + "/states/" + NOWHERE + "/"),
           get(P + "/labels/" + NOWHERE + "/"), get(ITEMS + NOWHERE + "/comments/"))),
    Probe("errors.routing", "unknown route, wrong method, bad JSON",
          (get("/api/v1/nothing-here/"), Step("PUT", "/api/v1/users/me/", {}),
           Step("POST", ITEMS, raw=b"{bad json", )),
    ),
]

PROJECTS = [
    Probe("project.create", "create a project; read it back; its default states and labels",
          (new_project("p", ident="{uniq}"), get("{ws}/projects/{p.id}/"),
           get("{ws}/projects/{p.id}/states/"), get("{ws}/projects/{p.id}/labels/")),
          (drop_project("p"),)),
    Probe("project.name_forbidden_chars", "each character Plane refuses in a project name",
          tuple(post("{ws}/projects/", {"name": f"Probe {{UNIQ}} a{c}b",
                                        "identifier": f"{{UNIQ}}{i:02d}"})
                for i, c in enumerate(FORBIDDEN))),
    Probe("project.name_realistic_odoo_names", "Odoo project names as users type them",
          tuple(post("{ws}/projects/", {"name": name, "identifier": f"{{UNIQ}}{i}"})
                for i, name in enumerate(("R&D {UNIQ}", "ACME Inc. {UNIQ}",
                                          "Website - Phase 2 (2026) {UNIQ}")))),
    Probe("project.name_allowed_chars", "characters outside Plane's list are accepted",
          (new_project("p", name='Probe {UNIQ} _/[]~`"\\ é ü 中 ✓'),),
          (drop_project("p"),)),
    Probe("project.identifier_rules", "identifier charset, length, case, blank",
          (post("{ws}/projects/", {"name": "Probe {UNIQ} a", "identifier": "{UNIQ}-1"}),
           post("{ws}/projects/", {"name": "Probe {UNIQ} b", "identifier": "{UNIQ}.1"}),
           post("{ws}/projects/", {"name": "Probe {UNIQ} c", "identifier": "{UNIQ}ABCDEFGH"}),
           post("{ws}/projects/", {"name": "Probe {UNIQ} d", "identifier": ""}),
           post("{ws}/projects/", {"name": "Probe {UNIQ} e", "identifier": "   "}),
           new_project("p1", name="Probe {UNIQ} f", ident="{UNIQ}ABCDEFG"),
           new_project("p2", name="Probe {UNIQ} g", ident=" {uniq}x "),
           new_project("p3", name="Probe {UNIQ} h", ident="{UNIQ} Y"),
           new_project("p4", name="Probe {UNIQ} i", ident="{UNIQ}Ä")),
          (drop_project("p1"), drop_project("p2"), drop_project("p3"), drop_project("p4"))),
    Probe("project.required_and_length", "missing fields, name length",
          (post("{ws}/projects/", {}), post("{ws}/projects/", {"name": "Probe {UNIQ}"}),
           post("{ws}/projects/", {"identifier": "{UNIQ}"}),
           post("{ws}/projects/", {"name": "", "identifier": "{UNIQ}"}),
           post("{ws}/projects/", {"name": "N" * 251 + "{UNIQ}", "identifier": "{UNIQ}"}),
           new_project("p", name="N" * 250 + "{UNIQ}")),
          (drop_project("p"),)),
    Probe("project.duplicates", "a taken identifier, a taken name, the name in another case",
          (new_project("p1"),
           post("{ws}/projects/", {"name": "Probe {UNIQ} other", "identifier": "{UNIQ}"}),
           post("{ws}/projects/", {"name": "Probe {UNIQ} other", "identifier": "{uniq}"}),
           post("{ws}/projects/", {"name": "Probe {UNIQ}", "identifier": "{UNIQ}2"}),
           new_project("p2", name="probe {uniq}", ident="{UNIQ}3")),
          (drop_project("p1"), drop_project("p2"))),
    Probe("project.update_rules", "rename rules on PATCH: charset, clash, identifier",
          (new_project("p1"), new_project("p2", name="Probe {UNIQ} two", ident="{UNIQ}2"),
           patch("{ws}/projects/{p1.id}/", {"name": "Probe {UNIQ} renamed"}),
           patch("{ws}/projects/{p1.id}/", {"name": "R&D {UNIQ}"}),
           patch("{ws}/projects/{p1.id}/", {"identifier": "{UNIQ}-9"}),
           patch("{ws}/projects/{p1.id}/", {"name": "Probe {UNIQ} two"}),
           patch("{ws}/projects/{p1.id}/", {"identifier": "{UNIQ}2"}),
           patch("{ws}/projects/{p1.id}/", {"identifier": "{uniq}9"}),
           patch("{ws}/projects/{p1.id}/", {"description": "Full Odoo name: R&D (2026)"}),
           patch("{ws}/projects/{p1.id}/", {"name": ""})),
          (drop_project("p1"), drop_project("p2"))),
    Probe("project.archive", "archive, what an archived project still answers, unarchive",
          (new_project("p"), new_item("i", project="{ws}/projects/{p.id}", record=False),
           post("{ws}/projects/{p.id}/archive/"), get("{ws}/projects/{p.id}/"),
           patch("{ws}/projects/{p.id}/", {"name": "Probe {UNIQ} x"}),
           get("{ws}/projects/{p.id}/work-items/{i.id}/"),
           post("{ws}/projects/{p.id}/work-items/", {"name": "into an archived project"}),
           delete("{ws}/projects/{p.id}/archive/"),
           patch("{ws}/projects/{p.id}/", {"name": "Probe {UNIQ} y"})),
          (drop_project("p"),)),
    Probe("project.delete", "delete, then the project and its items are gone",
          (new_project("p"), new_item("i", project="{ws}/projects/{p.id}", record=False),
           # What the project's work items, or a second DELETE, answer right after is a race:
           # Plane soft-deletes a project's rows (its members too, which the permission check
           # reads) in a Celery task after the project itself: 200/404 first, 403 after.
           delete("{ws}/projects/{p.id}/"), get("{ws}/projects/{p.id}/"),
           new_project("again")),
          (drop_project("again"),)),
]

ITEM_PROBES = [
    Probe("item.create_full", "create with every writable field the sync sends; read back",
          (get(P + "/states/", save="states", record=False),
           get(P + "/labels/", save="labels", record=False),
           post(P + "/labels/", {"name": "probe-{uniq}", "color": "#112233"}, save="label",
                record=False),
           new_item("i", description_html="<p>Made by <b>a probe</b></p>", priority="high",
                    start_date="2026-03-01", target_date="2026-03-31",
                    state="{states.results[name=Todo].id}", labels=["{label.id}"],
                    assignees=["{member}"], external_id="probe,{UNIQ}",
                    external_source="probe"),
           get(ITEMS + "{i.id}/"), get(ITEMS + "{i.id}/?expand=state,labels,assignees"),
           get(ITEMS + "?external_id=probe,{UNIQ}&external_source=probe"),
           get(ITEMS + "?external_id=probe,{UNIQ}x&external_source=probe")),
          (drop_item("i"), delete(P + "/labels/{label.id}/"))),
    Probe("item.name_rules", "name required, blank, whitespace, length",
          (post(ITEMS, {}), post(ITEMS, {"name": ""}), post(ITEMS, {"name": "   "}),
           post(ITEMS, {"name": None}), post(ITEMS, {"name": "N" * 256}),
           new_item("i", name="N" * 250 + "{UNIQ}")),
          (drop_item("i"),)),
    Probe("item.priority_and_dates", "priority choices, date format and order",
          (post(ITEMS, {"name": "p {UNIQ}", "priority": "bogus"}),
           post(ITEMS, {"name": "p {UNIQ}", "priority": "URGENT"}),
           post(ITEMS, {"name": "p {UNIQ}", "priority": None}),
           post(ITEMS, {"name": "p {UNIQ}", "start_date": "2026-04-02",
                        "target_date": "2026-04-01"}),
           post(ITEMS, {"name": "p {UNIQ}", "start_date": "2026-13-01"}),
           post(ITEMS, {"name": "p {UNIQ}", "target_date": "01/02/2026"}),
           new_item("i", priority="urgent", start_date="2026-04-01", target_date="2026-04-01"),
           patch(ITEMS + "{i.id}/", {"start_date": "2026-04-05"}),
           patch(ITEMS + "{i.id}/", {"target_date": None})),
          (drop_item("i"),)),
    Probe("item.references", "unknown and foreign state, label, assignee and parent ids",
          (new_project("p2", record=False),
           get("{ws}/projects/{p2.id}/states/", save="s2", record=False),
           post("{ws}/projects/{p2.id}/labels/", {"name": "far-{uniq}"}, save="l2", record=False),
           new_item("far", project="{ws}/projects/{p2.id}", record=False),
           post(ITEMS, {"name": "r {UNIQ}", "state": NOWHERE}),
           post(ITEMS, {"name": "r {UNIQ}", "state": "{s2.results.0.id}"}),
           post(ITEMS, {"name": "r {UNIQ}", "state": "not-a-uuid"}),
           post(ITEMS, {"name": "r {UNIQ}", "labels": [NOWHERE]}),
           post(ITEMS, {"name": "r {UNIQ}", "assignees": [NOWHERE]}),
           post(ITEMS, {"name": "r {UNIQ}", "parent": NOWHERE}),
           post(ITEMS, {"name": "r {UNIQ}", "parent": "{far.id}"}),
           new_item("i", labels=["{l2.id}"]),
           post("{ws}/projects/{p2.id}/work-items/", {"name": "x {UNIQ}",
                                                       "assignees": ["{member}"]},
                save="j"),
           patch(ITEMS + "{i.id}/", {"parent": "{i.id}"}),
           post(ITEMS, {"name": "", "priority": "nope", "state": "not-a-uuid", "labels": "x",
                        "assignees": ["bad"], "start_date": "2026-02-30", "parent": NOWHERE})),
          (drop_item("i"), drop_project("p2"))),
    Probe("item.update_and_delete", "update, delete, and what a deleted item answers",
          (new_item("i"), patch(ITEMS + "{i.id}/", {"name": "Probe item {UNIQ} renamed"}),
           patch(ITEMS + "{i.id}/", {"name": ""}),
           delete(ITEMS + "{i.id}/"), get(ITEMS + "{i.id}/"),
           patch(ITEMS + "{i.id}/", {"name": "back?"}), delete(ITEMS + "{i.id}/"),
           get(ITEMS + "{i.id}/comments/"))),
    Probe("item.external_id_rules", "external id duplicates on create and update",
          (new_item("a", external_id="probe,{UNIQ}", external_source="probe"),
           new_item("b", name="b {UNIQ}"),
           post(ITEMS, {"name": "c {UNIQ}", "external_id": "probe,{UNIQ}",
                        "external_source": "probe"}),
           # Without external_source Plane creates it (201): the clean-up must delete it too.
           post(ITEMS, {"name": "c {UNIQ}", "external_id": "probe,{UNIQ}"}, save="c"),
           patch(ITEMS + "{b.id}/", {"external_id": "probe,{UNIQ}",
                                     "external_source": "probe"})),
          (drop_item("a"), drop_item("b"), drop_item("c"))),
]

LISTS = [
    Probe("item.list_pages_and_order",
          "a project's work items: default order, per_page and cursor, fields=id, order_by, "
          "and the page after a delete (offset paging shifts)",
          (new_project("p", record=False),
           *(new_item(f"i{n}", name=f"Item {n} {{UNIQ}}", project="{ws}/projects/{p.id}",
                      record=False) for n in range(1, 6)),
           patch("{ws}/projects/{p.id}/work-items/{i2.id}/", {"name": "Item 2 {UNIQ} edited"},
                 record=False),
           get("{ws}/projects/{p.id}/work-items/?fields=id,name"),
           get("{ws}/projects/{p.id}/work-items/?per_page=2&fields=id"),
           get("{ws}/projects/{p.id}/work-items/?per_page=2&cursor=2:1:0&fields=id"),
           get("{ws}/projects/{p.id}/work-items/?order_by=-updated_at&fields=id,name"),
           get("{ws}/projects/{p.id}/work-items/?order_by=created_at&per_page=2&fields=id"),
           get("{ws}/projects/{p.id}/work-items/?per_page=1&expand=state,labels,assignees"),
           delete("{ws}/projects/{p.id}/work-items/{i4.id}/", record=False),
           get("{ws}/projects/{p.id}/work-items/?per_page=2&cursor=2:1:0&fields=id"),
           get("{ws}/projects/{p.id}/work-items/?per_page=2&cursor=2:9:0&fields=id"),
           get("{ws}/projects/{p.id}/work-items/?fields=id&external_id=x&external_source=y")),
          (drop_project("p"),)),
]

LABELS_STATES_COMMENTS = [
    Probe("label.rules", "label create, duplicate names, update, delete",
          (post(P + "/labels/", {}), post(P + "/labels/", {"name": "probe-{uniq}"}, save="l"),
           post(P + "/labels/", {"name": "probe-{uniq}", "color": "#000000"}),
           post(P + "/labels/", {"name": "Probe-{UNIQ}"}, save="l2"),
           patch(P + "/labels/{l.id}/", {"name": "probe-{uniq}-x", "color": "#ABCDEF"}),
           patch(P + "/labels/{l.id}/", {"name": "Probe-{UNIQ}"}),
           delete(P + "/labels/{l.id}/"), get(P + "/labels/{l.id}/"),
           delete(P + "/labels/{l.id}/")),
          (delete(P + "/labels/{l.id}/"), delete(P + "/labels/{l2.id}/"))),
    Probe("state.rules", "state create: required fields, groups, duplicates, delete",
          (post(P + "/states/", {}), post(P + "/states/", {"name": "Probe {UNIQ}"}),
           post(P + "/states/", {"name": "Probe {UNIQ}", "color": "#112233", "group": "nope"}),
           post(P + "/states/", {"name": "Probe {UNIQ}", "color": "#112233"}, save="s"),
           post(P + "/states/", {"name": "Probe {UNIQ}", "color": "#445566",
                                  "group": "completed"}),
           patch(P + "/states/{s.id}/", {"group": "cancelled"}),
           new_item("i", state="{s.id}", record=False),
           delete(P + "/states/{s.id}/"), drop_item("i"), delete(P + "/states/{s.id}/"),
           get(P + "/states/{s.id}/")),
          (drop_item("i"), delete(P + "/states/{s.id}/"))),
    Probe("comment.crud", "comment create, read, update, delete, and on a missing item",
          (new_item("i", record=False),
           post(ITEMS + "{i.id}/comments/", {}),
           post(ITEMS + "{i.id}/comments/", {"comment_html": "<p>Hello from a probe</p>"},
                save="c"),
           get(ITEMS + "{i.id}/comments/{c.id}/"),
           patch(ITEMS + "{i.id}/comments/{c.id}/", {"comment_html": "<p>Edited</p>"}),
           post(ITEMS + "{i.id}/comments/", {"comment_html": "<p>x</p>",
                                             "external_id": "probe,{UNIQ}",
                                             "external_source": "probe"}),
           post(ITEMS + "{i.id}/comments/", {"comment_html": "<p>x</p>",
                                             "external_id": "probe,{UNIQ}",
                                             "external_source": "probe"}),
           delete(ITEMS + "{i.id}/comments/{c.id}/"),
           get(ITEMS + "{i.id}/comments/{c.id}/"),
           post(ITEMS + NOWHERE + "/comments/", {"comment_html": "<p>x</p>"})),
          (drop_item("i"),)),
]

WEBHOOKS = [
    Probe("webhook.item_lifecycle",
          "work item: created, one delivery per changed field, none for an unchanged value, "
          "none for a delete (the next create is the marker that the queue has drained)",
          (get(P + "/states/", save="states", record=False),
           post(P + "/labels/", {"name": "hook-{uniq}"}, save="label", record=False),
           new_item("parent", name="Parent {UNIQ}"),
           new_item("i", priority="low"),
           patch(ITEMS + "{i.id}/", {"priority": "high", "name": "Hook {UNIQ} renamed"}),
           patch(ITEMS + "{i.id}/", {"priority": "high"}),
           patch(ITEMS + "{i.id}/", {"state": "{states.results[name=Done].id}"}),
           patch(ITEMS + "{i.id}/", {"labels": ["{label.id}"], "assignees": ["{member}"]}),
           patch(ITEMS + "{i.id}/", {"start_date": "2026-05-01", "target_date": "2026-05-02",
                                     "description_html": "<p>now described</p>"}),
           patch(ITEMS + "{i.id}/", {"parent": "{parent.id}"}),
           delete(ITEMS + "{i.id}/"),
           new_item("marker", name="Marker {UNIQ}")),
          (drop_item("marker"), drop_item("parent"), delete(P + "/labels/{label.id}/")),
          webhooks=True),
    Probe("webhook.comments", "comment created and updated send one delivery; deleted sends none",
          (new_item("i"),
           post(ITEMS + "{i.id}/comments/", {"comment_html": "<p>hook</p>"}, save="c"),
           patch(ITEMS + "{i.id}/comments/{c.id}/", {"comment_html": "<p>hook 2</p>"}),
           delete(ITEMS + "{i.id}/comments/{c.id}/"),
           patch(ITEMS + "{i.id}/", {"name": "Marker {UNIQ}"})),
          (drop_item("i"),),
          webhooks=True),
    Probe("webhook.projects", "project created, updated (per field), deleted",
          (new_project("p"),
           patch("{ws}/projects/{p.id}/", {"name": "Hook {UNIQ}", "description": "d"}),
           patch("{ws}/projects/{p.id}/", {"name": "Hook {UNIQ}"}),
           delete("{ws}/projects/{p.id}/")),
          webhooks=True),
    Probe("webhook.labels_states_send_nothing", "labels and states have no webhook event",
          (post(P + "/labels/", {"name": "silent-{uniq}"}, save="l"),
           post(P + "/states/", {"name": "Silent {UNIQ}", "color": "#101010"}, save="s"),
           patch(P + "/labels/{l.id}/", {"name": "silent-{uniq}-2"}),
           patch(P + "/states/{s.id}/", {"name": "Silent {UNIQ} 2"}),
           delete(P + "/labels/{l.id}/"), delete(P + "/states/{s.id}/"),
           new_item("marker", name="Marker {UNIQ}")),
          (drop_item("marker"),),
          webhooks=True),
]

PROBES: list[Probe] = [*AUTH, *PROJECTS, *ITEM_PROBES, *LISTS, *LABELS_STATES_COMMENTS,
                       *WEBHOOKS]
