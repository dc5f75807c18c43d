"""build_url: one slash between parts, /api/v1 never doubled, bad base URLs are ConfigError."""

from __future__ import annotations

import plane_connector
import pytest
from plane_connector import ConfigError, PlaneClient, build_url

WANT = "https://api.plane.so/api/v1/users/me/"


@pytest.mark.parametrize(
    "base",
    [
        "https://api.plane.so",
        "https://api.plane.so/",
        "https://api.plane.so///",
        "https://api.plane.so/api",
        "https://api.plane.so/api/",
        "https://api.plane.so/api/v1",
        "https://api.plane.so/api/v1/",
        " https://api.plane.so/ ",
    ],
)
@pytest.mark.parametrize("path", ["users/me", "/users/me", "users/me/", "//users/me//"])
def test_base_and_path_shapes(base: str, path: str) -> None:
    assert build_url(base, path) == WANT


@pytest.mark.parametrize(
    ("base", "path", "want"),
    [
        ("https://host/plane/", "users/me", "https://host/plane/api/v1/users/me/"),
        ("https://host/plane/api/v1", "/users/me", "https://host/plane/api/v1/users/me/"),
        ("http://127.0.0.1:8000", "users/me", "http://127.0.0.1:8000/api/v1/users/me/"),
        (
            "https://api.plane.so",
            "workspaces/ws/projects/p/work-items?per_page=50&cursor=50:1:0",
            "https://api.plane.so/api/v1/workspaces/ws/projects/p/work-items/"
            "?per_page=50&cursor=50:1:0",
        ),
        ("https://api.plane.so", "", "https://api.plane.so/api/v1/"),
    ],
)
def test_sub_paths_ports_and_queries(base: str, path: str, want: str) -> None:
    assert build_url(base, path) == want


@pytest.mark.parametrize(
    "bad",
    ["", "api.plane.so", "/api/v1", "ftp://api.plane.so", "https://", "file:///etc/passwd"],
)
def test_bad_base_urls_raise_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        build_url(bad, "users/me")
    with pytest.raises(ConfigError):
        PlaneClient(bad, api_key="k")


def test_config_error_is_a_plane_error_and_hides_url_credentials() -> None:
    with pytest.raises(plane_connector.PlaneError) as info:
        build_url("https://bob:hunter2hunter2@host/", "users/me")
    assert "hunter2" not in str(info.value)
