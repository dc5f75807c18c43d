"""The listing bug reported against Plane 1.3.0 (issue 22): pages repeating and the next-page
flag always true. The emulator reproduces it (fault kind ``page_repeat``) and the pager's loop
guard must stop the walk after one repeated page instead of reading it forever."""

from __future__ import annotations

import pytest
from plane_connector import PaginationError, PlaneClient, server
from plane_connector.testing import PlaneEmulator


@pytest.fixture
def emu():
    with PlaneEmulator(version="1.3.0", rate_limit=600) as emu:
        emu.seed_work_items(30, emu.project_id)
        yield emu


def items_path(emu: PlaneEmulator, client: PlaneClient) -> str:
    return server.detect(client).routes.work_items(emu.workspace_slug, emu.project_id)


def test_the_walk_ends_without_the_bug(emu: PlaneEmulator) -> None:
    client = PlaneClient(emu.base_url, api_key=emu.api_key)
    got = [i["id"] for i in client.paginate(items_path(emu, client), per_page=10)]
    assert len(got) == len(set(got)) == 30


def test_loop_guard_holds_on_repeating_pages(emu: PlaneEmulator) -> None:
    client = PlaneClient(emu.base_url, api_key=emu.api_key)
    path = items_path(emu, client)
    emu.faults.add(route_regex=r"/work-items/$", method="GET", kind="page_repeat", count=None)
    pager = client.paginate(path, per_page=10)
    got: list[str] = []
    with pytest.raises(PaginationError, match="ignoring the cursor") as info:
        for item in pager:
            got.append(item["id"])
    # One sentence (the message once had a run of spaces from a broken line continuation).
    assert "repeats the previous page's 10 items;" in str(info.value)
    # The first page once, no repeat handed to the caller, and two requests: not a loop.
    assert len(got) == len(set(got)) == 10
    listed = [r for r in emu.requests if r.method == "GET" and r.path.endswith("/work-items/")]
    assert len(listed) == 2


def test_page_parameter_is_ignored_as_on_plane_1_3_0(emu: PlaneEmulator) -> None:
    # Seen live on v1.3.0 (cf696d20) with 12 items, per_page=5: ?page=1, 2, 3 and 99 all
    # answer the first five with next_page_results true and next_cursor 5:1:0. API v1 has no
    # page parameter (its paginator reads only cursor=), so a client paging by ?page= never
    # ends; the wheel's pager sends cursors only.
    client = PlaneClient(emu.base_url, api_key=emu.api_key)
    path = items_path(emu, client)
    first = client.get(path, params={"per_page": "5"})
    for page in ("1", "2", "3", "99"):
        again = client.get(path, params={"per_page": "5", "page": page})
        assert [i["id"] for i in again["results"]] == [i["id"] for i in first["results"]]
        assert again["next_page_results"] is True
        assert again["next_cursor"] == "5:1:0"
