"""What one request is: a validated, immutable :class:`Call`, and how the funnel builds it.

:class:`CallBuilder` checks the arguments of a request (method, headers, path, body, the
App API's token) before anything is sent, and fills in the client's defaults (timeouts, the
retry policy, the connection pool). Calls without per-request options are built once per
method and path. :class:`Send` is what an attempt of a call sends on one route, worked out
once per call and route by :class:`oe_async._funnel.routes.Routes`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import attrs
from yarl import URL

from oe_async._plugin_wire import is_plugin_path
from oe_async._transport import Pool, Transport, as_timeout
from oe_async.auth import AuthMiddleware
from oe_async.errors import InvalidArgumentError
from oe_async.models import AppConnection
from oe_async.retry import IDEMPOTENT_METHODS, RetryPolicy

#: Plain calls (no per-request options) remembered per funnel.
CALL_CACHE_SIZE: Final = 256
# RFC 9110 "tchar": what a method or header name may contain.
TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
#: Headers only oe_async sets.
MANAGED_HEADERS: Final = frozenset({"authorization", "apptoken", "host"})


class Target(enum.Enum):
    """Which origin a request is for."""

    PRINTER = "printer"  # the active route (LAN or relay; the plugin API: relay only)
    LAN = "lan"  # always the LAN (route probes)
    RELAY = "relay"  # always the relay (the probe's reference answer)
    APP_API = "app_api"


class _Missing(enum.Enum):
    MISSING = enum.auto()


#: "No JSON body" (``None`` is a valid JSON body: ``null``).
MISSING: Final = _Missing.MISSING


def _is_replayable(data: object) -> bool:
    if data is None or callable(data):
        return True
    if isinstance(data, bytes | bytearray | memoryview | str):
        return True
    return isinstance(data, Mapping)  # url-encoded form of plain values


@attrs.frozen(slots=True, kw_only=True)
class Call:
    """Everything the funnel needs to (re)send one request. Build with :meth:`CallBuilder.call`."""

    method: str
    target: Target
    path: str | URL
    params: Any = None
    headers: Mapping[str, str] | None = None
    json: Any = MISSING
    data: Any = None
    timeout: aiohttp.ClientTimeout
    retry: RetryPolicy
    idempotent: bool
    allow_redirects: bool = True
    raise_for_status: bool = True
    pool: Pool = Pool.REQUESTS
    #: Only the relay serves it (OctoEverywhere's plugin API).
    relay_only: bool = False
    #: A LAN probe: it carries no printer secret (no ``X-Api-Key`` to whatever device holds
    #: the LAN address now); the relay's reference probe carries only the relay's own
    #: credential, so that both answer the same request.
    probe: bool = False
    #: What an attempt sends on each route, worked out once: ``[relay or App API, LAN]``.
    #: A memo derived from the fields above (and the funnel's pins); not part of equality.
    #: Never passed in (``attrs.evolve`` gives the new call a fresh memo).
    sends: list[Send | None] = attrs.field(
        init=False, factory=lambda: [None, None], eq=False, repr=False
    )

    @property
    def replayable(self) -> bool:
        """True when the body can be sent again (JSON, bytes, a form, or a factory)."""
        return self.json is not MISSING or _is_replayable(self.data)

    @property
    def retryable(self) -> bool:
        """True when a failed attempt may be sent again (idempotent and replayable)."""
        return self.idempotent and self.replayable


@attrs.frozen(slots=True, repr=False)
class Send:
    """What every attempt of one call sends on one route (see :attr:`Call.sends`).

    It holds the pinned secrets and the URL (whose host is a secret): its repr shows
    neither.
    """

    #: The pins it was worked out with: a new LAN address re-pins, and this is stale.
    auth: AuthMiddleware
    url: URL
    #: The path as logs and errors show it (no host, no query).
    path: str
    #: The request headers without secrets (the middleware path adds the pinned ones).
    headers: Mapping[str, str]
    #: The same with this route's pinned secrets, when the call may skip the middleware.
    direct: Mapping[str, str] | None
    #: The first attempt's timeout (later ones get what is left of the deadline).
    timeout: aiohttp.ClientTimeout

    def __repr__(self) -> str:
        return f"<Send {self.path}>"


def check_headers(
    headers: Mapping[str, str] | None, *, what: str, managed: frozenset[str] = MANAGED_HEADERS
) -> dict[str, str]:
    """Validate caller-supplied headers; later spellings of a name replace earlier ones."""
    merged: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not name or not set(name) <= TOKEN_CHARS:
            raise InvalidArgumentError(f"{what}: invalid header name {name!r}")
        if name.lower() in managed:
            raise InvalidArgumentError(f"{what}: header {name!r} is managed by oe_async")
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{what}: header {name!r} must be a string")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise InvalidArgumentError(f"{what}: header {name!r} contains control characters")
        for existing in [k for k in merged if k.lower() == name.lower()]:
            del merged[existing]
        merged[name] = value
    return merged


def printer_headers(
    app_connection: AppConnection, headers: Mapping[str, str] | None
) -> dict[str, str]:
    """The headers sent to the printer on every route: ``X-Api-Key`` and the caller's."""
    merged: dict[str, str] = {}
    if app_connection.octoprint_api_key:
        merged["X-Api-Key"] = app_connection.octoprint_api_key
    for name, value in check_headers(headers, what="printer headers").items():
        for existing in [k for k in merged if k.lower() == name.lower()]:
            del merged[existing]
        merged[name] = value
    return merged


