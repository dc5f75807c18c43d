"""Cursor pagination: real cursors, fixed per_page, resume from a saved cursor, loop guard."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from core_loopback import API_KEY, LoopbackServer, Reply, Seen, plane_pages
from plane_connector import AuthError, ConfigError, PaginationError, PlaneClient

ITEMS = [{"id": f"wi-{i:05d}", "sequence_id": i} for i in range(1234)]
PATH = "workspaces/ws/projects/p/work-items/"
_keys = itertools.count()


def client(server: LoopbackServer) -> PlaneClient:
    return PlaneClient(server.url, api_key=f"{API_KEY}pg{next(_keys):04d}", backoff_base=0.01)


def test_walks_1234_items_following_real_cursors(server: LoopbackServer) -> None:
    server.handler = plane_pages(ITEMS)
    pager = client(server).paginate(PATH, params={"order_by": "sequence_id"}, per_page=100)
    got = [item["id"] for item in pager]
    assert got == [i["id"] for i in ITEMS]
    assert len(server.requests) == 13
    assert pager.pages == 13
    assert pager.total == 1234
    # The same per_page with every cursor, the cursors exactly as the server sent them.
    assert all(r.query["per_page"] == "100" for r in server.requests)
    assert all(r.query["order_by"] == "sequence_id" for r in server.requests)
    assert "cursor" not in server.requests[0].query
    assert [r.query.get("cursor") for r in server.requests[1:]] == [
        f"100:{n}:0" for n in range(1, 13)
    ]


def test_resume_from_a_saved_cursor(server: LoopbackServer) -> None:
    server.handler = plane_pages(ITEMS)
    c = client(server)
    pager = c.paginate(PATH, per_page=100)
    seen: list[str] = []
    saved = None
    for item in pager:
        seen.append(item["id"])
        if len(seen) == 550:
            saved = pager.cursor  # a crash here: the export saved this cursor
            break
    assert saved == "100:5:0"
    resumed = [item["id"] for item in c.paginate(PATH, per_page=100, cursor=saved)]
    # The page being read comes again (dedupe by id); nothing is lost.
    assert resumed[0] == "wi-00500"
    assert set(seen) | set(resumed) == {i["id"] for i in ITEMS}
    assert len(resumed) == 1234 - 500


def test_last_page_stops_on_next_page_results(server: LoopbackServer) -> None:
    server.handler = plane_pages(ITEMS[:100])
    pager = client(server).paginate(PATH, per_page=100)
    assert len(list(pager)) == 100
    assert len(server.requests) == 1  # next_cursor "100:1:0" is not followed
    assert pager.next_cursor is None
    assert list(pager) == []


def test_recorded_plane_page(server: LoopbackServer, samples_dir: Path) -> None:
    first = json.loads(
        (samples_dir / "pagination" / "work-items-per_page-50-page1.json").read_text()
    )
    last = json.loads(
        (samples_dir / "pagination" / "work-items-per_page-50-page7-last.json").read_text()
    )

    def handle(seen: Seen) -> Reply:
        return Reply(json=last if seen.query.get("cursor") else first)

    server.handler = handle
    got = list(client(server).paginate(PATH, per_page=50))
    assert len(got) == len(first["results"]) + len(last["results"])
    assert server.requests[1].query == {"per_page": "50", "cursor": first["next_cursor"]}


def test_loop_guard_on_a_server_that_never_ends(server: LoopbackServer) -> None:
    page = {"next_cursor": "100:1:0", "next_page_results": True, "results": [{"id": "x"}]}
    server.handler = lambda s: Reply(json=page)
    with pytest.raises(PaginationError, match="loop"):
        list(client(server).paginate(PATH, per_page=100))
    assert len(server.requests) == 2


def test_loop_guard_on_endless_empty_pages(server: LoopbackServer) -> None:
    def handle(seen: Seen) -> Reply:
        n = len(server.requests)
        return Reply(json={"next_cursor": f"10:{n}:0", "next_page_results": True, "results": []})

    server.handler = handle
    with pytest.raises(PaginationError, match="stuck"):
        list(client(server).paginate(PATH, per_page=10))
    assert len(server.requests) == 3


def test_bad_cursor_is_a_clear_error(server: LoopbackServer) -> None:
    server.handler = plane_pages(ITEMS)
    with pytest.raises(PaginationError) as info:
        list(client(server).paginate(PATH, per_page=100, cursor="not-a-cursor"))
    assert "not-a-cursor" in str(info.value)
    assert "Invalid cursor parameter." in str(info.value)


def test_non_page_body_is_a_clear_error(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json={"id": "me"})
    with pytest.raises(PaginationError, match="not paginated"):
        list(client(server).paginate("users/me/"))


def test_plain_array_endpoints_yield_their_items(server: LoopbackServer) -> None:
    server.handler = lambda s: Reply(json=[{"id": 1}, {"id": 2}])
    assert [m["id"] for m in client(server).paginate("workspaces/ws/members/")] == [1, 2]


@pytest.mark.parametrize("per_page", [0, 1001])
def test_per_page_bounds(server: LoopbackServer, per_page: int) -> None:
    with pytest.raises(ConfigError):
        client(server).paginate(PATH, per_page=per_page)


def test_cursor_in_params_is_refused(server: LoopbackServer) -> None:
    params: dict[str, Any] = {"cursor": "100:1:0"}
    with pytest.raises(ConfigError, match="cursor="):
        client(server).paginate(PATH, params=params)


def test_errors_mid_walk_keep_the_resume_point(server: LoopbackServer) -> None:
    pages = plane_pages(ITEMS[:300])

    def handle(seen: Seen) -> Reply:
        if seen.query.get("cursor") == "100:2:0":
            return Reply(403, {"detail": "Given API token is not valid"})
        return pages(seen)

    server.handler = handle
    pager = client(server).paginate(PATH, per_page=100)
    got = []
    with pytest.raises(AuthError, match="not valid") as info:
        for item in pager:
            got.append(item)
    assert info.value.status == 403
    assert len(got) == 200
    assert pager.cursor == "100:2:0"


def test_loop_guard_on_a_server_ignoring_the_cursor(server: LoopbackServer) -> None:
    # New cursors every time, but always the first rows: no progress.
    first = [{"id": i} for i in range(10)]

    def handle(seen: Seen) -> Reply:
        n = len(server.requests)
        return Reply(json={"next_cursor": f"10:{n}:0", "next_page_results": True,
                           "results": first})  # fmt: skip

    server.handler = handle
    with pytest.raises(PaginationError, match="ignoring the cursor"):
        list(client(server).paginate(PATH, per_page=10))
    assert len(server.requests) == 2
