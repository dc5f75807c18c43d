"""The errors a Plane call raises, for domain modules: they import these, never the wheel.

``from odoo.addons.ipai_plane_connector.exceptions import NotFoundError, PlaneError``

They are the ``plane_connector`` wheel's own classes (re-exported, so ``except`` matches what
the client raises); the wheel is imported here once, not in every module that catches.

* ``PlaneError``: every error of a Plane call.
* ``HTTPError``: Plane answered with an error status (``.status``); its subclasses
  ``AuthError`` (401/403), ``NotFoundError`` (404), ``ConflictError`` (409: e.g. a name or an
  ``external_id`` taken), ``RateLimitError`` (429; ``.retry_after`` seconds or None), and
  ``MissingRouteError`` (404 for a route the Plane server lacks, its version changed: not a
  ``NotFoundError``, which means "deleted in Plane"; retry later).
* ``TransportError``: no answer (refused, reset, TLS); ``TimeoutError`` is one.
* ``ConfigError``: the connector's settings cannot make a client.
* ``PaginationError``: a list endpoint broke its cursor contract.
"""

try:
    # Re-exported (F401): domain modules import them from here. Three short lines, not the
    # wheel's own one-name-a-line list again.
    # isort: off
    from plane_connector import AuthError, ConfigError, ConflictError, HTTPError  # noqa: F401
    from plane_connector import NotFoundError, PaginationError, PlaneError  # noqa: F401
    from plane_connector import RateLimitError, TimeoutError, TransportError  # noqa: F401
    from plane_connector.server import MissingRouteError  # noqa: F401
    # isort: on
except ImportError:  # pragma: no cover - external_dependencies stops the install first
    # Stand-ins of the same shape, so modules still import (and the addon list loads) on a
    # server without the wheel; no client exists there to raise them.
    class PlaneError(Exception):
        pass

    class ConfigError(PlaneError, ValueError):
        pass

    class TransportError(PlaneError):
        pass

    class TimeoutError(TransportError):  # noqa: A001 - mirrors the wheel's name
        pass

    class PaginationError(PlaneError):
        pass

    class HTTPError(PlaneError):
        status = None

    class AuthError(HTTPError):
        pass

    class NotFoundError(HTTPError):
        pass

    class ConflictError(HTTPError):
        pass

    class RateLimitError(HTTPError):
        retry_after = None

    class MissingRouteError(HTTPError):
        pass
