"""``plane_connector.server``: detection of the Plane version and route family against the
emulator playing 1.0.0 (only ``/issues/``) and the newest release, its per-process cache, the
re-detection of a server changed in place, the typed work-item API, and ``plane-connector
health``'s report of it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from plane_connector import NotFoundError, PlaneClient, health, server
from plane_connector.testing import PlaneEmulator

OLD, NEW = "1.0.0", "1.3.1"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    server.forget()
    yield
    server.forget()


@pytest.fixture
def emu(plane_emulator_factory: Callable[..., PlaneEmulator]) -> Callable[..., PlaneEmulator]:
    return plane_emulator_factory


def client(e: PlaneEmulator) -> PlaneClient:
    return PlaneClient(e.base_url, api_key=e.api_key, max_retries=0, max_wait=0.0)


def hits(e: PlaneEmulator, fragment: str) -> int:
    return sum(1 for r in e.requests if fragment in r.path)


def test_segments_per_family() -> None:
    assert server.segments("issues", "work_items", "P") == ["projects", "P", "issues"]
    assert server.segments("work-items", "work_items", "P", "I") == [
        "projects", "P", "work-items", "I"]  # fmt: skip
    assert server.segments("issues", "comments", "P", "I", "C")[2:] == [
        "issues", "I", "comments", "C"]  # fmt: skip
    assert server.segments("issues", "attachments", "P", "I")[-1] == "issue-attachments"
    assert server.segments("work-items", "attachments", "P", "I")[-1] == "attachments"
    assert server.segments("issues", "work_item_by_key", "ERP-3") == ["issues", "ERP-3"]
    assert server.Routes("issues").work_item("ws", "P", "I") == "workspaces/ws/projects/P/issues/I/"
    with pytest.raises(ValueError, match="takes 2 or 3 ids"):
        server.segments("issues", "comments", "P")
    with pytest.raises(ValueError, match="unknown Plane resource"):
        server.segments("issues", "work-items", "P")


@pytest.mark.parametrize(("version", "family"), [(OLD, "issues"), (NEW, "work-items")])
def test_detects_version_and_family(emu: Any, version: str, family: str) -> None:
    e = emu(version=version)
    profile = server.detect(client(e))
    assert (profile.version, profile.edition, profile.family, profile.source) == (
        version, "PLANE_COMMUNITY", family, "instances")  # fmt: skip
    assert profile.label() == f"Plane CE {version} — work items via /{family}/"
    # /api/instances/ was asked without the key: Plane answers it to anyone.
    (ask,) = [r for r in e.requests if r.path == "/api/instances/"]
    assert ask.auth is None


def test_detection_is_cached_per_base_url(emu: Any) -> None:
    old, new = emu(version=OLD), emu(version=NEW)
    assert server.detect(client(old)).family == "issues"
    assert server.detect(client(new)).family == "work-items"
    for _ in range(3):
        assert server.detect(client(old)).family == "issues"
        assert server.detect(PlaneClient(old.base_url + "/api/v1/", api_key=old.api_key)).version
    assert hits(old, "/api/instances/") == 1
    assert server.cached(old.base_url + "/") is not None


@pytest.mark.parametrize(("version", "family"), [(OLD, "issues"), (NEW, "work-items")])
def test_probe_when_instances_is_forbidden(emu: Any, version: str, family: str) -> None:
    e = emu(version=version)
    e.faults.add(route_regex=r"^/api/instances/", status=403, count=100)
    profile = server.detect(client(e))
    assert (profile.family, profile.source, profile.version) == (family, "probe", None)
    assert "version unknown" in profile.label()
    # The probe goes to a workspace nobody owns and uses no rate budget.
    assert e.throttle.check(e.api_key, e.rate_limit).remaining == e.rate_limit - 1


def test_cloud_edition_answers_no_instances_and_is_probed(emu: Any) -> None:
    e = emu(edition="cloud")
    profile = server.detect(client(e))
    assert (profile.family, profile.source) == ("work-items", "probe")


def test_unreachable_server_is_asked_again(emu: Any) -> None:
    e = emu(version=OLD)
    e.faults.add(status=503, count=2)  # both the instances call and the probe
    first = server.detect(client(e))
    assert (first.family, first.source) == ("work-items", "assumed")
    assert server.cached(e.base_url) is not None  # kept for RETRY_AFTER, not forever
    assert server.detect(client(e), refresh=True).family == "issues"


def test_typed_api_addresses_the_old_family(emu: Any) -> None:
    e = emu(version=OLD)
    e.seed_work_items(3)
    ws = server.Workspace(client(e), e.workspace_slug)
    items = list(ws.work_items(e.project_id).list(per_page=2))
    assert len(items) == 3
    made = ws.work_items(e.project_id).create({"name": "from the typed API"})
    ws.work_items(e.project_id).update(made["id"], {"priority": "high"})
    assert ws.work_items(e.project_id).get(made["id"])["priority"] == "high"
    ws.comments(e.project_id, made["id"]).create({"comment_html": "<p>hi</p>"})
    assert len(list(ws.comments(e.project_id, made["id"]).list())) == 1
    assert hits(e, "/work-items/") == 0 and hits(e, "/issues/") >= 6


def test_server_changed_in_place_is_redetected_on_a_missing_route(emu: Any) -> None:
    e = emu(version=NEW)
    item = e.seed_work_items(1)[0]
    ws = server.Workspace(client(e), e.workspace_slug)
    assert ws.profile.family == "work-items"
    e.version = OLD  # the same URL now answers like 1.0.0 (restored from an old backup)
    assert ws.work_items(e.project_id).get(item)["id"] == item
    assert server.cached(e.base_url).family == "issues"  # type: ignore[union-attr]
    assert hits(e, "/api/instances/") == 2


def test_a_missing_object_is_no_missing_route(emu: Any) -> None:
    e = emu(version=NEW)
    ws = server.Workspace(client(e), e.workspace_slug)
    with pytest.raises(NotFoundError) as caught:
        ws.work_items(e.project_id).get("00000000-0000-4000-8000-000000000000")
    assert not server.is_missing_route(caught.value)
    assert hits(e, "/api/instances/") == 1  # no re-detection for a deleted record


def test_health_check_notices_an_upgrade(emu: Any) -> None:
    e = emu(version=OLD)
    c = client(e)
    assert server.detect(c).family == "issues"
    e.version = NEW
    result = health.check(c)
    assert result.ok and result.server == f"Plane CE {NEW} — work items via /work-items/"
    assert server.detect(c).version == NEW
    assert result.remaining == e.rate_limit - 1  # detection used no rate budget


def test_cli_health_prints_the_server(emu: Any) -> None:
    e = emu(version=OLD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANE_")}
    env["PLANE_TEST_KEY"] = e.api_key
    out = subprocess.run(
        [str(Path(sys.executable).with_name("plane-connector")), "health", "--base-url",
         e.base_url, "--api-key-ref", "env:PLANE_TEST_KEY"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "server: Plane CE 1.0.0 — work items via /issues/" in out.stdout
    assert e.api_key not in out.stdout + out.stderr


def test_emulator_1_0_0_has_no_work_items_routes(emu: Any) -> None:
    e = emu(version=OLD)
    c = client(e)
    base = f"workspaces/{e.workspace_slug}/projects/{e.project_id}"
    assert c.get(f"{base}/issues/")["results"] == []
    with pytest.raises(NotFoundError) as caught:
        c.get(f"{base}/work-items/")
    assert server.is_missing_route(caught.value)
    assert c.get(f"workspaces/{e.workspace_slug}/issues/search/", params={"search": "x"}) == {
        "issues": []}  # fmt: skip
    with pytest.raises(ValueError, match="X.Y.Z"):
        PlaneEmulator(version="old")


def test_emulate_cli_plays_a_version() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "plane_connector", "emulate", "--port", "0", "--plane-version",
         OLD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        import json

        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["plane_version"] == OLD
        profile = server.detect(PlaneClient(info["base_url"], api_key=info["api_key"]))
        assert (profile.version, profile.family) == (OLD, "issues")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_export_cli_walks_the_old_family(emu: Any, tmp_path: Path) -> None:
    e = emu(version=OLD)
    e.seed_work_items(5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANE_")}
    env["PLANE_TEST_KEY"] = e.api_key
    out = tmp_path / "items.jsonl"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("plane-connector")), "export", "--base-url",
         e.base_url, "--api-key-ref", "env:PLANE_TEST_KEY", "--workspace", e.workspace_slug,
         "--project", e.project_id, "--per-page", "2", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 5
    assert hits(e, "/work-items/") == 0


def test_a_route_still_missing_after_redetection_is_no_not_found(emu: Any) -> None:
    e = emu(version=NEW)
    item = e.seed_work_items(1)[0]
    ws = server.Workspace(client(e), e.workspace_slug)
    e.faults.add(route_regex=r"/work-items/", status=404, body={"error": "Page not found."},
                 count=1)  # fmt: skip
    with pytest.raises(server.MissingRouteError) as caught:
        ws.work_items(e.project_id).get(item)
    # Code that reads a 404 as "deleted in Plane" must not see one.
    assert not isinstance(caught.value, NotFoundError)
    assert server.is_missing_route(caught.value)
    assert ws.work_items(e.project_id).get(item)["id"] == item
