"""Contract: the emulator's error and lookup answers equal Plane's recorded ones (errors/*.txt)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from plane_connector.testing import PlaneEmulator

from .conftest import Api, Reply, parse_http_sample, same_shape

FORMATS = {
    "Content-Length": r"\d+",
    "X-RateLimit-Remaining": r"\d+",
    "X-RateLimit-Reset": r"\d{10}",
    "Retry-After": r"\d+",
}


def assert_matches_sample(ours: Reply, sample: Reply, *, exact_body: bool = True) -> None:
    assert ours.status == sample.status
    assert ours.names == sample.names, "header names and their order"
    for name, recorded in sample.headers:
        if name.lower() in ("date", "server"):
            continue
        value = ours.header(name)
        assert value is not None
        if name in FORMATS:
            assert re.fullmatch(FORMATS[name], value), (name, value)
        else:
            assert value == recorded, name
    if exact_body:
        assert ours.body == sample.body
    else:
        assert same_shape(sample.json(), ours.json()) == []


def sample(samples_dir: Path, name: str) -> Reply:
    return parse_http_sample(samples_dir / "errors" / name)


def test_no_key_is_401(api: Api, samples_dir: Path) -> None:
    assert_matches_sample(api.get("/api/v1/users/me/", key=None), sample(samples_dir, "no_key.txt"))


def test_bearer_on_ce_is_401_like_no_key(api: Api, samples_dir: Path) -> None:
    ours = api.get("/api/v1/users/me/", key=None, headers={"Authorization": "Bearer pln_x"})
    assert_matches_sample(ours, sample(samples_dir, "bearer.txt"))


def test_invalid_key_is_403(api: Api, samples_dir: Path) -> None:
    ours = api.get("/api/v1/users/me/", key="plane_api_" + "0" * 32)
    assert_matches_sample(ours, sample(samples_dir, "bad_key.txt"))


def test_wrong_slug_is_403(api: Api, samples_dir: Path, emu: PlaneEmulator) -> None:
    ours = api.get(f"/api/v1/workspaces/nope/projects/{emu.project_id}/work-items/")
    assert_matches_sample(ours, sample(samples_dir, "wrong_slug.txt"))


def test_unknown_project_is_403(api: Api, samples_dir: Path) -> None:
    ours = api.get(f"{api.ws}/projects/00000000-0000-4000-8000-000000000000/work-items/")
    assert_matches_sample(ours, sample(samples_dir, "missing_project.txt"))


def test_unknown_item_is_404(api: Api, samples_dir: Path) -> None:
    ours = api.get(f"{api.proj}/work-items/00000000-0000-4000-8000-000000000000/")
    assert_matches_sample(ours, sample(samples_dir, "missing_item.txt"))


def test_validation_400(api: Api, samples_dir: Path) -> None:
    ours = api.post(f"{api.proj}/work-items/", {"priority": "bogus"})
    assert_matches_sample(ours, sample(samples_dir, "validation.txt"))


def test_bad_json_400(api: Api, samples_dir: Path) -> None:
    ours = api.call(
        "POST",
        f"{api.proj}/work-items/",
        raw=b"{bad json",
        headers={"Content-Type": "application/json"},
    )
    assert_matches_sample(ours, sample(samples_dir, "bad_json.txt"))


def test_method_not_allowed_405(api: Api, samples_dir: Path) -> None:
    ours = api.call("PUT", "/api/v1/users/me/", {})
    assert_matches_sample(ours, sample(samples_dir, "method_not_allowed.txt"))


def test_duplicate_external_id_409(api: Api, samples_dir: Path) -> None:
    body = {"name": "Invoice", "external_id": "account.move,1", "external_source": "odoo"}
    first = api.post(f"{api.proj}/work-items/", body)
    assert first.status == 201
    ours = api.post(f"{api.proj}/work-items/", body)
    recorded = sample(samples_dir, "create_duplicate_external_id_409.txt")
    assert_matches_sample(ours, recorded, exact_body=False)
    assert ours.json() == {"error": recorded.json()["error"], "id": first.json()["id"]}


def test_lookup_by_external_id_returns_the_object(api: Api, samples_dir: Path) -> None:
    created = api.post(
        f"{api.proj}/work-items/",
        {
            "name": "Invoice INV/2026/0001 sync (paid)",
            "description_html": "<p>Created from Odoo</p>",
            "priority": "urgent",
            "external_id": "account.move,1",
            "external_source": "odoo",
        },
    ).json()
    ours = api.get(f"{api.proj}/work-items/?external_id=account.move,1&external_source=odoo")
    assert_matches_sample(ours, sample(samples_dir, "by_external.txt"), exact_body=False)
    assert ours.json()["id"] == created["id"]
    missing = api.get(f"{api.proj}/work-items/?external_id=nope&external_source=odoo")
    assert missing.status == 404
    assert missing.json() == {"error": "The requested resource does not exist."}


def test_lookup_by_identifier(api: Api, samples_dir: Path, emu: PlaneEmulator) -> None:
    emu.seed_work_items(3)
    ours = api.get(f"{api.ws}/work-items/ERP-2/")
    assert_matches_sample(ours, sample(samples_dir, "by_identifier.txt"), exact_body=False)
    assert ours.json()["sequence_id"] == 2
    assert api.get(f"{api.ws}/work-items/ERP-99/").status == 404
    assert api.get(f"{api.ws}/issues/ERP-2/").json()["sequence_id"] == 2


def test_members_not_paginated(api: Api, samples_dir: Path) -> None:
    ours = api.get(f"{api.ws}/members/")
    assert_matches_sample(ours, sample(samples_dir, "members.txt"), exact_body=False)
    assert isinstance(ours.json(), list)


def test_states_paginated_with_default_per_page(api: Api, samples_dir: Path) -> None:
    ours = api.get(f"{api.proj}/states/")
    recorded = sample(samples_dir, "states.txt")
    assert_matches_sample(ours, recorded, exact_body=False)
    strip = ("id", "created_at", "updated_at", "created_by", "project", "workspace")

    def meta(body: dict) -> dict:
        return {
            **body,
            "results": [{k: v for k, v in r.items() if k not in strip} for r in body["results"]],
        }

    assert meta(ours.json()) == meta(recorded.json())


def test_auth_failures_use_no_quota(api: Api, emu: PlaneEmulator) -> None:
    api.get("/api/v1/users/me/", key=None)
    api.get(f"{api.ws}/projects/00000000-0000-4000-8000-000000000000/states/")
    assert api.get("/api/v1/users/me/").header("X-RateLimit-Remaining") == "59"


def test_revoked_key_is_403(api: Api, emu: PlaneEmulator) -> None:
    other = emu.add_api_key()
    assert api.get("/api/v1/users/me/", key=other).status == 200
    emu.revoke_api_key(other)
    assert api.get("/api/v1/users/me/", key=other).json() == {
        "detail": "Given API token is not valid"
    }


def test_unknown_route_and_missing_slash(api: Api) -> None:
    missing = api.get("/api/v1/nothing-here/")
    assert (missing.status, missing.json()) == (404, {"error": "Page not found."})
    redirect = api.get("/api/v1/users/me?x=1")
    assert redirect.status == 301
    assert redirect.header("Location") == "/api/v1/users/me/?x=1"


@pytest.mark.parametrize("edition", ["ce", "cloud"])
def test_requests_log_names_the_key_by_hash_only(edition: str) -> None:
    import hashlib

    with PlaneEmulator(edition) as emu:
        Api(emu).get("/api/v1/users/me/")
        (req,) = emu.requests
        assert req.status == 200 and req.auth == "api_key"
        assert req.key_id == hashlib.sha256(emu.api_key.encode()).hexdigest()
        assert emu.api_key not in repr(emu.requests) and emu.api_key not in repr(emu)
