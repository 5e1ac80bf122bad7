"""The :class:`Transport`: the sessions, defaults and owned work every printer of a client shares.

It owns or borrows the aiohttp session (an owned one is two, one per connection pool, on
:class:`.keepalive.QuietConnector`), makes the child session for WebSocket handshakes on a
borrowed one, and composes the connection budget (:attr:`Transport.pools`) and the record of
what close() ends (:attr:`Transport.owned`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any, Final

import aiohttp
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from yarl import URL

from oe_async.errors import ClientClosedError
from oe_async.retry import RetryPolicy

from .budget import ConnectionBudget, Pool, Pools
from .keepalive import KeptAlive, QuietConnector
from .owned import Owned

_LOGGER = logging.getLogger("oe_async")

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


class Transport:
    """The session, defaults and background tasks shared by every printer of one client.

    Its parts: :attr:`pools` (what each connection pool holds, the bounded waits for room)
    and :attr:`owned` (the background tasks, open streams and waiting calls that
    :meth:`close` ends).

    Args:
        app_id: the app id (User-Agent, 605 recovery URL).
        session: an aiohttp session to borrow; None to own one (created on first use).
        app_api_url: the validated base URL of the App APIs.
        timeout: default for ordinary requests.
        stream_timeout: default for streams.
        retry: the default retry policy.
        allow_insecure_loopback: whether plain http to loopback hosts was allowed.
        user_agent: the User-Agent header sent with every request.
        budget: the connection pools' sizes and the longest wait for a connection.
        precheck_limits: whether transfers are checked against the account limits first.
        ssl_context: the owned session's TLS settings (trust store); None: the system's.

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
        budget: ConnectionBudget | None = None,
        precheck_limits: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app_id: Final = app_id
        self.app_api_url: Final = app_api_url
        self.timeout: Final = timeout
        self.stream_timeout: Final = stream_timeout
        self.retry: Final = retry
        self.allow_insecure_loopback: Final = allow_insecure_loopback
        self.user_agent: Final = user_agent
        self.owns_session: Final = session is None
        self.budget: Final = budget if budget is not None else ConnectionBudget()
        self.precheck_limits: Final = precheck_limits
        self.ssl_context: Final = ssl_context
        #: The background tasks, open streams and waiting calls that :meth:`close` ends.
        self.owned: Final = Owned()
        #: What oe_async holds of each connection pool; every wait for room is bounded.
        self.pools: Final = Pools(
            self.budget,
            owns_session=self.owns_session,
            connector_limit=self._connector_limit,
            streams=self.owned,
        )
        self._kept_alive = KeptAlive(self.budget.max_idle)
        self._session = session
        self._stream_session: aiohttp.ClientSession | None = None
        self._handshake_child: aiohttp.ClientSession | None = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self.owned.closed

    @property
    def sessions(self) -> tuple[aiohttp.ClientSession, ...]:
        """The borrowed session, or the owned ones created so far (none is created here).

        A borrowed session's handshake child shares its connector, so it is not listed.
        """
        return tuple(s for s in (self._session, self._stream_session) if s is not None)

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        # raise_for_status stays off: the funnel decodes every status itself. The session
        # middleware only acts during WebSocket handshakes (HANDSHAKE_AUTH); every other
        # request passes its own middlewares, which replace it. No cookie jar: nothing a
        # relay, a LAN device or the App API sets can reach another origin (or plain http).
        return aiohttp.ClientSession(
            connector=self._new_connector(limit),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=self.timeout,
            middlewares=(_handshake_middleware,),
        )

    def _new_connector(self, limit: int) -> QuietConnector:
        # Both owned sessions share one record of their idle connections (max_idle counts
        # both pools together).
        return QuietConnector(
            self._kept_alive,
            limit=limit,
            limit_per_host=0,
            keepalive_timeout=self.budget.keepalive,
            ssl=self.ssl_context if self.ssl_context is not None else True,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session in use (created on first access when owned).

        For an owned session this is the one for ordinary requests; streams use a second
        one with its own pool (:attr:`stream_session`).
        """
        if self.owned.closed:
            raise ClientClosedError("This OctoEverywhere client is closed")
        if self._session is None:
            self._session = self._new_session(self.budget.requests)
        elif self._session.closed:
            raise ClientClosedError("The aiohttp session given to OctoEverywhere is closed")
        return self._session

    @property
    def stream_session(self) -> aiohttp.ClientSession:
        """The session for long-lived streams: an owned pool of its own, or the borrowed one."""
        session = self.session
        if not self.owns_session:
            return session
        if self._stream_session is None:
            self._stream_session = self._new_session(self.budget.streams)
        return self._stream_session

    def session_for(self, pool: Pool) -> aiohttp.ClientSession:
        """The session whose pool ``pool`` names."""
        return self.stream_session if pool is Pool.STREAMS else self.session

    def handshake_session(self) -> aiohttp.ClientSession:
        """The session for WebSocket handshakes: our stream session, or a child of a borrowed one.

        The child shares the borrowed session's connector (same pool, TLS and DNS setup)
        and adds the handshake middleware, so the borrowed session itself is untouched.
        """
        session = self.session
        if self.owns_session:
            return self.stream_session
        if self._handshake_child is None or self._handshake_child.closed:
            # Same connector (pool, TLS, DNS) and the same proxy choice as the borrowed
            # session, so a handshake takes the route its HTTP requests take.
            self._handshake_child = aiohttp.ClientSession(
                connector=session.connector,
                connector_owner=False,
                timeout=self.timeout,
                middlewares=(_handshake_middleware,),
                trust_env=session.trust_env,
                proxy=_session_proxy(session),
                proxy_auth=_session_proxy_auth(session),
            )
        return self._handshake_child

    def _connector_limit(self) -> int:
        """The borrowed session's connector limit (0: unlimited)."""
        connector = self.session.connector
        return connector.limit if connector is not None else 0

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start a background task that :meth:`close` cancels (see :meth:`Owned.spawn`).

        Raises:
            ClientClosedError: the client is closed (the coroutine is closed unstarted).

        """
        return self.owned.spawn(coro, name=name)

    async def close(self) -> None:
        """End everything in progress, cancel the background tasks, close an owned session.

        Calls waiting for a connection or an answer end at once with
        :class:`oe_async.ClientClosedError` (on a borrowed session too, where the
        connections stay open: they are the session owner's). Open responses are closed
        (their readers fail at once) and open WebSockets get
        :data:`.owned.WEBSOCKET_CLOSE_BOUND` seconds for a clean close; the features turn
        what their callers see into :class:`oe_async.ClientClosedError`.

        Idempotent. A second caller waits for the first close() to finish. Called from a
        task the client runs (a subscription's or a poller's callback), it closes
        everything else and returns; that task stops when the callback returns. The work
        runs in a task of its own: a caller cancelled meanwhile does not leave it half done.
        """
        await self.owned.close(self._close_sessions)

    async def _close_sessions(self) -> None:
        if self._handshake_child is not None:
            await self._handshake_child.close()  # never closes the borrowed connector
        if self._stream_session is not None:
            await self._stream_session.close()
        if self.owns_session and self._session is not None:
            await self._session.close()


# aiohttp keeps a session's own ``proxy=``/``proxy_auth=`` with no public accessor; read
# them (None if a later aiohttp renames them: tests/test_close.py pins the behaviour).
def _session_proxy(session: aiohttp.ClientSession) -> str | URL | None:
    value = getattr(session, "_default_proxy", None)
    return value if isinstance(value, str | URL) else None


def _session_proxy_auth(session: aiohttp.ClientSession) -> aiohttp.BasicAuth | None:
    value = getattr(session, "_default_proxy_auth", None)
    return value if isinstance(value, aiohttp.BasicAuth) else None