class CallBuilder:
    """Builds the :class:`Call` of each request: :meth:`call` and :meth:`plain`.

    Args:
        transport: the client's defaults (timeouts, retry policy).
        app_connection: the App Connection (an App API call needs its ``app_token``).

    """

    __slots__ = ("_calls", "app_connection", "transport")

    def __init__(self, transport: Transport, app_connection: AppConnection) -> None:
        #: The client's shared session, defaults and task owner.
        self.transport: Final = transport
        #: The App Connection requests go through.
        self.app_connection: Final = app_connection
        self._calls: dict[tuple[str, str, bool, bool], Call] = {}

    def call(
        self,
        method: str,
        path: str | URL,
        *,
        target: Target = Target.PRINTER,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        json: Any = MISSING,
        data: Any = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        stream: bool = False,
        retry: RetryPolicy | None = None,
        idempotent: bool | None = None,
        allow_redirects: bool = True,
        raise_for_status: bool = True,
    ) -> Call:
        """Validate the arguments of one request and fill in the client's defaults.

        ``stream`` picks the stream timeout (no total limit) as the default and the stream
        connection pool (the caller holds the response). A ``total`` timeout is the whole
        call's deadline, every retry included. Raises
        :class:`oe_async.InvalidArgumentError` before anything is sent. Calls without
        per-request options are built once per method and path (a ``Call`` is immutable).
        """
        key: tuple[str, str, bool, bool] | None = None
        if isinstance(path, str) and (
            (target is Target.PRINTER or target is Target.APP_API)
            and params is None
            and headers is None
            and json is MISSING
            and data is None
            and timeout is None
            and retry is None
            and idempotent is None
            and allow_redirects
            and raise_for_status
        ):
            # No enum in the key: an Enum hashes its name in Python code, on every call.
            key = (method, path, target is Target.APP_API, stream)
            cached = self._calls.get(key)
            if cached is not None:
                return cached
        if not isinstance(method, str):
            raise InvalidArgumentError("method must be a string")
        method = method.upper()
        if not method or not set(method) <= TOKEN_CHARS:
            raise InvalidArgumentError(f"invalid HTTP method {method!r}")
        if json is not MISSING and data is not None:
            raise InvalidArgumentError("pass json or data, not both")
        if not isinstance(path, str | URL):
            raise InvalidArgumentError(f"path must be a str or yarl.URL, not {type(path).__name__}")
        if target is Target.APP_API and self.app_connection.app_token is None:
            raise InvalidArgumentError(
                "this App Connection has no app_token: the App APIs (info, Live Links, "
                "Gadget, webhooks) need the one the portal gave"
            )
        transport = self.transport
        built = Call(
            method=method,
            target=target,
            path=path,
            params=params,
            headers=check_headers(headers, what="headers") or None,
            json=json,
            data=data,
            timeout=as_timeout(timeout, transport.stream_timeout if stream else transport.timeout),
            retry=retry if retry is not None else transport.retry,
            idempotent=method in IDEMPOTENT_METHODS if idempotent is None else idempotent,
            allow_redirects=allow_redirects,
            raise_for_status=raise_for_status,
            pool=Pool.STREAMS if stream else Pool.REQUESTS,
            # OctoEverywhere's plugin endpoints exist only on the relay.
            relay_only=target is Target.RELAY
            or (target is Target.PRINTER and is_plugin_path(str(path))),
        )
        if key is not None:
            if len(self._calls) >= CALL_CACHE_SIZE:
                self._calls.clear()
            self._calls[key] = built
        return built

    def plain(self, method: str, path: str | URL) -> Call:
        """:meth:`call` with no options for the printer: the cached call, looked up first."""
        if isinstance(path, str):  # the key call() files it under
            cached = self._calls.get((method, path, False, False))
            if cached is not None:
                return cached
        return self.call(method, path)
