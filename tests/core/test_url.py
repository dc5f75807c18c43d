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


# Paths whose segments would move a request to another route once a URL parser resolves them
# (`..`, also percent-encoded) or a server decodes them (encoded slashes and backslashes).
ESCAPES = [
    ("workspaces/ws/projects/../../other/", ".."),
    ("workspaces/ws/projects/%2e%2e/%2e%2e/other/", "%2e%2e"),
    ("workspaces/ws/.%2E/other/", ".%2E"),
    ("workspaces/ws/%2E./other/", "%2E."),
    ("workspaces/./ws/", "."),
    ("workspaces/ws%2f..%2fother/", "ws%2f..%2fother"),
    ("workspaces/ws%2F/other/", "ws%2F"),
    ("workspaces/ws%5c..%5cother/", "ws%5c..%5cother"),
    ("workspaces/ws\\..\\other/", "ws\\..\\other"),
    ("../auth/o/token/?client_secret=hush", ".."),
]


@pytest.mark.parametrize(("path", "segment"), ESCAPES)
def test_route_changing_segments_are_config_errors(path: str, segment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_url("https://api.plane.so", path)
    message = str(info.value)
    # Named as written (the message quotes it, so a backslash shows doubled).
    assert segment.replace("\\", "\\\\") in message
    assert "hush" not in message  # the query is not echoed


@pytest.mark.parametrize(("path", "segment"), ESCAPES)
def test_route_changing_segments_never_reach_the_server(server, path: str, segment: str) -> None:
    client = PlaneClient(server.url, api_key="plane_api_" + "7" * 32)
    with pytest.raises(ConfigError):
        client.get(path)
    with pytest.raises(ConfigError):
        client.oauth_request("GET", path)
    assert [s.path for s in server.requests] == []


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("workspaces/my team/projects/é/", "workspaces/my%20team/projects/%C3%A9/"),
        ("workspaces/my%20team/", "workspaces/my%20team/"),  # already encoded: not %2520
        ("issues/INV#42/", "issues/INV%2342/"),
        ("a/100%/", "a/100%25/"),
        ("ws/p?q=a%20b&expand=labels,state", "ws/p/?q=a%20b&expand=labels,state"),
    ],
)
def test_segments_are_encoded_exactly_once(path: str, want: str) -> None:
    assert build_url("https://api.plane.so", path) == f"https://api.plane.so/api/v1/{want}"


def test_encoded_segments_reach_the_server_as_sent(server) -> None:
    client = PlaneClient(server.url, api_key="plane_api_" + "6" * 32)
    client.get("workspaces/my team/projects/a%2Bb/")
    assert server.requests[-1].path == "/api/v1/workspaces/my%20team/projects/a+b/"


def test_a_query_cannot_carry_a_fragment() -> None:
    with pytest.raises(ConfigError, match="#"):
        build_url("https://api.plane.so", "users/me?x=1#fragment")
