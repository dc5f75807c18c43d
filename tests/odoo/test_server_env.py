"""tests/odoo/odoo_server.server_env: a test server gets none of this process's PLANE_*
variables (a lab's live.env would pin it to the real Plane through the operator's settings),
only those its test gives it, and the rest of the environment."""

from __future__ import annotations

import pytest
from odoo_server import server_env


def test_a_test_server_gets_only_the_plane_variables_its_test_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What docs/live-plane.md's live.env exports for `plane-connector health`.
    monkeypatch.setenv("PLANE_BASE_URL", "http://127.0.0.1:8102")
    monkeypatch.setenv("PLANE_API_KEY_REF", "env:PLANE_LIVE_API_KEY")
    monkeypatch.setenv("PLANE_LIVE_API_KEY", "not-a-real-key")
    monkeypatch.setenv("PATH_LIKE_SETTING", "kept")
    env = server_env({"PLANE_LIVE_KEY": "the-emulators-key"})
    assert env["PLANE_LIVE_KEY"] == "the-emulators-key"
    assert not {"PLANE_BASE_URL", "PLANE_API_KEY_REF", "PLANE_LIVE_API_KEY"} & set(env)
    assert env["PATH_LIKE_SETTING"] == "kept"
