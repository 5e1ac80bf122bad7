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
import json as jsonlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import attrs
from multidict import CIMultiDict
from yarl import URL

from . import app_api
from .auth import AuthMiddleware, Origin, origin_of, redact_url
from .client import as_timeout
from .errors import (
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    RequestTimeoutError,
    UnexpectedResponseError,
    http_error,
    is_relay_status,
)
from .retry import IDEMPOTENT_METHODS, RetryPolicy

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from .client import OctoEverywhere
    from .models import AppConnection, ConnectionInfo, LiveLink, PrinterLimits

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

    PRINTER = "printer"
    APP_API = "app_api"


class _Missing(enum.Enum):
    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING


def join_url(base: URL, path: str | URL) -> URL:
    """Join ``path`` beneath ``base`` with yarl; refuse anything that leaves base's origin.

    ``path`` may start with ``/`` (it is still taken below ``base``'s path), carry a query
    string, or be an absolute URL on the same origin.
    """
    if isinstance(path, URL):
        target = path
    elif isinstance(path, str):
        if path.startswith("//"):
            raise InvalidArgumentError("path must not start with '//' (a network-path reference)")
        target = URL(path)
    else:
        raise InvalidArgumentError(f"path must be a str or yarl.URL, not {type(path).__name__}")
    if target.absolute:
        if origin_of(target) != origin_of(base):
            raise InvalidArgumentError(
                "absolute URL is not on this printer's origin; refusing to send credentials"
            )
        return target
    if target.scheme:  # "a:b" parsed as scheme "a": it was meant as a relative path
        target = URL("./" + str(path))
    # "./" keeps a first segment containing ':' from reading as a scheme.
    relative = target.raw_path.lstrip("/")
    rel = URL.build(path="./" + relative, query_string=target.raw_query_string, encoded=True)
    return base.join(rel)


def _display_path(url: URL) -> str:
    """The part of a URL that is safe in messages and logs: its path, no host or query."""
    return url.path or "/"


_TRANSPORT_MESSAGES: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (aiohttp.TooManyRedirects, "too many redirects"),
    (aiohttp.ClientPayloadError, "the response body was cut short or malformed"),
    (aiohttp.ServerDisconnectedError, "the server closed the connection"),
    (aiohttp.InvalidURL, "the URL is not valid"),
)


def _transport_error(err: BaseException, method: str, path: str) -> CommunicationError:
    """Describe a network failure without the URL (aiohttp's messages contain the host)."""
    what = f"{method} {path}"
    if isinstance(err, TimeoutError):  # includes aiohttp's ServerTimeoutError family
        return RequestTimeoutError(f"{what} timed out ({type(err).__name__})")
    if isinstance(err, aiohttp.ClientConnectorError):
        return CommunicationError(f"{what}: cannot connect ({_os_reason(err.os_error)})")
    for cls, message in _TRANSPORT_MESSAGES:
        if isinstance(err, cls):
            return CommunicationError(f"{what}: {message}")
    if isinstance(err, OSError):
        return CommunicationError(f"{what} failed ({_os_reason(err)})")
    return CommunicationError(f"{what} failed ({type(err).__name__})")


def _os_reason(err: OSError) -> str:
    """The errno's generic text ("Connection refused").

    Never ``strerror``: asyncio fills it with the peer address.
    """
    if err.errno:
        return os.strerror(err.errno)
    return type(err).__name__


TRANSPORT_ERRORS: Final = (aiohttp.ClientError, TimeoutError, OSError)


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read at most ``limit`` bytes of a body; a failure mid-way returns what arrived."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < limit:
            chunk = await resp.content.read(limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except TRANSPORT_ERRORS:
        pass
    return b"".join(chunks)


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
    ) -> None:
        self._client = client
        self._app_connection = app_connection
        printer_headers = self._printer_headers(app_connection, headers)
        pins: dict[Origin, dict[str, str]] = {}
        pins.setdefault(origin_of(app_connection.url), {}).update(
            {"Authorization": app_connection.auth.header_value, **printer_headers}
        )
        pins.setdefault(origin_of(client.app_api_url), {})["AppToken"] = app_connection.app_token
        self._auth: Final = AuthMiddleware(pins)
        self._limits: PrinterLimits | None = None

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

    # ------------------------------------------------------------------ the funnel

    def _url_for(self, call: _Call) -> URL:
        if call.target is Target.APP_API:
            return join_url(self._client.app_api_url, call.path)
        return join_url(self._app_connection.url, call.path)

    def _headers_for(self, call: _Call) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict(call.headers or {})
        headers.setdefault("User-Agent", self._client.user_agent)
        return headers

    @asynccontextmanager
    async def _send(self, call: _Call) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send ``call`` (with retries) and yield the successful response; always release it."""
        session = self._client.session
        headers = self._headers_for(call)
        retryable_request = call.idempotent and call.replayable
        attempt = 0
        while True:
            attempt += 1
            url = self._url_for(call)
            path = _display_path(url)
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
                error: OctoEverywhereError = _transport_error(err, call.method, path)
            else:
                status = resp.status
                if status < 400 or not (call.raise_for_status or is_relay_status(status)):
                    break
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
            if not (
                retryable_request
                and attempt < call.retry.attempts
                and RetryPolicy.is_retryable_error(error)
            ):
                _LOGGER.debug("%s %s failed: %s", call.method, path, error)
                raise error from None
            delay = call.retry.delay(attempt, error)
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

        _LOGGER.debug("%s %s -> %d", call.method, path, resp.status)
        try:
            yield resp
        except TRANSPORT_ERRORS as err:
            # Failures while the caller reads the body are translated too.
            if isinstance(err, OctoEverywhereError):
                raise
            raise _transport_error(err, call.method, path) from None
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


async def read_json(resp: aiohttp.ClientResponse, method: str) -> Any:
    """Decode a response body as JSON; an empty body is None, anything else must parse."""
    body = await resp.read()
    if not body.strip():
        return None
    try:
        return jsonlib.loads(body)
    except ValueError:
        content_type = resp.headers.get("Content-Type", "no content type")
        raise UnexpectedResponseError(
            f"{method} {_display_path(resp.url)} answered a body that is not JSON "
            f"({content_type.split(';')[0]})"
        ) from None
