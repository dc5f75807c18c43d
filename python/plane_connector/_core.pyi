"""Type stubs of the Rust extension (checked by ``mypy.stubtest``)."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from os import PathLike
from typing import Any, Protocol, final

__version__: str
__all__ = [
    "AsyncPlaneClient",
    "CursorPager",
    "PlaneClient",
    "RateLimitInfo",
    "build_url",
    "sign_body",
    "verify_signature",
    "__version__",
]

_Params = Mapping[str, str | int | float | bool | Sequence[str | int | float | bool] | None]

class _RateBudget(Protocol):
    def reserve(self, key_id: str, limit: int, window: float, /) -> float: ...

_TokenProvider = Callable[[bool], str]

def build_url(base_url: str, path: str) -> str: ...
def verify_signature(secret: str | bytes, body: bytes, signature: str | None) -> bool: ...
def sign_body(secret: str | bytes, body: bytes) -> str: ...
@final
class RateLimitInfo:
    @property
    def remaining(self) -> int | None: ...
    @property
    def reset_at(self) -> float | None: ...
    @property
    def limit(self) -> int: ...

@final
class CursorPager:
    def __iter__(self) -> CursorPager: ...
    def __next__(self) -> Any: ...
    def __aiter__(self) -> CursorPager: ...
    def __anext__(self) -> Awaitable[Any]: ...
    @property
    def cursor(self) -> str | None: ...
    @property
    def next_cursor(self) -> str | None: ...
    @property
    def per_page(self) -> int: ...
    @property
    def pages(self) -> int: ...
    @property
    def total(self) -> int | None: ...

@final
class PlaneClient:
    def __new__(
        cls,
        base_url: str = "https://api.plane.so",
        *,
        api_key: str | None = None,
        access_token: str | None = None,
        timeout: float = 30.0,
        requests_per_minute: int = 60,
        max_retries: int = 3,
        rate_window: float = 60.0,
        max_wait: float = 120.0,
        rate_budget: _RateBudget | None = None,
        token_provider: _TokenProvider | None = None,
        backoff_base: float = 0.5,
        ca_bundle: str | PathLike[str] | None = None,
    ) -> PlaneClient: ...
    @property
    def base_url(self) -> str: ...
    @property
    def rate_limit(self) -> RateLimitInfo: ...
    @property
    def stats(self) -> dict[str, Any]: ...
    @property
    def key_id(self) -> str: ...
    def request(
        self, method: str, path: str, *, params: _Params | None = None, json: Any = None
    ) -> Any: ...
    def get(self, path: str, *, params: _Params | None = None) -> Any: ...
    def post(self, path: str, *, json: Any = None, params: _Params | None = None) -> Any: ...
    def patch(self, path: str, *, json: Any = None, params: _Params | None = None) -> Any: ...
    def delete(self, path: str, *, params: _Params | None = None) -> Any: ...
    def me(self) -> dict[str, Any]: ...
    def paginate(
        self,
        path: str,
        *,
        params: _Params | None = None,
        per_page: int = 100,
        cursor: str | None = None,
    ) -> CursorPager: ...
    def create_idempotent(self, path: str, json: Mapping[str, Any]) -> dict[str, Any]: ...
    def oauth_request(
        self,
        method: str,
        path: str,
        *,
        form: _Params | None = None,
        json: Any = None,
        basic_auth: tuple[str, str] | None = None,
        bearer: str | None = None,
        params: _Params | None = None,
    ) -> Any: ...

@final
class AsyncPlaneClient:
    def __new__(
        cls,
        base_url: str = "https://api.plane.so",
        *,
        api_key: str | None = None,
        access_token: str | None = None,
        timeout: float = 30.0,
        requests_per_minute: int = 60,
        max_retries: int = 3,
        rate_window: float = 60.0,
        max_wait: float = 120.0,
        rate_budget: _RateBudget | None = None,
        token_provider: _TokenProvider | None = None,
        backoff_base: float = 0.5,
        ca_bundle: str | PathLike[str] | None = None,
    ) -> AsyncPlaneClient: ...
    @property
    def base_url(self) -> str: ...
    @property
    def rate_limit(self) -> RateLimitInfo: ...
    @property
    def stats(self) -> dict[str, Any]: ...
    @property
    def key_id(self) -> str: ...
    def request(
        self, method: str, path: str, *, params: _Params | None = None, json: Any = None
    ) -> Awaitable[Any]: ...
    def get(self, path: str, *, params: _Params | None = None) -> Awaitable[Any]: ...
    def post(
        self, path: str, *, json: Any = None, params: _Params | None = None
    ) -> Awaitable[Any]: ...
    def patch(
        self, path: str, *, json: Any = None, params: _Params | None = None
    ) -> Awaitable[Any]: ...
    def delete(self, path: str, *, params: _Params | None = None) -> Awaitable[Any]: ...
    def me(self) -> Awaitable[dict[str, Any]]: ...
    def paginate(
        self,
        path: str,
        *,
        params: _Params | None = None,
        per_page: int = 100,
        cursor: str | None = None,
    ) -> CursorPager: ...
    def create_idempotent(
        self, path: str, json: Mapping[str, Any]
    ) -> Awaitable[dict[str, Any]]: ...
    def oauth_request(
        self,
        method: str,
        path: str,
        *,
        form: _Params | None = None,
        json: Any = None,
        basic_auth: tuple[str, str] | None = None,
        bearer: str | None = None,
        params: _Params | None = None,
    ) -> Awaitable[Any]: ...
