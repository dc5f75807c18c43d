"""``plane-connector export`` against the loopback server: streams, fails cleanly, resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from core_loopback import API_KEY, LoopbackServer, Reply, Seen, plane_pages
from plane_connector.cli import main

ITEMS = [{"id": f"wi-{i:04d}", "name": f"item {i}"} for i in range(530)]


def argv(server: LoopbackServer, out: Path, *extra: str) -> list[str]:
    return [
        "export", "--base-url", server.url, "--api-key-ref", "env:PLANE_EXPORT_TEST_KEY",
        "--workspace", "ws", "--project", "p1", "--per-page", "50", "--out", str(out), *extra,
    ]  # fmt: skip


def read_ids(out: Path) -> list[str]:
    return [json.loads(line)["id"] for line in out.read_text().splitlines() if line]


def test_export_crash_and_resume(
    server: LoopbackServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PLANE_EXPORT_TEST_KEY", API_KEY + "export")
    pages = plane_pages(ITEMS)
    broken = {"on": True}

    def handle(seen: Seen) -> Reply:
        assert seen.path == "/api/v1/workspaces/ws/projects/p1/work-items/"
        if broken["on"] and seen.query.get("cursor") == "50:6:0":
            return Reply(500, {"error": "Something went wrong please try again later"})
        return pages(seen)

    server.handler = handle
    out = tmp_path / "items.jsonl"
    assert main(argv(server, out)) == 1
    err = capsys.readouterr().err
    assert "--resume-from 50:6:0" in err
    assert API_KEY not in err
    assert read_ids(out) == [i["id"] for i in ITEMS[:300]]

    # Simulate a crash mid-line too: the resumed run must not glue two items together.
    with out.open("a") as fh:
        fh.write('{"id": "wi-03')
    broken["on"] = False
    assert main(argv(server, out, "--resume-from", "50:6:0")) == 0
    err = capsys.readouterr().err
    assert "export complete: 230 work items written of 530" in err
    assert read_ids_lenient(out) == [i["id"] for i in ITEMS]


def read_ids_lenient(out: Path) -> list[str]:
    ids = []
    for line in out.read_text().splitlines():
        try:
            ids.append(json.loads(line)["id"])
        except ValueError:
            continue
    return ids


def test_export_to_stdout(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLANE_EXPORT_TEST_KEY", API_KEY + "stdout")
    server.handler = plane_pages(ITEMS[:120])
    args = argv(server, Path("unused"))
    args = args[: args.index("--out")]
    assert main([*args, "--param", "order_by=-updated_at"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == [
        i["id"] for i in ITEMS[:120]
    ]
    assert "resume with --resume-from 50:1:0" in captured.err
    walked = [r for r in server.requests if r.path.endswith("/work-items/")]
    assert {r.query["order_by"] for r in walked} == {"-updated_at"}


def test_export_config_errors(
    server: LoopbackServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "x.jsonl"
    monkeypatch.delenv("PLANE_EXPORT_TEST_KEY", raising=False)
    assert main(argv(server, out)) == 2
    assert "PLANE_EXPORT_TEST_KEY is not set" in capsys.readouterr().err
    monkeypatch.setenv("PLANE_EXPORT_TEST_KEY", API_KEY + "config")
    assert main([*argv(server, out), "--per-page", "0"]) == 2
    assert "per_page" in capsys.readouterr().err
    assert server.requests == []
