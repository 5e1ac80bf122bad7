"""What every printer of one client shares: the aiohttp session, the defaults, owned tasks.

:class:`Transport` owns or borrows one ``aiohttp.ClientSession`` and the background tasks
the library starts (LAN re-probes, subscriptions, Gadget pollers); it cancels them on close.
The request funnel (:mod:`oe_async._funnel`) is the only code that sends through it.
:class:`~oe_async.OctoEverywhere` is its public face.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any, Final

import aiohttp
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from yarl import URL

from .errors import ClientClosedError, InvalidArgumentError
from .retry import RetryPolicy

__all__ = ["DEFAULT_STREAM_TIMEOUT", "DEFAULT_TIMEOUT", "HANDSHAKE_AUTH", "Transport", "as_timeout"]

_LOGGER = logging.getLogger(__package__)

#: Ordinary requests: 30 s in all, 10 s to connect.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30, sock_connect=10)
#: Streams (downloads, webcams): no total limit, but every read must make progress in 30 s.
DEFAULT_STREAM_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)

#: How long close() lets open WebSockets finish their closing handshake (seconds).
WEBSOCKET_CLOSE_BOUND: Final = 0.5

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


class Transport:
    """The session, defaults and background tasks shared by every printer of one client.

    Args:
        app_id: the app id (User-Agent, 605 recovery URL).
        session: an aiohttp session to borrow; None to own one (created on first use).
        app_api_url: the validated base URL of the App APIs.
        timeout: default for ordinary requests.
        stream_timeout: default for streams.
        retry: the default retry policy.
        allow_insecure_loopback: whether plain http to loopback hosts was allowed.
        user_agent: the User-Agent header sent with every request.

    """

    def __init__(
        self,
        *,
        app_id: str,
        session: aiohttp.ClientSession | None,
        app_api_url: URL,
        timeout: aiohttp.ClientTimeout,
        stream_timeout: aiohttp.ClientTimeout,
        retry: RetryPolicy,
        allow_insecure_loopback: bool,
        user_agent: str,
    ) -> None:
        self.app_id: Final = app_id
        self.app_api_url: Final = app_api_url
        self.timeout: Final = timeout
        self.stream_timeout: Final = stream_timeout
        self.retry: Final = retry
        self.allow_insecure_loopback: Final = allow_insecure_loopback
        self.user_agent: Final = user_agent
        self.owns_session: Final = session is None
        self._session = session
        self._handshake_child: aiohttp.ClientSession | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # Responses being streamed and open WebSockets: close() ends them, so a stream in
        # progress stops at once (a borrowed session stays open; an owned one would not
        # wake every reader). Weak: a released response needs no bookkeeping.
        self._responses: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()
        self._websockets: weakref.WeakSet[aiohttp.ClientWebSocketResponse] = weakref.WeakSet()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session in use (created on first access when owned)."""
        if self._closed:
            raise ClientClosedError("This OctoEverywhere client is closed")
        if self._session is None:
            # raise_for_status stays off: the funnel decodes every status itself. The
            # session middleware only acts during WebSocket handshakes (HANDSHAKE_AUTH);
            # every other request passes its own middlewares, which replace it.
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, middlewares=(_handshake_middleware,)
            )
        elif self._session.closed:
            raise ClientClosedError("The aiohttp session given to OctoEverywhere is closed")
        return self._session

    def handshake_session(self) -> aiohttp.ClientSession:
        """The session for WebSocket handshakes: ours, or a child of a borrowed one.

        The child shares the borrowed session's connector (same pool, TLS and DNS setup)
        and adds the handshake middleware, so the borrowed session itself is untouched.
        """
        session = self.session
        if self.owns_session:
            return session
        if self._handshake_child is None or self._handshake_child.closed:
            self._handshake_child = aiohttp.ClientSession(
                connector=session.connector,
                connector_owner=False,
                timeout=self.timeout,
                middlewares=(_handshake_middleware,),
            )
        return self._handshake_child

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start a background task that is owned here and cancelled by :meth:`close`.

        Raises:
            ClientClosedError: the client is closed (the coroutine is closed unstarted).

        """
        if self._closed:
            coro.close()
            raise ClientClosedError("This OctoEverywhere client is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def track(self, stream: aiohttp.ClientResponse | aiohttp.ClientWebSocketResponse) -> None:
        """Remember an open response or WebSocket so that :meth:`close` ends it."""
        if isinstance(stream, aiohttp.ClientWebSocketResponse):
            self._websockets.add(stream)
        else:
            self._responses.add(stream)

    async def close(self) -> None:
        """End everything in progress, cancel the background tasks, close an owned session.

        Open responses are closed (their readers fail at once) and open WebSockets get
        :data:`WEBSOCKET_CLOSE_BOUND` seconds for a clean close; the features turn what
        their callers see into :class:`~oe_async.ClientClosedError`. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        for response in list(self._responses):
            response.close()
        closing = [asyncio.ensure_future(ws.close()) for ws in list(self._websockets)]
        if closing:
            _, late = await asyncio.wait(closing, timeout=WEBSOCKET_CLOSE_BOUND)
            for future in late:
                future.cancel()  # aiohttp then drops the connection
            await asyncio.gather(*closing, return_exceptions=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._handshake_child is not None:
            await self._handshake_child.close()  # never closes the borrowed connector
        if self.owns_session and self._session is not None:
            await self._session.close()
        _LOGGER.debug("OctoEverywhere client closed (%d background task(s) cancelled)", len(tasks))
