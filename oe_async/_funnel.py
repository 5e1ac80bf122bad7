"""The request funnel: the one way a printer connection talks to the network.

A :class:`Funnel` belongs to one printer connection. It builds and validates a
:class:`Call`, picks the route (LAN or relay, :mod:`oe_async.routing`), pins every secret
header to its origin (:class:`oe_async.auth.AuthMiddleware`), applies timeouts and the
retry policy, and translates every failure into an :class:`oe_async.OctoEverywhereError`.
It is the only code that calls aiohttp for a printer or the App API: HTTP requests through
:meth:`Funnel.open` / :meth:`Funnel.send` / :meth:`Funnel.json`, WebSocket handshakes
through :meth:`Funnel.websocket`. It knows nothing about uploads, webcams or webhooks; the
features (:mod:`oe_async.transfer`, :mod:`oe_async.webcam`, ...) are built on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, NoReturn

import aiohttp
import attrs
from multidict import CIMultiDict
from yarl import URL

from ._http import (
    MAX_JSON_SIZE,
    TRANSPORT_ERRORS,
    decode_json,
    display_path,
    join_url,
    parse_url,
    read_capped,
    read_json,
    reads_at_once,
    transport_error,
)
from ._plugin_wire import is_plugin_path
from ._transport import HANDSHAKE_AUTH, Pool, Transport, as_timeout
from .auth import SECRET_HEADERS, AuthMiddleware, Origin, origin_of, redact_url
from .errors import (
    MAX_ERROR_BODY,
    ClientClosedError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    PrinterHTTPError,
    RequestTimeoutError,
    http_error,
    is_relay_status,
    parse_retry_after,
)
from .models import AppConnection, known_secrets
from .retry import IDEMPOTENT_METHODS, RetryPolicy
from .routing import Route, RoutePolicy, Router, RoutingOptions, check_lan_url, local_lan_url

__all__ = ["MISSING", "Call", "Funnel", "Target"]

_LOGGER = logging.getLogger(__package__)

#: Plain calls (no per-request options) remembered per funnel.
_CALL_CACHE_SIZE: Final = 256
#: Methods the direct path may send twice when the first answer is a redirect.
_RESENDABLE: Final = frozenset({"GET", "HEAD"})
#: Statuses aiohttp follows as redirects.
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
#: Server errors in a row on the LAN route after which it is given up for the relay.
LAN_FAILURES: Final = 3
# RFC 9110 "tchar": what a method or header name may contain.
_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


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
#: Failures that prove the request never reached the server.
_NEVER_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def _is_replayable(data: object) -> bool:
    if data is None or callable(data):
        return True
    if isinstance(data, bytes | bytearray | memoryview | str):
        return True
    return isinstance(data, Mapping)  # url-encoded form of plain values


@attrs.frozen(slots=True, kw_only=True)
class Call:
    """Everything the funnel needs to (re)send one request. Build with :meth:`Funnel.call`."""

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
    #: What an attempt sends on each route, worked out once: ``[relay or App API, LAN]``.
    #: A memo derived from the fields above (and the funnel's pins); not part of equality.
    #: Never passed in (``attrs.evolve`` gives the new call a fresh memo).
    sends: list[_Send | None] = attrs.field(
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


def _check_headers(
    headers: Mapping[str, str] | None, *, what: str, managed: frozenset[str]
) -> dict[str, str]:
    """Validate caller-supplied headers; later spellings of a name replace earlier ones."""
    merged: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN_CHARS:
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


_MANAGED_HEADERS: Final = frozenset({"authorization", "apptoken", "host"})


def _label(conn: AppConnection) -> str:
    digest = hashlib.sha256(str(conn.url).encode()).hexdigest()[:6]
    if conn.printer_name:
        name = "".join(ch if ch.isprintable() else "?" for ch in conn.printer_name[:40])
        return f"printer {name!r} ({digest})"
    return f"printer {digest}"


@attrs.frozen(slots=True, repr=False)
class _Send:
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
        return f"<_Send {self.path}>"


class _Pending(enum.Enum):
    CHOOSE = enum.auto()


#: "The route needs the router's (awaited) choice": the LAN may need a probe first.
_CHOOSE: Final = _Pending.CHOOSE


class Funnel:
    """Sends every request of one printer connection; see the module docstring.

    Args:
        transport: the client's shared session, defaults and task owner.
        app_connection: the App Connection (relay URL and credentials, App API token).
        headers: printer-level headers sent to the printer on the relay and the LAN
            (e.g. ``X-Api-Key``); pinned to those origins like the relay credentials.
        lan_url: the printer's LAN base URL, or None to derive it from ``local_ip``.
        route: the routing policy (default: ``prefer_local`` with a LAN URL, else relay).
        routing: LAN probe timing.

    """

    def __init__(
        self,
        transport: Transport,
        app_connection: AppConnection,
        *,
        headers: Mapping[str, str] | None = None,
        lan_url: str | URL | None = None,
        route: RoutePolicy | str | None = None,
        routing: RoutingOptions | None = None,
    ) -> None:
        self._transport = transport
        self._app_connection = app_connection
        self._printer_headers = self._merge_printer_headers(app_connection, headers)
        #: The connection's own secrets: hidden from every error built from server text.
        self.secrets: Final = known_secrets(
            app_connection,
            [v for k, v in self._printer_headers.items() if k.lower() in SECRET_HEADERS],
        )
        if lan_url is not None:
            lan: URL | None = check_lan_url(lan_url)
        elif app_connection.local_ip:
            lan = local_lan_url(app_connection.local_ip, what="AppConnection.local_ip")
        else:
            lan = None
        if route is None:
            policy = RoutePolicy.PREFER_LOCAL if lan is not None else RoutePolicy.RELAY
        else:
            try:
                policy = RoutePolicy(route)
            except ValueError:
                raise InvalidArgumentError(
                    f"route must be one of {[p.value for p in RoutePolicy]}"
                ) from None
        self._router = Router(
            app_connection.url,
            lan,
            policy,
            routing or RoutingOptions(),
            lan_from_ip=lan_url is None and lan is not None,
        )
        self._auth = self._pin_secrets()
        #: The printer route when the policy fixes it (relay or LAN only), else None.
        self._fixed_route: Final = (
            None if policy is RoutePolicy.PREFER_LOCAL else self._router.route
        )
        self._default_headers: Final = {"User-Agent": transport.user_agent}
        #: How log lines name this printer: its name, or a short digest of its URL (the
        #: URL's unique subdomain is a secret; the digest cannot be turned back into it).
        self.label: Final = _label(app_connection)
        self._calls: dict[tuple[str, str, bool, bool], Call] = {}
        self._relay_fingerprint: tuple[int, str] | None = None
        self._lan_mismatch_logged = False
        self._lan_errors = 0
        #: The last failure's class and message (secret-free), for diagnostics.
        self.last_error: dict[str, str] | None = None

    @staticmethod
    def _merge_printer_headers(
        app_connection: AppConnection, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        merged: dict[str, str] = {}
        if app_connection.octoprint_api_key:
            merged["X-Api-Key"] = app_connection.octoprint_api_key
        for name, value in _check_headers(
            headers, what="printer headers", managed=_MANAGED_HEADERS
        ).items():
            for existing in [k for k in merged if k.lower() == name.lower()]:
                del merged[existing]
            merged[name] = value
        return merged

    def _pin_secrets(self) -> AuthMiddleware:
        """Pin each secret header to its origin: relay credentials never reach the LAN."""
        conn = self._app_connection
        relay, app_api = origin_of(conn.url), origin_of(self._transport.app_api_url)
        if relay == app_api:
            raise InvalidArgumentError("the App Connection URL and the App API share an origin")
        pins: dict[Origin, dict[str, str]] = {
            relay: {"Authorization": conn.auth.header_value, **self._printer_headers},
        }
        if conn.app_token is not None:
            pins[app_api] = {"AppToken": conn.app_token}
        lan = self._router.lan_url
        if lan is not None and self._router.policy is not RoutePolicy.RELAY:
            if origin_of(lan) in pins:
                raise InvalidArgumentError("the LAN URL must differ from the relay and App API")
            pins[origin_of(lan)] = dict(self._printer_headers)
        return AuthMiddleware(pins)

    def __repr__(self) -> str:
        return (
            f"<Funnel {self.label} {redact_url(self._app_connection.url)} route={self.route.value}>"
        )

    # ------------------------------------------------------------------ state

    @property
    def app_id(self) -> str:
        """The client's app id (605 recovery URLs)."""
        return self._transport.app_id

    @property
    def app_connection(self) -> AppConnection:
        """The App Connection requests go through."""
        return self._app_connection

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session requests are sent on."""
        return self._transport.session

    @property
    def stream_timeout(self) -> aiohttp.ClientTimeout:
        """The client's default timeout for streams."""
        return self._transport.stream_timeout

    @property
    def precheck_limits(self) -> bool:
        """Whether transfers are checked against the account limits before sending."""
        return self._transport.precheck_limits

    @property
    def allow_insecure_loopback(self) -> bool:
        """Whether the client allows plain http to loopback hosts (tests only)."""
        return self._transport.allow_insecure_loopback

    @property
    def route(self) -> Route:
        """Where requests to the printer go now."""
        return self._router.route

    @property
    def route_policy(self) -> RoutePolicy:
        """The routing policy."""
        return self._router.policy

    @property
    def lan_url(self) -> URL | None:
        """The printer's LAN base URL, when known."""
        return self._router.lan_url

    def learn_local_ip(self, ip: str | None) -> None:
        """The Info API reported the printer's LAN IP: follow it if ours came from an IP."""
        previous = self._router.lan_url
        self._router.learn_local_ip(ip)
        if self._router.lan_url != previous:
            self._auth = self._pin_secrets()

    @property
    def client_closed(self) -> bool:
        """True once the client was closed: every stream in progress is being ended."""
        return self._transport.closed

    def error_for(self, err: BaseException, method: str, path: str) -> OctoEverywhereError:
        """The library error for a network failure while sending or reading ``method path``.

        :class:`oe_async.ClientClosedError` when the client was closed meanwhile (that is
        why the stream failed), else a :class:`oe_async.CommunicationError` naming the
        failure without the host.
        """
        if self._transport.closed:
            return ClientClosedError(f"{method} {path}: the OctoEverywhere client was closed")
        return transport_error(err, method, path)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start a background task owned by the client (cancelled when it closes)."""
        return self._transport.spawn(coro, name=name)

    # ------------------------------------------------------------------ building a call

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
        built = self._build_call(
            method,
            path,
            target=target,
            params=params,
            headers=headers,
            json=json,
            data=data,
            timeout=timeout,
            stream=stream,
            retry=retry,
            idempotent=idempotent,
            allow_redirects=allow_redirects,
            raise_for_status=raise_for_status,
        )
        if key is not None:
            if len(self._calls) >= _CALL_CACHE_SIZE:
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

    def _build_call(
        self,
        method: str,
        path: str | URL,
        *,
        target: Target,
        params: Any,
        headers: Mapping[str, str] | None,
        json: Any,
        data: Any,
        timeout: float | aiohttp.ClientTimeout | None,
        stream: bool,
        retry: RetryPolicy | None,
        idempotent: bool | None,
        allow_redirects: bool,
        raise_for_status: bool,
    ) -> Call:
        if not isinstance(method, str):
            raise InvalidArgumentError("method must be a string")
        method = method.upper()
        if not method or not set(method) <= _TOKEN_CHARS:
            raise InvalidArgumentError(f"invalid HTTP method {method!r}")
        if json is not MISSING and data is not None:
            raise InvalidArgumentError("pass json or data, not both")
        if not isinstance(path, str | URL):
            raise InvalidArgumentError(f"path must be a str or yarl.URL, not {type(path).__name__}")
        if target is Target.APP_API and self._app_connection.app_token is None:
            raise InvalidArgumentError(
                "this App Connection has no app_token: the App APIs (info, Live Links, "
                "Gadget, webhooks) need the one the portal gave"
            )
        transport = self._transport
        return Call(
            method=method,
            target=target,
            path=path,
            params=params,
            headers=_check_headers(headers, what="headers", managed=_MANAGED_HEADERS) or None,
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

    # ------------------------------------------------------------------ routing

    def _route_now(self, call: Call) -> Route | _Pending | None:
        """The route of ``call``'s next attempt (None: the App API), or :data:`_CHOOSE`."""
        target = call.target
        if target is Target.PRINTER:
            if call.relay_only:
                return Route.RELAY
            # Under prefer_local the LAN may need a probe first (a re-probe runs aside).
            return (
                self._fixed_route
                or self._router.choose_now(self._probe_lan, self._spawn_probe)
                or _CHOOSE
            )
        if target is Target.APP_API:
            return None
        return Route.LAN if target is Target.LAN else Route.RELAY

    async def _route(self, call: Call) -> Route | None:
        """The route of ``call``'s next attempt, probing the LAN first if it must."""
        route = self._route_now(call)
        if route is _CHOOSE:
            return await self._router.choose(self._probe_lan, self._spawn_probe)
        return route

    def _send_for(self, call: Call, route: Route | None) -> _Send:
        """What ``call`` sends on ``route`` (worked out once per call, route and pins)."""
        slot = route is Route.LAN  # 0: the relay or the App API, 1: the LAN
        send = call.sends[slot]
        if send is None or send.auth is not self._auth:
            send = call.sends[slot] = self._make_send(call, route)
        return send

    def _make_send(self, call: Call, route: Route | None) -> _Send:
        if route is None:
            url = join_url(self._transport.app_api_url, call.path)
        else:
            url = self._url_for(call, route)
        headers = self._headers_for(call)
        auth = self._auth
        # Straight to the URL without the middleware when that is safe (see _attempts): a
        # request that is not redirected or a GET/HEAD, without secret-named headers of
        # its own (the middleware strips those where they do not belong).
        names = auth.secret_names()
        direct = (not call.allow_redirects or call.method in _RESENDABLE) and not (
            call.headers and any(name.lower() in names for name in call.headers)
        )
        return _Send(
            auth,
            url,
            display_path(url),
            headers,
            {**headers, **auth.headers_for(url)} if direct else None,
            self._transport.with_pool_wait(call.timeout),
        )

    def _url_for(self, call: Call, route: Route) -> URL:
        base = self._router.base(route)
        path = call.path
        if isinstance(path, str) and "://" in path:
            path = parse_url(path)  # InvalidArgumentError, never yarl's ValueError
        if isinstance(path, URL) and path.absolute:
            # The printer's own URLs (webcams, downloads) name its LAN host or the relay:
            # put them on the active route, dropping LAN ports on the relay side.
            same = origin_of(path) in (origin_of(self._router.relay_url), origin_of(base))
            if same or self._router.is_lan_host(path):
                path = path.relative()
        return join_url(base, path)

    async def _probe_lan(self, lan_url: URL) -> bool:
        """Is the printer at the LAN address? Its answer must match the relay's.

        Any answer used to do: a proxy's 502 (with ``HTTP_PROXY`` set) or another device now
        holding the stored IP kept the route on the LAN, and received the printer headers.
        Now the probe path's answer on the LAN (below 500) must have the same status and
        media type as the same request through the relay, which reaches the real printer.
        The relay's answer is asked once and remembered; while it cannot be had, the LAN is
        not trusted.
        """
        lan = await self._probe_answer(Target.LAN)
        if lan is None or lan[0] >= 500:
            return False
        if self._relay_fingerprint is None:
            self._relay_fingerprint = await self._probe_answer(Target.RELAY)
        if self._relay_fingerprint is None:
            return False
        if lan != self._relay_fingerprint:
            if not self._lan_mismatch_logged:
                self._lan_mismatch_logged = True
                _LOGGER.warning(
                    "%s: the LAN address answers unlike the printer (HTTP %d %s, the relay: "
                    "HTTP %d %s); staying on the relay",
                    self.label,
                    *lan,
                    *self._relay_fingerprint,
                )
            return False
        return True

    async def _probe_answer(self, target: Target) -> tuple[int, str] | None:
        """``(status, media type)`` of the probe path on ``target``, None if it failed."""
        options = self._router.options
        call = self.call(
            "GET",
            options.probe_path,
            target=target,
            timeout=aiohttp.ClientTimeout(total=options.probe_timeout),
            retry=RetryPolicy.never(),
            allow_redirects=False,
            raise_for_status=False,
        )
        try:
            async with self.send(call) as resp:
                return resp.status, resp.content_type
        except OctoEverywhereError:
            return None

    def _lan_answered(self, status: int) -> None:
        """Give the LAN up after :data:`LAN_FAILURES` server errors in a row there."""
        if status < 500:
            self._lan_errors = 0
            return
        self._lan_errors += 1
        if self._lan_errors >= LAN_FAILURES:
            self._lan_errors = 0
            _LOGGER.debug("%s: %d server errors in a row on the LAN", self.label, LAN_FAILURES)
            self._router.lan_failed()

    def _spawn_probe(self, coro: Coroutine[Any, Any, None]) -> object:
        try:
            return self.spawn(coro, name="oe_async LAN re-probe")
        except OctoEverywhereError:  # the client is closing: no more probes
            return None

    def _lan_failed(self, route: Route | None, call: Call) -> bool:
        """Note a LAN connection failure; True when the call may move to the relay."""
        if route is not Route.LAN or call.target is not Target.PRINTER:
            return False
        self._router.lan_failed()
        return self._router.route is Route.RELAY

    # ------------------------------------------------------------------ sending

    def _headers_for(self, call: Call) -> Mapping[str, str]:
        if not call.headers:
            return self._default_headers  # aiohttp copies it; nobody mutates it
        headers: CIMultiDict[str] = CIMultiDict(call.headers)
        headers.setdefault("User-Agent", self._transport.user_agent)
        return headers

    async def open(self, call: Call) -> aiohttp.ClientResponse:
        """Send ``call`` (with retries) and return the successful response.

        The caller owns the response and must release or close it. Every failure is an
        :class:`oe_async.OctoEverywhereError`; cancellation passes through untouched.
        """
        resp = await self._sent(call)
        self._transport.release(call.pool)
        self._transport.track(resp, call.pool)
        return resp

    async def _sent(self, call: Call) -> aiohttp.ClientResponse:
        """Take a slot of the call's pool and send it (with retries); the caller releases it.

        While it waits (for the slot, a connect, the answer's headers, a back-off) a
        :meth:`Transport.close` raises :class:`oe_async.ClientClosedError` here.
        """
        deadline = self._deadline(call)
        transport = self._transport
        task = transport.enter_call()
        try:
            waited = not transport.try_acquire(call.pool)
            if waited:
                await transport.acquire(call.pool, wait=self._remaining(deadline))
            try:
                return await self._attempts(call, deadline, waited=waited)
            except BaseException:
                transport.release(call.pool)
                raise
        except asyncio.CancelledError:
            if transport.closed_the_call(task):
                raise self._closed_during(call.method, call) from None
            raise
        finally:
            transport.leave_call(task)

    @staticmethod
    def _closed_during(method: str, call: Call) -> ClientClosedError:
        """The error of a call that close() interrupted while it waited."""
        try:
            path = display_path(call.path if isinstance(call.path, URL) else URL(call.path))
        except ValueError:
            path = "(path)"
        return ClientClosedError(f"{method} {path}: the OctoEverywhere client was closed")

    @staticmethod
    def _deadline(call: Call) -> float | None:
        total = call.timeout.total
        return None if total is None else asyncio.get_running_loop().time() + total

    @staticmethod
    def _remaining(deadline: float | None) -> float | None:
        return None if deadline is None else deadline - asyncio.get_running_loop().time()

    def _retry_timeout(self, call: Call, deadline: float | None) -> aiohttp.ClientTimeout:
        """A later attempt's timeout: what is left of the call's deadline, pool wait bounded."""
        timeout = call.timeout
        if deadline is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            timeout = attrs.evolve(timeout, total=max(remaining, 0.001))
        return self._transport.with_pool_wait(timeout)

    async def _attempts(
        self, call: Call, deadline: float | None, *, waited: bool = False
    ) -> aiohttp.ClientResponse:
        """Send ``call`` until it succeeds or may not be retried; return the response.

        Each attempt goes straight to its URL when that is safe, else through the auth
        middleware. The middleware pins secrets on every redirect hop, but a per-request
        middleware costs aiohttp about 20 us per request, an eighth of a small GET. The
        first hop always goes to one of the connection's own origins, whose pinned headers
        are known: a request that cannot be redirected (``allow_redirects=False``), or a
        GET/HEAD (whose redirects keep the method and carry no body), goes out with them
        set directly and no middleware (:attr:`_Send.direct`). A redirect answer is then
        followed from its ``Location`` through the middleware (:meth:`_follow`). Session
        default headers or per-request headers that carry a secret name always take the
        middleware path (it strips them where they do not belong).

        The caller tracks the response (:meth:`Transport.track`, or :attr:`Transport.held`
        when it releases the response itself). ``waited``: the call waited for a free
        connection first, so its first attempt too gets only what is left of the deadline.
        """
        transport = self._transport
        loop = asyncio.get_running_loop()
        attempt = 0
        # The first send has the call's whole timeout (unless the pool wait took some of it),
        # later ones what is left.
        sent = waited
        while True:
            attempt += 1
            # Asked again for every send: a client closed meanwhile (say during a retry's
            # back-off) raises ClientClosedError here, instead of sending on.
            session = transport.session if call.pool is Pool.REQUESTS else transport.stream_session
            route = self._route_now(call)
            if route is _CHOOSE:
                route = await self._router.choose(self._probe_lan, self._spawn_probe)
            send = self._send_for(call, route)
            data = call.data() if callable(call.data) else call.data
            json_body = None if call.json is MISSING else call.json
            timeout = self._retry_timeout(call, deadline) if sent else send.timeout
            sent = True
            started = loop.time()
            try:
                direct = send.direct
                if direct is not None and self._session_has_secrets(session):
                    direct = None
                resp = await session.request(
                    call.method,
                    send.url,
                    params=call.params,
                    data=data,
                    json=json_body,
                    headers=send.headers if direct is None else direct,
                    timeout=timeout,
                    allow_redirects=call.allow_redirects and direct is None,
                    raise_for_status=False,
                    middlewares=(self._auth,) if direct is None else (),
                )
                if direct is not None and call.allow_redirects and resp.status in _REDIRECTS:
                    resp = await self._follow(
                        session, call, resp, send, timeout=timeout, json=json_body
                    )
            except TRANSPORT_ERRORS as err:
                error: OctoEverywhereError = transport.pool_full_error(
                    call.pool, err, loop.time() - started
                ) or self.error_for(err, call.method, send.path)
                # A request that never left can always go through the relay instead; one
                # that may have reached the printer only if it may be repeated.
                if (
                    not transport.closed
                    and self._lan_failed(route, call)
                    and (isinstance(err, _NEVER_SENT) or call.retryable)
                ):
                    _LOGGER.debug(
                        "%s: %s %s: LAN unreachable, using the relay",
                        self.label,
                        call.method,
                        send.path,
                    )
                    attempt -= 1
                    continue
            else:
                status = resp.status
                if route is Route.LAN:
                    self._lan_answered(status)
                # OctoEverywhere's 6xx codes mean something only from the relay and the
                # App API: on the plain-http LAN they are any device's ordinary answer.
                if status < 400 or not (
                    call.raise_for_status or (route is not Route.LAN and is_relay_status(status))
                ):
                    if _LOGGER.isEnabledFor(logging.DEBUG):  # no call to debug() if not
                        _LOGGER.debug("%s: %s %s -> %d", self.label, call.method, send.path, status)
                    return resp
                try:
                    body = await read_capped(resp, MAX_ERROR_BODY)
                finally:
                    resp.release()
                error = self._http_error(resp, body, call, send.path, relay=route is not Route.LAN)
            await self._before_retry(call, deadline, attempt, error, send.path)

    async def _before_retry(
        self,
        call: Call,
        deadline: float | None,
        attempt: int,
        error: OctoEverywhereError,
        path: str,
    ) -> None:
        """Wait before attempt ``attempt + 1`` of ``call``, or raise ``error`` if none is due."""
        delay = (
            call.retry.delay(attempt, error)
            if call.retryable
            and not isinstance(error, ClientClosedError)
            and attempt < call.retry.attempts
            and RetryPolicy.is_retryable_error(error)
            else None
        )
        remaining = self._remaining(deadline)
        if delay is not None and remaining is not None and delay >= remaining:
            _LOGGER.debug(
                "%s: %s %s: no time left for attempt %d (%.2f s left)",
                self.label,
                call.method,
                path,
                attempt + 1,
                remaining,
            )
            delay = None
        if delay is None:
            _LOGGER.debug("%s: %s %s failed: %s", self.label, call.method, path, error)
            self.last_error = {"type": type(error).__name__, "message": str(error)}
            if attempt > 1 and isinstance(error, RequestTimeoutError) and deadline is not None:
                error = RequestTimeoutError(
                    f"{call.method} {path}: no answer within the call's "
                    f"{call.timeout.total:g} s deadline ({attempt} attempts)"
                )
            raise error from None
        _LOGGER.debug(
            "%s: %s %s failed (%s); attempt %d of %d in %.2f s",
            self.label,
            call.method,
            path,
            type(error).__name__,
            attempt + 1,
            call.retry.attempts,
            delay,
        )
        await asyncio.sleep(delay)

    async def _follow(
        self,
        session: aiohttp.ClientSession,
        call: Call,
        resp: aiohttp.ClientResponse,
        send: _Send,
        *,
        timeout: aiohttp.ClientTimeout,
        json: Any,
    ) -> aiohttp.ClientResponse:
        """Follow the redirect ``resp`` of a direct GET/HEAD through the auth middleware."""
        location = resp.headers.get("Location")
        if location is None:
            return resp
        try:
            target: URL | None = resp.url.join(URL(location))
        except ValueError:
            target = None
        resp.release()
        url, params = send.url, call.params
        if target is not None and target.scheme in ("http", "https"):
            url, params = target, None  # the query is the Location's now
        return await session.request(
            call.method,
            url,
            params=params,
            data=call.data() if callable(call.data) else call.data,
            json=json,
            headers=send.headers,
            timeout=timeout,
            allow_redirects=True,
            raise_for_status=False,
            middlewares=(self._auth,),
        )

    def _session_has_secrets(self, session: aiohttp.ClientSession) -> bool:
        """True when the session adds a secret of its own (take the middleware path).

        A default ``auth=`` (a borrowed session's) would become an ``Authorization`` header
        that the direct path cannot strip: sent to the LAN, or clashing with the relay's.
        """
        if session.auth is not None:
            return True
        defaults = session.headers
        return bool(defaults) and any(name in defaults for name in self._auth.secret_names())

    def _http_error(
        self,
        resp: aiohttp.ClientResponse,
        body: bytes,
        call: Call,
        path: str,
        *,
        relay: bool,
    ) -> OctoEverywhereError:
        if not relay and is_relay_status(resp.status):
            return PrinterHTTPError(
                resp.status,
                reason=resp.reason or "",
                method=call.method,
                path=path,
                body=body,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                secrets=self.secrets,
            )
        return http_error(
            resp.status,
            resp.headers,
            body,
            app_id=self._transport.app_id,
            method=call.method,
            path=path,
            printer=call.target is not Target.APP_API,
            secrets=self.secrets,
        )

    @asynccontextmanager
    async def send(self, call: Call) -> AsyncIterator[aiohttp.ClientResponse]:
        """:meth:`open` as a context manager: the response is released however it exits.

        Network failures while the caller reads the body are translated too. An ordinary
        request counts against its connection pool until the response is released.
        """
        if call.pool is Pool.STREAMS:
            # A stream counts as a live stream once open, not as a request in flight.
            resp = await self.open(call)
            try:
                yield resp
            except TRANSPORT_ERRORS as err:
                self._reraise(err, call, resp)
            finally:
                resp.release()
            return
        resp = await self._sent(call)
        transport = self._transport
        transport.held.add(resp)
        try:
            yield resp
        except TRANSPORT_ERRORS as err:
            self._reraise(err, call, resp)
        finally:
            resp.release()
            transport.held.discard(resp)
            transport.release(call.pool)

    def _reraise(self, err: BaseException, call: Call, resp: aiohttp.ClientResponse) -> NoReturn:
        """Raise ``err`` as the library error it stands for (it came while reading ``resp``)."""
        if isinstance(err, OctoEverywhereError):
            raise err
        raise self.error_for(err, call.method, display_path(resp.url)) from None

    async def json(self, call: Call) -> Any:
        """Send ``call`` and decode its JSON answer (None for an empty body)."""
        if call.pool is Pool.STREAMS:
            async with self.send(call) as resp:
                return await read_json(resp, call.method)
        # send() spelled out: this is the hot path of every small request.
        total = call.timeout.total
        deadline = None if total is None else asyncio.get_running_loop().time() + total
        transport = self._transport
        # transport.enter_call() spelled out (leave_call() below too).
        waiting = transport.waiting
        task: asyncio.Task[Any] | None = asyncio.current_task()
        if task in waiting:
            task = None
        else:
            waiting.add(task)  # type: ignore[arg-type]  # a coroutine always runs in a task
        try:
            waited = not transport.try_acquire(call.pool)
            if waited:
                await transport.acquire(call.pool, wait=self._remaining(deadline))
            try:
                resp = await self._attempts(call, deadline, waited=waited)
                transport.held.add(resp)
                try:
                    if reads_at_once(resp, MAX_JSON_SIZE):  # read_json's common case, in place
                        return decode_json(await resp.read(), resp, call.method)
                    return await read_json(resp, call.method)
                except TRANSPORT_ERRORS as err:
                    self._reraise(err, call, resp)
                finally:
                    resp.release()
                    transport.held.discard(resp)
            finally:
                transport.release(call.pool)
        except asyncio.CancelledError:
            if transport.closed_the_call(task):
                raise self._closed_during(call.method, call) from None
            raise
        finally:
            if task is not None:
                waiting.discard(task)

    async def _handshake(
        self,
        call: Call,
        *,
        protocols: tuple[str, ...],
        heartbeat: float | None,
        receive_timeout: float | None,
        handshake_timeout: float,
        max_msg_size: int,
    ) -> tuple[aiohttp.ClientWebSocketResponse, str, Route | None]:
        """One WebSocket handshake (LAN falling back to the relay), errors translated.

        Every error is raised *outside* the ``except`` block that caught aiohttp's: its
        exceptions record the request headers (relay ``Authorization``, ``X-Api-Key``), and
        one raised inside the block would keep them reachable as ``__context__``.
        """
        transport = self._transport
        while True:
            route = await self._route(call)
            send = self._send_for(call, route)
            url, path = send.url, send.path
            error: OctoEverywhereError | None = None
            token = HANDSHAKE_AUTH.set(self._auth)
            try:
                async with asyncio.timeout(handshake_timeout):
                    ws = await transport.handshake_session().ws_connect(
                        url,
                        protocols=protocols,
                        heartbeat=heartbeat,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=receive_timeout, ws_close=10.0),
                        headers=send.headers,
                        max_msg_size=max_msg_size,
                        # PrinterWebSocket answers pings itself, with a bound on how many
                        # (aiohttp would answer a flood of them for ever, on the loop).
                        autoping=False,
                    )
            except aiohttp.WSServerHandshakeError as err:
                error = self._handshake_refused(err.status, err.headers, path, route)
            except TRANSPORT_ERRORS as err:
                if not transport.closed and self._lan_failed(route, call):
                    continue  # the handshake did not happen: try the relay
                error = self.error_for(err, "WebSocket", path)
            finally:
                HANDSHAKE_AUTH.reset(token)
            if error is not None:
                raise error
            return ws, path, route

    def _handshake_refused(
        self, status: int, headers: Mapping[str, str] | None, path: str, route: Route | None
    ) -> OctoEverywhereError:
        if status < 400:
            return CommunicationError(
                f"WebSocket {path}: the server did not accept the upgrade (HTTP {status})"
            )
        if route is Route.LAN and is_relay_status(status):
            # 6xx means OctoEverywhere only when the relay says it (see _attempts).
            return PrinterHTTPError(status, method="GET", path=path)
        return http_error(
            status,
            headers or {},
            b"",
            app_id=self._transport.app_id,
            method="GET",
            path=path,
        )

    @asynccontextmanager
    async def websocket(
        self,
        call: Call,
        *,
        protocols: tuple[str, ...],
        heartbeat: float | None,
        receive_timeout: float | None,
        handshake_timeout: float,
        max_msg_size: int,
    ) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, str, bool]]:
        """Open a WebSocket for ``call`` (a GET); yield ``(socket, display path, via relay)``.

        The last item says whether the handshake went through the relay (only the relay
        speaks OctoEverywhere's 6xx codes). Pings are left to the caller
        (``autoping=False``): answer them, with a bound.

        The handshake carries the pinned headers by the same origin rule as every request,
        on every redirect hop; a LAN that cannot be reached falls back to the relay. A
        refused handshake raises the mapped error. The socket is closed on exit.
        """
        if not handshake_timeout > 0:
            raise InvalidArgumentError("handshake_timeout must be a positive number of seconds")
        transport = self._transport
        task = transport.enter_call()
        try:
            async with transport.slot(Pool.STREAMS, wait=handshake_timeout):
                ws, path, route = await self._handshake(
                    call,
                    protocols=protocols,
                    heartbeat=heartbeat,
                    receive_timeout=receive_timeout,
                    handshake_timeout=handshake_timeout,
                    max_msg_size=max_msg_size,
                )
                transport.track(ws)
        except asyncio.CancelledError:
            if transport.closed_the_call(task):
                raise self._closed_during("WebSocket", call) from None
            raise
        finally:
            transport.leave_call(task)
        try:
            yield ws, path, route is Route.RELAY
        finally:
            with contextlib.suppress(*TRANSPORT_ERRORS):
                await ws.close()
