"""``PrinterConnection`` and the request funnel every feature goes through.

One private method, :meth:`PrinterConnection._send`, is the only place that calls
``session.request``. It resolves the URL, attaches the origin-pinned auth middleware,
applies timeouts and the retry policy, and turns every failure into an
:class:`~oe_async.OctoEverywhereError`. Transfers, webcam streams and App API calls are
built on it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import attrs
from multidict import CIMultiDict
from yarl import URL

from . import app_api, plugin_api, transfer, webcam
from . import websocket as _ws
from ._http import TRANSPORT_ERRORS, display_path, join_url, read_capped, read_json, transport_error
from .auth import AuthMiddleware, Origin, origin_of, redact_url
from .client import as_timeout
from .diagnostics import printer_diagnostics
from .errors import (
    AppAPIError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    UnexpectedResponseError,
    http_error,
    is_relay_status,
)
from .gadget import GadgetPoller
from .mjpeg import DEFAULT_MAX_FRAME_SIZE
from .plugin_api import PLUGIN_PREFIX
from .retry import IDEMPOTENT_METHODS, ReconnectPolicy, RetryPolicy
from .routing import (
    Route,
    RoutePolicy,
    Router,
    RoutingOptions,
    check_lan_url,
    lan_url_from_ip,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from .client import OctoEverywhere
    from .mjpeg import Frame
    from .models import (
        AppConnection,
        ConnectionInfo,
        GadgetStatus,
        LiveLink,
        PrinterLimits,
        WebcamList,
    )
    from .transfer import DownloadStream, FormValue, ProgressCallback, UploadSource
    from .webcam import FrameStream
    from .webhooks import EventType
    from .websocket import Hello, MessageHandler, PrinterWebSocket, StateHandler, Subscription

__all__ = ["PrinterConnection"]

_LOGGER = logging.getLogger(__package__)

#: How much of an error response body is kept (for messages and plugin error decoding).
ERROR_BODY_LIMIT: Final = 64 * 1024
# RFC 9110 "tchar": what a method or header name may contain.
_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class Target(enum.Enum):
    """Which origin a request is for."""

    PRINTER = "printer"  # the active route (LAN or relay)
    RELAY = "relay"  # always the relay (OctoEverywhere's own plugin endpoints)
    LAN = "lan"  # always the LAN (route probes)
    APP_API = "app_api"


class _Missing(enum.Enum):
    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING
#: Failures that prove the request never reached the server.
_NEVER_SENT: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def _is_replayable(data: Any) -> bool:
    if data is None or callable(data):
        return True
    if isinstance(data, bytes | bytearray | memoryview | str):
        return True
    return isinstance(data, Mapping)  # url-encoded form of plain values


@attrs.define(slots=True, kw_only=True)
class _Call:
    """Everything the funnel needs to (re)send one request."""

    method: str
    target: Target
    path: str | URL
    params: Any = None
    headers: Mapping[str, str] | None = None
    json: Any = _MISSING
    data: Any = None
    timeout: aiohttp.ClientTimeout
    retry: RetryPolicy
    idempotent: bool
    allow_redirects: bool = True
    raise_for_status: bool = True

    @property
    def replayable(self) -> bool:
        return self.json is not _MISSING or _is_replayable(self.data)


class PrinterConnection:
    """One printer reached through its App Connection. Create with ``OctoEverywhere.printer()``.

    Cheap to create and to keep: it holds references and the auth middleware, nothing else.
    The printer's own API (OctoPrint, Moonraker, ...) is reached with :meth:`request`,
    :meth:`get_json` and :meth:`post_json` using the printer's usual paths.
    """

    def __init__(
        self,
        client: OctoEverywhere,
        app_connection: AppConnection,
        *,
        headers: Mapping[str, str] | None = None,
        lan_url: str | URL | None = None,
        route: RoutePolicy | str | None = None,
        routing: RoutingOptions | None = None,
    ) -> None:
        self._client = client
        self._app_connection = app_connection
        self._printer_headers_pinned = self._printer_headers(app_connection, headers)
        if lan_url is not None:
            lan: URL | None = check_lan_url(lan_url)
        elif app_connection.local_ip:
            lan = lan_url_from_ip(app_connection.local_ip)
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
        self._limits: PrinterLimits | None = None
        self._limits_lock: asyncio.Lock | None = None
        self._plugin: plugin_api.PluginAPI | None = None
        #: When the next Gadget call may be made (GadgetPoller's clock).
        self._gadget_next_call = -float("inf")
        #: The last failure's class and message (secret-free) for diagnostics().
        self._last_error: dict[str, str] | None = None

    def _pin_secrets(self) -> AuthMiddleware:
        """Pin each secret header to its origin: relay credentials never reach the LAN."""
        conn = self._app_connection
        relay, app_api = origin_of(conn.url), origin_of(self._client.app_api_url)
        if relay == app_api:
            raise InvalidArgumentError("the App Connection URL and the App API share an origin")
        pins: dict[Origin, dict[str, str]] = {
            relay: {"Authorization": conn.auth.header_value, **self._printer_headers_pinned},
            app_api: {"AppToken": conn.app_token},
        }
        lan = self._router.lan_url
        if lan is not None and self._router.policy is not RoutePolicy.RELAY:
            if origin_of(lan) in pins:
                raise InvalidArgumentError("the LAN URL must differ from the relay and App API")
            pins[origin_of(lan)] = dict(self._printer_headers_pinned)
        return AuthMiddleware(pins)

    @staticmethod
    def _printer_headers(
        app_connection: AppConnection, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        merged: dict[str, str] = {}
        if app_connection.octoprint_api_key:
            merged["X-Api-Key"] = app_connection.octoprint_api_key
        for name, value in (headers or {}).items():
            if not name or not set(name) <= _TOKEN_CHARS:
                raise InvalidArgumentError(f"invalid header name {name!r}")
            if name.lower() in {"authorization", "apptoken", "host"}:
                raise InvalidArgumentError(f"header {name!r} is managed by oe_async")
            if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
                raise InvalidArgumentError(f"header {name!r} contains control characters")
            for existing in [k for k in merged if k.lower() == name.lower()]:
                del merged[existing]
            merged[name] = value
        return merged

    def __repr__(self) -> str:
        name = self._app_connection.printer_name
        return f"<PrinterConnection {redact_url(self._app_connection.url)} printer_name={name!r}>"

    @property
    def app_connection(self) -> AppConnection:
        """The App Connection this printer is reached through."""
        return self._app_connection

    @property
    def client(self) -> OctoEverywhere:
        """The :class:`~oe_async.OctoEverywhere` this connection belongs to."""
        return self._client

    @property
    def limits(self) -> PrinterLimits | None:
        """The account limits from the last :meth:`info` call, or None before the first."""
        return self._limits

    @property
    def plugin(self) -> plugin_api.PluginAPI:
        """OctoEverywhere's printer-agnostic command API for this printer (created on use)."""
        if self._plugin is None:
            self._plugin = plugin_api.PluginAPI(self)
        return self._plugin

    @property
    def route(self) -> Route:
        """Where requests to the printer go now: ``Route.LAN`` or ``Route.RELAY``."""
        return self._router.route

    @property
    def route_policy(self) -> RoutePolicy:
        """The routing policy (``prefer_local``, ``relay`` or ``local``)."""
        return self._router.policy

    @property
    def lan_url(self) -> URL | None:
        """The printer's LAN base URL, when known."""
        return self._router.lan_url

    # ------------------------------------------------------------------ the funnel

    async def _resolve(self, call: _Call) -> tuple[URL, Route | None]:
        """The URL for one attempt of ``call`` and the printer route it takes (if any)."""
        if call.target is Target.APP_API:
            return join_url(self._client.app_api_url, call.path), None
        route = await self._route_for(call)
        base = self._router.base(route)
        path = call.path
        if isinstance(path, str) and "://" in path:
            path = URL(path)
        if isinstance(path, URL) and path.absolute:
            # The printer's own URLs (webcams, downloads) name its LAN host or the relay:
            # put them on the active route, dropping LAN ports on the relay side.
            same = origin_of(path) in (origin_of(self._router.relay_url), origin_of(base))
            if same or self._router.is_lan_host(path):
                path = path.relative()
        return join_url(base, path), route

    async def _route_for(self, call: _Call) -> Route:
        if call.target is Target.RELAY:
            return Route.RELAY
        if call.target is Target.LAN:
            return Route.LAN
        raw = str(call.path)
        if raw.startswith(PLUGIN_PREFIX) or URL(raw).path.startswith(PLUGIN_PREFIX):
            return Route.RELAY  # OctoEverywhere's plugin endpoints exist only on the relay
        return await self._router.choose(self._probe_lan, self._spawn_probe)

    async def _probe_lan(self, lan_url: URL) -> bool:
        """Any HTTP answer from the LAN base URL means the printer is there."""
        options = self._router.options
        call = self._call(
            "GET",
            options.probe_path,
            target=Target.LAN,
            timeout=aiohttp.ClientTimeout(total=options.probe_timeout),
            retry=RetryPolicy.never(),
            allow_redirects=False,
            raise_for_status=False,
        )
        try:
            resp = await self._open(call)
        except CommunicationError:
            return False
        resp.release()
        return True

    def _spawn_probe(self, coro: Coroutine[Any, Any, None]) -> object:
        try:
            return self._client._spawn(coro, name="oe_async LAN re-probe")
        except OctoEverywhereError:  # the client is closing: no more probes
            return None

    def _headers_for(self, call: _Call) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict(call.headers or {})
        headers.setdefault("User-Agent", self._client.user_agent)
        return headers

    async def _open(self, call: _Call) -> aiohttp.ClientResponse:
        """Send ``call`` (with retries) and return the successful response.

        The caller owns the response and must release or close it. Every failure is an
        :class:`~oe_async.OctoEverywhereError`; cancellation passes through untouched.
        """
        session = self._client.session
        headers = self._headers_for(call)
        retryable_request = call.idempotent and call.replayable
        attempt = 0
        while True:
            attempt += 1
            url, route = await self._resolve(call)
            path = display_path(url)
            data = call.data() if callable(call.data) else call.data
            kwargs: dict[str, Any] = {}
            if call.json is not _MISSING:
                kwargs["json"] = call.json
            try:
                resp = await session.request(
                    call.method,
                    url,
                    params=call.params,
                    data=data,
                    headers=headers,
                    timeout=call.timeout,
                    allow_redirects=call.allow_redirects,
                    raise_for_status=False,
                    middlewares=(self._auth,),
                    **kwargs,
                )
            except TRANSPORT_ERRORS as err:
                error: OctoEverywhereError = transport_error(err, call.method, path)
                if route is Route.LAN and call.target is Target.PRINTER:
                    self._router.lan_failed()
                    # A request that never left can always go through the relay instead;
                    # one that may have reached the printer only if it may be repeated.
                    if self._router.route is Route.RELAY and (
                        isinstance(err, _NEVER_SENT) or retryable_request
                    ):
                        _LOGGER.debug("%s %s: LAN unreachable, using the relay", call.method, path)
                        attempt -= 1
                        continue
            else:
                status = resp.status
                if status < 400 or not (call.raise_for_status or is_relay_status(status)):
                    _LOGGER.debug("%s %s -> %d", call.method, path, status)
                    return resp
                try:
                    body = await read_capped(resp, ERROR_BODY_LIMIT)
                finally:
                    resp.release()
                error = http_error(
                    status,
                    resp.headers,
                    body,
                    app_id=self._client.app_id,
                    method=call.method,
                    path=path,
                    printer=call.target is Target.PRINTER,
                )
            delay = (
                call.retry.delay(attempt, error)
                if retryable_request
                and attempt < call.retry.attempts
                and RetryPolicy.is_retryable_error(error)
                else None
            )
            if delay is None:
                _LOGGER.debug("%s %s failed: %s", call.method, path, error)
                self._last_error = {"type": type(error).__name__, "message": str(error)}
                raise error from None
            _LOGGER.debug(
                "%s %s failed (%s); attempt %d of %d in %.2f s",
                call.method,
                path,
                type(error).__name__,
                attempt + 1,
                call.retry.attempts,
                delay,
            )
            await asyncio.sleep(delay)

    @asynccontextmanager
    async def _send(self, call: _Call) -> AsyncIterator[aiohttp.ClientResponse]:
        """:meth:`_open` as a context manager: the response is released however it exits."""
        resp = await self._open(call)
        try:
            yield resp
        except TRANSPORT_ERRORS as err:
            # Failures while the caller reads the body are translated too.
            if isinstance(err, OctoEverywhereError):
                raise
            raise transport_error(err, call.method, display_path(resp.url)) from None
        finally:
            resp.release()

    def _call(
        self,
        method: str,
        path: str | URL,
        *,
        target: Target = Target.PRINTER,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        json: Any = _MISSING,
        data: Any = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        stream: bool = False,
        retry: RetryPolicy | None = None,
        idempotent: bool | None = None,
        allow_redirects: bool = True,
        raise_for_status: bool = True,
    ) -> _Call:
        method = method.upper()
        if not method or not set(method) <= _TOKEN_CHARS:
            raise InvalidArgumentError(f"invalid HTTP method {method!r}")
        if json is not _MISSING and data is not None:
            raise InvalidArgumentError("pass json or data, not both")
        default_timeout = self._client.stream_timeout if stream else self._client.timeout
        return _Call(
            method=method,
            target=target,
            path=path,
            params=params,
            headers=headers,
            json=json,
            data=data,
            timeout=as_timeout(timeout, default_timeout),
            retry=retry if retry is not None else self._client.retry,
            idempotent=method in IDEMPOTENT_METHODS if idempotent is None else idempotent,
            allow_redirects=allow_redirects,
            raise_for_status=raise_for_status,
        )

    def request(
        self,
        method: str,
        path: str | URL,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        json: Any = _MISSING,
        data: Any = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        stream: bool = False,
        retry: RetryPolicy | None = None,
        idempotent: bool | None = None,
        allow_redirects: bool = True,
        raise_for_status: bool = True,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """Send a request to the printer's own API through the relay.

        Use as ``async with printer.request("GET", "/api/job") as resp: ...``. The response
        is released when the block exits, however it exits.

        Args:
            method: HTTP method.
            path: the printer path (``/api/job``), joined beneath the App Connection URL;
                an absolute URL must be on the printer's origin.
            params: query parameters (merged with any in ``path``).
            headers: extra headers for this request only.
            json: a JSON body (mutually exclusive with ``data``).
            data: a body as aiohttp accepts it, or a zero-argument callable returning a
                fresh body for each attempt (which makes a stream body retryable).
            timeout: seconds or ``ClientTimeout``; default: the client's.
            stream: use the client's stream timeout (no total limit) by default.
            retry: override the client's :class:`RetryPolicy` for this request.
            idempotent: force (True) or forbid (False) retries regardless of the method;
                POST is retried only with ``idempotent=True``.
            allow_redirects: follow redirects (credentials never follow to another origin).
            raise_for_status: raise :class:`~oe_async.PrinterHTTPError` for 4xx/5xx.
                OctoEverywhere's 6xx codes always raise their :class:`~oe_async.RelayError`.

        Raises:
            RelayError: 600-699 from OctoEverywhere.
            PrinterHTTPError: the printer answered 4xx/5xx.
            CommunicationError: network failure; RequestTimeoutError for timeouts.
            InvalidArgumentError: bad arguments (nothing is sent).

        """
        call = self._call(
            method,
            path,
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
        return self._send(call)

    async def _json(self, call: _Call) -> Any:
        async with self._send(call) as resp:
            return await read_json(resp, call.method)

    async def get_json(
        self,
        path: str | URL,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """GET a printer path and decode its JSON body (None for an empty body)."""
        call = self._call("GET", path, params=params, headers=headers, timeout=timeout, retry=retry)
        return await self._json(call)

    async def post_json(
        self,
        path: str | URL,
        json: Any = None,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """POST a JSON body to a printer path and decode the JSON answer (None if empty)."""
        call = self._call(
            "POST",
            path,
            params=params,
            headers=headers,
            json=json,
            timeout=timeout,
            retry=retry,
            idempotent=idempotent,
        )
        return await self._json(call)

    async def _app_api(
        self, method: str, path: str, *, json: Any = _MISSING, idempotent: bool | None = None
    ) -> Any:
        """Call an App API (``AppToken`` header) on the shared session and decode its JSON."""
        call = self._call(method, path, target=Target.APP_API, json=json, idempotent=idempotent)
        return await self._json(call)

    # ------------------------------------------------------------------ App APIs

    async def info(self) -> ConnectionInfo:
        """Fetch the App Connection's state and the account limits (Info API).

        The limits are remembered (:attr:`limits`) for the transfer pre-checks.

        Raises:
            AppConnectionNotFoundError, AppConnectionRevokedError: recreate the connection.
            SupporterPerksRequiredError: valid, but the owner lost Supporter Perks.
            AppAPIError: e.g. 400 when the App API rejects the request.

        """
        info = await app_api.get_info(self)
        self._limits = info.limits
        previous = self._router.lan_url
        self._router.learn_local_ip(info.local_ip)
        if self._router.lan_url != previous:
            self._auth = self._pin_secrets()
        return info

    async def create_live_link(
        self, expiration_hours: float = 24, *, end_when_print_complete: bool = False
    ) -> LiveLink:
        """Create a shareable Live Link to the printer.

        Args:
            expiration_hours: 1-17520 hours (ignored by the service when
                ``end_when_print_complete`` is true).
            end_when_print_complete: follow the current print and end with it.

        Raises:
            InvalidArgumentError: hours out of range (nothing is sent).
            NoActivePrintError: 613, ``end_when_print_complete`` with no active print.

        """
        return await app_api.create_live_link(
            self, expiration_hours, end_when_print_complete=end_when_print_complete
        )

    async def _limits_for_precheck(self) -> PrinterLimits | None:
        """The account limits for a transfer pre-check, fetched once with :meth:`info`.

        Relay errors (603/604/605...) propagate: the transfer would fail the same way. When
        the App API cannot be reached the pre-check is skipped (logged); the relay still
        enforces the limits with 607/608.
        """
        if self._router.route is Route.LAN:
            return None  # the account limits apply to the relay only
        if self._limits is not None:
            return self._limits
        if self._limits_lock is None:
            self._limits_lock = asyncio.Lock()
        async with self._limits_lock:
            if self._limits is None:
                try:
                    await self.info()
                except (CommunicationError, AppAPIError, UnexpectedResponseError) as err:
                    _LOGGER.debug("limits unavailable, skipping the pre-check: %s", err)
        return self._limits

    def diagnostics(self) -> dict[str, Any]:
        """Return a dict that is safe to paste into a bug report.

        Versions, route, limits, the last plugin status and the last error; every secret and
        the URL's unique subdomain are redacted.
        """
        return printer_diagnostics(self)

    async def gadget_status(self) -> GadgetStatus:
        """Gadget AI failure detection for the current print (App API).

        Poll at most every 10 s, only while printing and visible: :meth:`gadget_poller`
        does that for you.
        """
        return await app_api.gadget_status(self)

    def gadget_poller(
        self,
        on_status: Callable[[GadgetStatus], Awaitable[None] | None],
        *,
        is_visible: Callable[[], bool] = lambda: True,
        interval: float = 10.0,
        idle_interval: float = 60.0,
        max_idle_interval: float = 600.0,
    ) -> GadgetPoller:
        """Poll Gadget in the background as OctoEverywhere recommends (see ``GadgetPoller``)."""
        return GadgetPoller(
            self,
            on_status,
            is_visible=is_visible,
            interval=interval,
            idle_interval=idle_interval,
            max_idle_interval=max_idle_interval,
        )

    async def set_notification_webhook(
        self, url: str, event_types: Iterable[EventType | int] | None = None
    ) -> None:
        """Have OctoEverywhere POST this printer's notifications to ``url`` (https).

        ``url`` is stored and called exactly as given, query string included (put your
        routing and correlation keys there). ``event_types`` limits the events sent (None or
        empty: all). Replaces any previous webhook; call again at least every 180 days.
        """
        await app_api.set_notification_webhook(self, url, event_types)

    async def delete_notification_webhook(self) -> None:
        """Stop the notification webhook."""
        await app_api.delete_notification_webhook(self)

    async def test_notification_webhook(self) -> int:
        """Ask OctoEverywhere to call the webhook now; return the status code it answered."""
        return await app_api.test_notification_webhook(self)

    # ------------------------------------------------------------------ transfers

    async def upload(
        self,
        path: str,
        source: UploadSource,
        *,
        filename: str | None = None,
        field: str = "file",
        form: Mapping[str, FormValue] | None = None,
        raw: bool = False,
        method: str | None = None,
        progress: ProgressCallback | None = None,
        size: int | None = None,
        content_type: str | None = None,
        retry: bool = False,
        timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """Stream a file to the printer (never held whole in memory; file I/O off the loop).

        Args:
            path: the printer's upload endpoint, e.g. ``/api/files/local`` (OctoPrint),
                ``/server/files/upload`` (Moonraker).
            source: a file path (``str``/``Path``), ``bytes``, a binary file object, or an
                async iterable of ``bytes`` (an async generator is closed when the upload
                ends, early or not, so its ``finally`` blocks run at once).
            filename: the name sent in the form; default: the path's or file object's name
                (required for bytes and iterables in a multipart upload).
            field: the multipart field that carries the file.
            form: extra multipart fields (``{"select": True, "path": "folder"}``); booleans
                are sent as ``true``/``false``.
            raw: send the bytes as the request body instead of a multipart form.
            method: default ``POST`` (multipart) or ``PUT`` (raw).
            progress: ``progress(bytes_done, total_or_None)``, sync or async: at least every
                MiB, monotonic, and once at completion.
            size: the byte count of an iterable source, when known (enables the limit
                pre-check and ``Content-Length``); checked against what the source yields.
            content_type: the file part's (or raw body's) content type.
            retry: allow the retry policy to resend the upload; only for bytes or a path
                (a stream can be sent once: aiohttp would send 0 bytes and the server would
                answer 200).
            timeout: default: the client's stream timeout (no total limit).

        Returns:
            The decoded JSON answer, or the (already read) ``ClientResponse`` otherwise.

        Raises:
            UploadLimitError: the body is over the account's upload limit (checked before
                any byte is sent when the size is known; 608 from the relay otherwise).
            UploadSourceError: the source failed or changed size while being sent.
            InvalidArgumentError: a missing file, bad arguments (nothing is sent).

        """
        return await transfer.upload(
            self,
            path,
            source,
            filename=filename,
            field=field,
            form=form,
            raw=raw,
            method=method,
            progress=progress,
            size=size,
            content_type=content_type,
            retry=retry,
            timeout=timeout,
        )

    def download(
        self,
        path: str,
        *,
        progress: ProgressCallback | None = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> AbstractAsyncContextManager[DownloadStream]:
        """Stream a file from the printer: ``async with printer.download(p) as chunks``.

        ``chunks`` is an async iterator of ``bytes`` (also ``.total``, ``.received``,
        ``.headers``). The connection is released when the block exits, early or not.

        Raises:
            DownloadLimitError: ``Content-Length`` or the streamed count passes the
                account's download limit (607 from the relay maps too).

        """
        return transfer.download(
            self, path, progress=progress, params=params, headers=headers, timeout=timeout
        )

    async def download_to(
        self,
        path: str,
        dest: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
        resume: bool = True,
        params: Any = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
    ) -> Path:
        """Download to ``dest`` atomically; return ``dest`` as a ``Path``.

        Bytes go to a temporary file beside ``dest`` that is fsynced and renamed into place
        only on success: after any failure or cancellation ``dest`` is untouched and no
        temporary file remains. With ``resume`` (default), a connection that drops
        mid-body is resumed with ``Range``/``If-Range`` when the server supports ranges;
        the result is byte-identical.
        """
        return await transfer.download_to(
            self,
            path,
            dest,
            progress=progress,
            resume=resume,
            params=params,
            timeout=timeout,
        )

    # ------------------------------------------------------------------ webcams

    def frames(
        self,
        path: str | None = None,
        *,
        index: int | None = None,
        max_fps: float | None = None,
        reconnect: bool | ReconnectPolicy = False,
        read_timeout: float = 15.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> FrameStream:
        """Stream webcam frames: ``async with printer.frames() as frames: async for f in frames``.

        Args:
            path: the printer's MJPEG URL path (default ``/webcam/?action=stream``).
            index: use the printer-agnostic plugin API's webcam ``index`` instead of a path.
            max_fps: drop frames arriving faster than this (dropped frames are not copied).
            reconnect: renew the stream when the relay ends it (each lasts at most the
                account's ``max_webcam_stream_seconds``), with backoff on 609 and on
                temporary failures; ``True`` or a :class:`~oe_async.ReconnectPolicy`.
            read_timeout: seconds each read may wait for data (there is no total limit).
            max_frame_size: the largest frame accepted (:class:`~oe_async.MJPEGError`).

        Frames carry continuous ``index`` values across renewals, ``received_at``,
        ``timestamp`` (``X-Timestamp``) and ``transform`` (``x-oe-webcam-transform``).

        """
        return webcam.frames(
            self,
            path,
            index=index,
            max_fps=max_fps,
            reconnect=reconnect,
            read_timeout=read_timeout,
            max_frame_size=max_frame_size,
        )

    async def snapshot(
        self,
        path: str | None = None,
        *,
        index: int | None = None,
        from_stream: bool = False,
        read_timeout: float = 15.0,
        max_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> Frame:
        """Fetch one webcam image as a :class:`~oe_async.Frame` (JPEG bytes in ``.data``).

        Args:
            path: the snapshot URL path (default ``/webcam/?action=snapshot``), or the
                stream's path when ``from_stream`` is true.
            index: use the plugin API's webcam ``index`` instead of a path.
            from_stream: take the first frame of an MJPEG stream instead.
            read_timeout: seconds each read may wait for data.
            max_size: the largest image accepted (:class:`~oe_async.MJPEGError`).

        """
        return await webcam.snapshot(
            self,
            path,
            index=index,
            from_stream=from_stream,
            read_timeout=read_timeout,
            max_size=max_size,
        )

    async def webcams(self) -> WebcamList:
        """The printer's webcams from the plugin API (name, flips, rotation, URLs, default).

        Raises:
            PluginCommandError: the plugin answered a failure ``Status``.

        """
        return await plugin_api.webcams(self)

    # ------------------------------------------------------------------ WebSockets

    def websocket(
        self,
        path: str,
        *,
        protocols: tuple[str, ...] = (),
        heartbeat: float | None = _ws.DEFAULT_HEARTBEAT,
        receive_timeout: float | None = None,
        handshake_timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        max_msg_size: int = 4 * 1024 * 1024,
    ) -> AbstractAsyncContextManager[PrinterWebSocket]:
        """Open a WebSocket: ``async with printer.websocket("/websocket") as ws``.

        OctoPrint pushes on ``/sockjs/websocket``, Moonraker speaks JSON-RPC on
        ``/websocket``. The handshake carries the relay credentials (and printer-level
        headers) only to their origin, on every redirect hop, on owned and borrowed
        sessions alike.

        Raises:
            RelayError: a 6xx answer to the handshake, or a 6xx close code later.
            PrinterHTTPError: the printer refused the upgrade (e.g. 404).
            CommunicationError: the connection failed.

        """
        return _ws.open_websocket(
            self,
            path,
            protocols=protocols,
            heartbeat=heartbeat,
            receive_timeout=receive_timeout,
            handshake_timeout=handshake_timeout,
            headers=headers,
            max_msg_size=max_msg_size,
        )

    def subscribe(
        self,
        path: str,
        on_message: MessageHandler,
        *,
        hello: Hello | None = None,
        on_state: StateHandler | None = None,
        reconnect: ReconnectPolicy | None = None,
        heartbeat: float | None = _ws.DEFAULT_HEARTBEAT,
        headers: Mapping[str, str] | None = None,
    ) -> Subscription:
        """Keep a WebSocket open in the background and hand every message to ``on_message``.

        Args:
            path: the WebSocket path.
            on_message: called (sync or async) with each TEXT/BINARY ``aiohttp.WSMessage``.
            hello: sent after every (re)connect: text, bytes, a JSON-able object, or an
                async callable that receives the :class:`PrinterWebSocket`.
            on_state: called with a :class:`SubscriptionEvent` on connected, reconnected,
                disconnected and stopped: map it to your entity's availability.
            reconnect: backoff and give-up rule; default: capped full-jitter backoff from
                1 s to 60 s, never giving up on temporary errors.
            heartbeat: WebSocket ping interval in seconds.
            headers: extra handshake headers.

        The task belongs to the client: it stops with ``OctoEverywhere.close()`` or
        ``Subscription.close()``, and on a permanent error (``wait()`` raises it). An
        exception from a callback also stops it and is raised by ``wait()``.

        """
        return _ws.Subscription(
            self,
            path,
            on_message,
            hello=hello,
            on_state=on_state,
            reconnect=reconnect or ReconnectPolicy(max_failures=None, max_delay=60.0),
            websocket_options={
                "protocols": (),
                "heartbeat": heartbeat,
                "receive_timeout": None,
                "handshake_timeout": 30.0,
                "headers": headers,
                "max_msg_size": 4 * 1024 * 1024,
            },
        )
