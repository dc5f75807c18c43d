"""Plane's behaviour behind the emulator's HTTP layer: auth, throttle, views, paginator, OAuth.

``PlaneApi`` is the request-handling half of :class:`~plane_connector.testing.PlaneEmulator`;
the emulator adds the lifecycle and the test-facing helpers. By job: :mod:`.handler` (routing,
authentication, faults), one module of views per resource (:mod:`.projects`,
:mod:`.states_labels`, :mod:`.work_items`, :mod:`.comments`, :mod:`.cycles_modules`),
:mod:`.oauth`, the webhooks a change sends (:mod:`.events`), the views' building blocks
(:mod:`.kit`) and what they all share (:mod:`.base`); imports run down that list, never back.
"""

from plane_connector.testing._api.base import (
    EDITIONS,
    EMULATOR_INSTANCE_ID,
    INVALID_KEY,
    MAX_PER_PAGE,
    NEWEST_VERSION,
    NO_PERMISSION,
    NOT_AUTHENTICATED,
    NOT_FOUND,
    PAGE_NOT_FOUND,
    PAYLOAD_INVALID,
    PLANE_VERSIONS,
    RATE_LIMITED,
    SERVER_ERROR,
    SERVICE_RATE_LIMIT,
    WORK_ITEMS_SINCE,
    RecordedRequest,
    _Ctx,
    _Reply,
    version_tuple,
)
from plane_connector.testing._api.handler import ROUTES, PlaneApi
from plane_connector.testing._api.kit import SIMPLE_DETAILS
from plane_connector.testing._api.projects import FORBIDDEN_PROJECT_CHARS, PROJECT_NAME_TAKEN
from plane_connector.testing._api.work_items import ORDER_BY_ALLOWED

__all__ = [
    "EDITIONS",
    "EMULATOR_INSTANCE_ID",
    "FORBIDDEN_PROJECT_CHARS",
    "INVALID_KEY",
    "MAX_PER_PAGE",
    "NEWEST_VERSION",
    "NOT_AUTHENTICATED",
    "NOT_FOUND",
    "NO_PERMISSION",
    "ORDER_BY_ALLOWED",
    "PAGE_NOT_FOUND",
    "PAYLOAD_INVALID",
    "PLANE_VERSIONS",
    "PROJECT_NAME_TAKEN",
    "RATE_LIMITED",
    "ROUTES",
    "SERVER_ERROR",
    "SERVICE_RATE_LIMIT",
    "SIMPLE_DETAILS",
    "WORK_ITEMS_SINCE",
    "PlaneApi",
    "RecordedRequest",
    "_Ctx",
    "_Reply",
    "version_tuple",
]
