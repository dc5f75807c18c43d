"""Contract: pagination equals Plane's OffsetPaginator as recorded (pagination/*)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plane_connector.testing import PlaneEmulator

from .conftest import Api, parse_http_sample, same_shape
from .test_emu_contract_errors import FORMATS


@pytest.fixture(scope="module")
def seeded() -> PlaneEmulator:
    emu = PlaneEmulator(seed=301, rate_limit=10_000).start()
    emu.seed_work_items(301)
    yield emu
    emu.stop()


def meta(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "results"}


def test_walk_301_items_at_50_matches_recorded_metadata(
    seeded: PlaneEmulator, samples_dir: Path
) -> None:
    api = Api(seeded)
    recorded = [
        json.loads(line)
        for line in (samples_dir / "pagination" / "walk-7-pages-metadata.jsonl")
        .read_text()
        .splitlines()
    ]
    ours, ids, cursor = [], [], None
    while True:
        path = f"{api.proj}/work-items/?per_page=50" + (f"&cursor={cursor}" if cursor else "")
        body = api.get(path).json()
        ours.append(meta(body))
        ids += [r["id"] for r in body["results"]]
        if not body["next_page_results"]:
            break
        cursor = body["next_cursor"]
    assert ours == recorded
    assert len(ids) == len(set(ids)) == 301


def test_page_bodies_match_recorded_shape(seeded: PlaneEmulator, samples_dir: Path) -> None:
    api = Api(seeded)
    page1 = api.get(f"{api.proj}/work-items/?per_page=50")
    recorded_body = json.loads(
        (samples_dir / "pagination" / "work-items-per_page-50-page1.json").read_bytes()
    )
    assert list(page1.json()) == list(recorded_body)  # key order, results last
    assert same_shape(recorded_body, page1.json()) == []
    # Compact DRF rendering: no spaces after separators.
    assert page1.body.startswith(b'{"grouped_by":null,"sub_grouped_by":null,"total_count":301,')
    last = api.get(f"{api.proj}/work-items/?per_page=50&cursor=50:6:0").json()
    recorded_last = json.loads(
        (samples_dir / "pagination" / "work-items-per_page-50-page7-last.json").read_bytes()
    )
    assert meta(last) == meta(recorded_last)
    assert same_shape(recorded_last, last) == []
    # The oldest item comes last (-created_at), as in the recording.
    assert last["results"][0]["sequence_id"] == recorded_last["results"][0]["sequence_id"] == 1


def test_page_headers_match_recorded(seeded: PlaneEmulator, samples_dir: Path) -> None:
    api = Api(seeded)
    ours = api.get(f"{api.proj}/work-items/?per_page=50")
    recorded = parse_http_sample(
        samples_dir / "pagination" / "work-items-per_page-50-page1.headers.txt"
    )
    assert ours.names == recorded.names
    for name, value in recorded.headers:
        if name in FORMATS:
            assert ours.header(name) is not None
        elif name.lower() not in ("date", "server"):
            assert ours.header(name) == value


def test_cursor_without_per_page_uses_1000_and_skips(seeded: PlaneEmulator) -> None:
    # Seen live: ?cursor=50:1:0 without per_page returned 0 of 301 rows (offset 1 * 1000).
    body = Api(seeded).get(f"{Api(seeded).proj}/work-items/?cursor=50:1:0").json()
    assert (body["count"], body["results"], body["next_page_results"]) == (0, [], False)
    assert body["next_cursor"] == "1000:2:0" and body["prev_cursor"] == "1000:0:1"


def test_default_page_is_everything_up_to_1000(seeded: PlaneEmulator) -> None:
    body = Api(seeded).get(f"{Api(seeded).proj}/work-items/").json()
    assert (body["count"], body["total_pages"], body["next_cursor"]) == (301, 1, "1000:1:0")


def test_past_the_end_is_an_empty_page(seeded: PlaneEmulator) -> None:
    api = Api(seeded)
    body = api.get(f"{api.proj}/work-items/?per_page=50&cursor=50:40:0").json()
    assert (body["count"], body["results"], body["next_page_results"]) == (0, [], False)
    assert body["prev_page_results"] is True and body["total_count"] == 301


def test_the_value_part_of_the_cursor_is_ignored(seeded: PlaneEmulator) -> None:
    api = Api(seeded)
    a = api.get(f"{api.proj}/work-items/?per_page=20&cursor=999:2:0").json()
    b = api.get(f"{api.proj}/work-items/?per_page=20&cursor=20:2:0").json()
    assert [r["id"] for r in a["results"]] == [r["id"] for r in b["results"]]
    assert a["next_cursor"] == "20:3:0"
    assert api.get(f"{api.proj}/work-items/?per_page=20&cursor=1.5:1:0").status == 200


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ("per_page=1001", 400, {"detail": "Invalid per_page value. Cannot exceed 1000."}),
        ("per_page=ten", 400, {"detail": "Invalid per_page parameter."}),
        ("per_page=0", 500, {"error": "Something went wrong please try again later"}),
        ("cursor=50:1", 400, {"detail": "Invalid cursor parameter."}),
        ("cursor=a:b:c", 400, {"detail": "Invalid cursor parameter."}),
        ("per_page=50&cursor=50:-1:1", 400, {"detail": "Error in parsing"}),
    ],
)
def test_pagination_errors(seeded: PlaneEmulator, query: str, status: int, body: dict) -> None:
    api = Api(seeded)
    reply = api.get(f"{api.proj}/work-items/?{query}")
    assert (reply.status, reply.json()) == (status, body)


def test_order_by_updated_at_and_priority(seeded: PlaneEmulator) -> None:
    api = Api(seeded)
    first = api.get(f"{api.proj}/work-items/?per_page=5").json()["results"]
    oldest = api.get(f"{api.proj}/work-items/?per_page=1&cursor=1:300:0").json()["results"][0]
    seeded.update_work_item(oldest["id"], name="touched")
    newest_update = api.get(f"{api.proj}/work-items/?order_by=-updated_at&per_page=1").json()
    assert newest_update["results"][0]["id"] == oldest["id"]
    by_priority = api.get(f"{api.proj}/work-items/?order_by=priority&per_page=1000").json()
    ranks = ["urgent", "high", "medium", "low", "none"]
    got = [ranks.index(r["priority"]) for r in by_priority["results"]]
    assert got == sorted(got)
    bogus = api.get(f"{api.proj}/work-items/?order_by=workspace__owner&per_page=5").json()
    assert [r["id"] for r in bogus["results"]] == [r["id"] for r in first]


def test_fields_and_expand(seeded: PlaneEmulator) -> None:
    api = Api(seeded)
    body = api.get(f"{api.proj}/work-items/?per_page=2&fields=id,name,state").json()
    assert list(body["results"][0]) == ["id", "name", "state"]
    expanded = api.get(f"{api.proj}/work-items/?per_page=3&expand=state,assignees").json()
    item = expanded["results"][0]
    assert set(item["state"]) == {"id", "name", "color", "group"}
    assert all(isinstance(a, dict) and "display_name" in a for a in item["assignees"])


def test_per_page_zero_on_an_empty_list_is_a_page() -> None:
    # Plane only divides by per_page when there are rows; with none, per_page=0 answers 200.
    with PlaneEmulator() as emu:
        api = Api(emu)
        body = api.get(f"{api.proj}/work-items/?per_page=0").json()
        assert (body["count"], body["total_pages"], body["next_cursor"]) == (0, 0, "0:1:0")
        assert api.get(f"{api.proj}/work-items/?per_page=-5").status == 500
