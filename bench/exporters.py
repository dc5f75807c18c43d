"""The ways to export a project's work items that the budget benchmarks compare.

Each exporter walks ``/api/v1/workspaces/{slug}/projects/{pid}/work-items/`` with cursor
pagination at a fixed per_page and returns an :class:`ExportOutcome`. A failure (an exception
that ended the export) is recorded, not raised: a baseline that gives up is a result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("bench.exporters")

MAX_RETRIES = 3  # the same retry allowance the connector has for 429s


@dataclass
class ExportOutcome:
    """What one export did, as the client saw it."""

    items: int = 0
    requests: int = 0
    rate_limited: int = 0  # 429s the client saw (the emulator's own count is authoritative)
    failures: int = 0
    seconds: float = 0.0
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _work_items_path(slug: str, project_id: str) -> str:
    return f"workspaces/{slug}/projects/{project_id}/work-items/"


def export_ours(
    base_url: str,
    api_key: str,
    slug: str,
    project_id: str,
    per_page: int,
    *,
    rate_window: float,
    requests_per_minute: int = 60,
    rate_budget: Any = None,
) -> ExportOutcome:
    """plane_connector.PlaneClient + its cursor pager."""
    from plane_connector import PlaneClient

    out = ExportOutcome()
    client = PlaneClient(
        base_url,
        api_key=api_key,
        requests_per_minute=requests_per_minute,
        rate_window=rate_window,
        rate_budget=rate_budget,
    )
    start = time.perf_counter()
    try:
        for _ in client.paginate(_work_items_path(slug, project_id), per_page=per_page):
            out.items += 1
    except Exception as exc:  # noqa: BLE001 - a failed export is a result
        out.failures += 1
        out.error = f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - start
    stats = dict(client.stats)
    out.requests = int(stats.get("requests", 0))
    out.rate_limited = int(stats.get("rate_limited", 0))
    out.extra["client_stats"] = stats
    return out


def export_requests_loop(
    base_url: str, api_key: str, slug: str, project_id: str, per_page: int
) -> ExportOutcome:
    """A hand-written requests loop: follow next_cursor; on 429 sleep Retry-After (3 tries)."""
    import requests

    out = ExportOutcome()
    url = f"{base_url.rstrip('/')}/api/v1/{_work_items_path(slug, project_id)}"
    session = requests.Session()
    session.headers["X-API-Key"] = api_key
    cursor: str | None = None
    start = time.perf_counter()
    try:
        while True:
            params: dict[str, Any] = {"per_page": per_page}
            if cursor:
                params["cursor"] = cursor
            for attempt in range(MAX_RETRIES + 1):
                out.requests += 1
                resp = session.get(url, params=params, timeout=30)
                if resp.status_code != 429:
                    break
                out.rate_limited += 1
                if attempt == MAX_RETRIES:
                    break
                time.sleep(float(resp.headers.get("Retry-After", "1")))
            resp.raise_for_status()
            page = resp.json()
            out.items += len(page["results"])
            if not page["next_page_results"]:
                break
            cursor = page["next_cursor"]
    except Exception as exc:  # noqa: BLE001 - a failed export is a result
        out.failures += 1
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        session.close()
    out.seconds = time.perf_counter() - start
    return out


def export_plane_sdk(
    base_url: str,
    api_key: str,
    slug: str,
    project_id: str,
    per_page: int,
    *,
    with_retry: bool,
) -> ExportOutcome:
    """The official plane-sdk's work_items.list, following its next_cursor.

    ``with_retry=False`` is ``PlaneClient`` as shipped (no retries: a 429 raises).
    ``with_retry=True`` builds the resource with the SDK's own ``RetryConfig()`` (urllib3 Retry,
    3 tries, 429 in its status list, honouring Retry-After).
    """
    from plane.api.work_items import WorkItems
    from plane.client import PlaneClient
    from plane.config import Configuration, RetryConfig
    from plane.models.query_params import WorkItemQueryParams

    out = ExportOutcome()
    if with_retry:
        config = Configuration(base_path=base_url, api_key=api_key, retry=RetryConfig())
        work_items = WorkItems(config)
    else:
        work_items = PlaneClient(base_url=base_url, api_key=api_key).work_items
    _count_requests(work_items.session, out)
    cursor: str | None = None
    start = time.perf_counter()
    try:
        while True:
            params = WorkItemQueryParams.model_validate({"per_page": per_page, "cursor": cursor})
            page = work_items.list(slug, project_id, params=params)
            out.items += len(page.results)
            if not page.next_page_results:
                break
            cursor = page.next_cursor
    except Exception as exc:  # noqa: BLE001 - a failed export is a result
        out.failures += 1
        out.error = f"{type(exc).__name__}: {exc}"[:300]
    out.seconds = time.perf_counter() - start
    return out


def _count_requests(session: Any, out: ExportOutcome) -> None:
    """Count final responses (urllib3's retries happen below requests' hooks)."""

    def hook(resp: Any, *args: Any, **kwargs: Any) -> Any:
        out.requests += 1
        if resp.status_code == 429:
            out.rate_limited += 1
        return resp

    session.hooks["response"].append(hook)


Exporter = Callable[..., ExportOutcome]
