"""``OctoEverywhere``: the session factory that owns or borrows one aiohttp session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import aiohttp
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from yarl import URL

from .errors import InvalidArgumentError, OctoEverywhereError
from .models import AppConnection, check_base_url
from .portal import check_app_id
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .connection import PrinterConnection
    from .routing import RoutePolicy, RoutingOptions

__all__ = ["DEFAULT_APP_API_URL", "DEFAULT_STREAM_TIMEOUT", "DEFAULT_TIMEOUT", "OctoEverywhere"]

_LOGGER = logging.getLogger(__package__)

#: The printer auth for a WebSocket handshake in progress. ``ws_connect`` takes no
#: per-request middlewares, so the sessions oe_async uses for handshakes carry one session
#: middleware that applies whatever this holds, on every hop of the handshake.
HANDSHAKE_AUTH: Final[ContextVar[ClientMiddlewareType | None]] = ContextVar(
    "oe_async_handshake_auth", default=None
)


async def _handshake_middleware(
    request: aiohttp.ClientRequest, handler: ClientHandlerType
) -> aiohttp.ClientResponse:
    auth = HANDSHAKE_AUTH.get()
    if auth is None:
        return await handler(request)
    return await auth(request, handler)


DEFAULT_APP_API_URL: Final = URL("https://octoeverywhere.com/")
#: Ordinary requests: 30 s in all, 10 s to connect.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30, sock_connect=10)
#: Streams (downloads, webcams): no total limit, but every read must make progress in 30 s.
DEFAULT_STREAM_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)


def as_timeout(
    value: float | aiohttp.ClientTimeout | None, default: aiohttp.ClientTimeout
) -> aiohttp.ClientTimeout:
    """Accept seconds (total), a ``ClientTimeout``, or None (the default)."""
    if value is None:
        return default
    if isinstance(value, aiohttp.ClientTimeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidArgumentError("timeout must be a positive number of seconds or ClientTimeout")
    return aiohttp.ClientTimeout(total=float(value))


class OctoEverywhere:
    """Entry point: one per app, shared by every printer the app talks to.

    Use it as an async context manager (or call :meth:`close`). It owns an aiohttp session
    that it creates on first use, or borrows the one you pass (a Home Assistant integration
    passes ``async_get_clientsession(hass)``): a borrowed session is never closed and
    nothing is written into its default headers; every secret travels in per-request
    middleware instead.

    Args:
        app_id: your OctoEverywhere app id (User-Agent, 605 recovery URL).
        session: an aiohttp session to borrow; None to own one.
        app_api_url: base of the App APIs (override for :mod:`oe_async.testing`).
        timeout: default for ordinary requests (seconds or ``ClientTimeout``).
        stream_timeout: default for streams (downloads, webcams); keep ``total=None``.
        retry: the default :class:`RetryPolicy` for every request.
        allow_insecure_loopback: accept an ``http://`` ``app_api_url`` on a loopback host.

    """

    def __init__(
        self,
        app_id: str,
        *,
        session: aiohttp.ClientSession | None = None,
        app_api_url: str | URL = DEFAULT_APP_API_URL,
        timeout: float | aiohttp.ClientTimeout | None = None,
        stream_timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        allow_insecure_loopback: bool = False,
    ) -> None:
        self.app_id: Final = check_app_id(app_id)
        self.app_api_url: Final = check_base_url(
            URL(str(app_api_url)),
            what="app_api_url",
            allow_insecure_loopback=allow_insecure_loopback,
        )
        self.timeout: Final = as_timeout(timeout, DEFAULT_TIMEOUT)
        self.stream_timeout: Final = as_timeout(stream_timeout, DEFAULT_STREAM_TIMEOUT)
        self.retry: Final = retry if retry is not None else RetryPolicy()
        self.allow_insecure_loopback: Final = allow_insecure_loopback
        self._session = session
        self._owns_session = session is None
        self._handshake_child: aiohttp.ClientSession | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        from . import __version__  # noqa: PLC0415 (package __init__ imports this module)

        self.user_agent: Final = f"oe-async/{__version__} (app {self.app_id})"

    def __repr__(self) -> str:
        owner = "owned" if self._owns_session else "borrowed"
        return f"<OctoEverywhere app_id={self.app_id!r} session={owner} closed={self._closed}>"

    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session in use (created on first access when owned)."""
        return self._ensure_session()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise OctoEverywhereError("This OctoEverywhere client is closed")
        if self._session is None:
            # raise_for_status stays off: the funnel decodes every status itself. The
            # session middleware only acts during WebSocket handshakes (HANDSHAKE_AUTH);
            # every other request passes its own middlewares, which replace it.
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, middlewares=(_handshake_middleware,)
            )
        elif self._session.closed:
            raise OctoEverywhereError("The aiohttp session given to OctoEverywhere is closed")
        return self._session

    def handshake_session(self) -> aiohttp.ClientSession:
        """The session for WebSocket handshakes: ours, or a child of a borrowed one.

        The child shares the borrowed session's connector (same pool, TLS and DNS setup)
        and adds the handshake middleware, so the borrowed session itself is untouched.
        """
        session = self._ensure_session()
        if self._owns_session:
            return session
        if self._handshake_child is None or self._handshake_child.closed:
            self._handshake_child = aiohttp.ClientSession(
                connector=session.connector,
                connector_owner=False,
                timeout=self.timeout,
                middlewares=(_handshake_middleware,),
            )
        return self._handshake_child

    def printer(
        self,
        app_connection: AppConnection,
        *,
        headers: Mapping[str, str] | None = None,
        lan_url: str | URL | None = None,
        route: RoutePolicy | str | None = None,
        routing: RoutingOptions | None = None,
    ) -> PrinterConnection:
        """Return a cheap per-printer connection (no I/O; thousands can share this client).

        Args:
            app_connection: the stored App Connection.
            headers: printer-level headers sent with every request to the printer, on the
                relay and on the LAN (e.g. ``{"X-Api-Key": key}``). They are pinned to the
                printer's origins like the relay credentials. The connection's
                ``octoprint_api_key``, when present, is sent as ``X-Api-Key`` unless this
                mapping sets that header.
            lan_url: the printer's LAN base URL (plain http allowed). Without it, the App
                Connection's ``local_ip`` gives ``http://<ip>/``.
            route: ``"prefer_local"`` (default when a LAN URL is known: use the LAN while it
                answers, the relay otherwise), ``"relay"`` (default otherwise) or ``"local"``.
            routing: probe timeout, re-probe interval and probe path for ``prefer_local``.

        """
        if not isinstance(app_connection, AppConnection):
            raise InvalidArgumentError("printer() needs an AppConnection")
        from .connection import PrinterConnection  # noqa: PLC0415 (connection imports us)

        return PrinterConnection(
            self, app_connection, headers=headers, lan_url=lan_url, route=route, routing=routing
        )

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start a background task that this client owns and cancels on close."""
        if self._closed:
            coro.close()
            raise OctoEverywhereError("This OctoEverywhere client is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel background tasks and close the session if this client created it.

        Safe to call more than once. A borrowed session is left open.
        """
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._handshake_child is not None:
            await self._handshake_child.close()  # never closes the borrowed connector
        if self._owns_session and self._session is not None:
            await self._session.close()
        _LOGGER.debug("OctoEverywhere client closed (%d background task(s) cancelled)", len(tasks))
