"""What every printer of one client shares: the aiohttp session, the defaults, owned tasks.

:class:`Transport` owns or borrows one ``aiohttp.ClientSession`` and the background tasks
the library starts (LAN re-probes, subscriptions, Gadget pollers); it cancels them on close.
The request funnel (:mod:`oe_async._funnel`) is the only code that sends through it.
:class:`oe_async.OctoEverywhere` is its public face.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import functools
import logging
import math
import select
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Final

import aiohttp
import attrs
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from aiohttp.client_proto import ResponseHandler
from aiohttp.connector import Connection
from yarl import URL

from .errors import ClientClosedError, ConnectionPoolExhaustedError, InvalidArgumentError
from .retry import IDEMPOTENT_METHODS, RetryPolicy

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_STREAM_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "HANDSHAKE_AUTH",
    "NO_CEIL",
    "ConnectionBudget",
    "Pool",
    "Transport",
    "as_timeout",
]

_LOGGER = logging.getLogger(__package__)

#: aiohttp rounds a timeout of more than ``ceil_threshold`` (5 s by default) up to the next
#: whole second of the loop's clock, so ``timeout=7`` could end at 8.0 s. Every timeout
#: oe_async hands aiohttp carries this instead: deadlines end when they say.
NO_CEIL: Final = math.inf
#: Ordinary requests: 30 s in all, 10 s to connect.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30, sock_connect=10, ceil_threshold=NO_CEIL)
#: Streams (downloads, webcams): no total limit, but every read must make progress in 30 s.
DEFAULT_STREAM_TIMEOUT: Final = aiohttp.ClientTimeout(
    total=None, sock_connect=10, sock_read=30, ceil_threshold=NO_CEIL
)

#: How long the owned session keeps an idle connection open (seconds). Apps poll every 5 to
#: 60 s (Home Assistant: 30 s): a connection must outlive a 60 s interval with room for
#: jitter, or every poll pays a new TCP and TLS handshake (aiohttp's default is 15 s). And it
#: stays under the 75 s after which nginx and aiohttp servers close an idle connection, so
#: on those the client, not the server, ends it, and never sends on a connection being closed.
DEFAULT_KEEPALIVE: Final = 70.0

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
    """Accept seconds (total), a ``ClientTimeout``, or None (the default).

    The result never lets aiohttp round its timeouts up to whole seconds (:data:`NO_CEIL`).
    """
    if value is None:
        return default
    if isinstance(value, aiohttp.ClientTimeout):
        if value.ceil_threshold == NO_CEIL:
            return value
        return attrs.evolve(value, ceil_threshold=NO_CEIL)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < math.inf  # NaN fails both
    ):
        raise InvalidArgumentError("timeout must be a positive number of seconds or ClientTimeout")
    return aiohttp.ClientTimeout(total=float(value), ceil_threshold=NO_CEIL)


def _positive_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"ConnectionBudget.{attribute.name} must be an integer >= 1")


def _non_negative_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"ConnectionBudget.{attribute.name} must be an integer >= 0")


def _positive_seconds(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"ConnectionBudget.{attribute.name} must be seconds > 0")


def _optional_count(_: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidArgumentError(
            f"ConnectionBudget.{attribute.name} must be None or an integer >= 0"
        )


@attrs.frozen(kw_only=True)
class ConnectionBudget:
    """How many connections oe_async may hold, and how long it waits for a free one.

    Long-lived streams (webcam ``frames()``, downloads in flight, WebSockets and
    subscriptions) hold a connection for minutes or hours, so they never share a pool with
    ordinary requests without a bound:

    * **Owned session** (``OctoEverywhere(session=None)``): two connection pools, one for
      ordinary requests (``requests`` connections) and one for streams (``streams``). A
      webcam wall can never take the connections a status poll needs.
    * **Borrowed session**: one pool, the session's (``TCPConnector(limit=...)``, 100 by
      default; Home Assistant's shared session allows 4096 in all and 100 per host).
      oe_async's streams may hold at most ``limit - reserve`` of it, so ``reserve``
      connections always stay free for requests.

    Every wait for a connection (streams included) ends after ``pool_timeout`` seconds
    with :class:`oe_async.ConnectionPoolExhaustedError`, naming the pool, its limit and how
    many connections were busy.

    The pools bound connections in use. Idle ones are kept for the next request to the same
    host (every printer has its own relay host) for ``keepalive`` seconds, so a printer
    polled every 5 to 60 s reuses one connection instead of a new TCP and TLS handshake per
    poll. Each idle TLS connection costs about 300 KiB of memory (most of it asyncio's read
    buffer) and a file descriptor: ``max_idle`` caps how many are kept, closing the least
    recently used first. Both apply to an owned session; a borrowed session's connector has
    its own (``TCPConnector(keepalive_timeout=...)``).

    Args:
        requests: owned session: connections for ordinary requests (default 100).
        streams: owned session: connections for long-lived streams (default 500).
        reserve: borrowed session: connections kept free for requests (default 10).
        pool_timeout: the longest wait for a free connection, in seconds (default 10).
        keepalive: owned session: seconds an idle connection is kept open (default 70).
        max_idle: owned session: most idle connections kept open, both pools together
            (default None: no cap beyond ``keepalive``; 0 keeps none).

    """

    requests: int = attrs.field(default=100, validator=_positive_int)
    streams: int = attrs.field(default=500, validator=_positive_int)
    reserve: int = attrs.field(default=10, validator=_non_negative_int)
    pool_timeout: float = attrs.field(default=10.0, validator=_positive_seconds)
    keepalive: float = attrs.field(default=DEFAULT_KEEPALIVE, validator=_positive_seconds)
    max_idle: int | None = attrs.field(default=None, validator=_optional_count)


class Pool(enum.Enum):
    """Which connection pool a request uses."""

    REQUESTS = "requests"  # answered and released within the call
    STREAMS = "streams"  # held by the caller (webcams, downloads, WebSockets)


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
        self._kept_alive = _KeptAlive(self.budget.max_idle)
        self._session = session
        self._stream_session: aiohttp.ClientSession | None = None
        # Requests being sent or read, and streams being opened: with the tracked streams
        # below, what oe_async holds of each pool (for the pool-exhausted error).
        # Indexed by ``pool is Pool.STREAMS``: an Enum key would hash in Python code.
        self._in_flight: list[int] = [0, 0]
        self._gate: _Gate | None = None
        self._pool_wait_cache: dict[aiohttp.ClientTimeout, aiohttp.ClientTimeout] = {}
        self._handshake_child: aiohttp.ClientSession | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # Responses being streamed and open WebSockets: close() ends them, so a stream in
        # progress stops at once (a borrowed session stays open; an owned one would not
        # wake every reader). Weak: a released response needs no bookkeeping.
        self._responses: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()
        self._stream_responses: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()
        self._websockets: weakref.WeakSet[aiohttp.ClientWebSocketResponse] = weakref.WeakSet()
        #: Responses of the requests pool that the funnel releases itself (``json()``,
        #: ``send()``), which close() closes: a plain set (the funnel adds and discards in
        #: ``finally``), as adding to a WeakSet costs a weak reference with a callback.
        self.held: Final[set[aiohttp.ClientResponse]] = set()
        #: The tasks waiting inside a funnel call now (for a free connection, a connect, an
        #: answer's headers, a retry's back-off): close() interrupts them, so a call on a
        #: dead link or a silent relay ends with the client (see :meth:`enter_call`).
        self.waiting: Final[set[asyncio.Task[Any]]] = set()
        # Those of them close() cancelled: their CancelledError is close()'s, not the caller's.
        self._interrupted: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        # The close() in progress (a task of its own, so that it finishes whoever waits for
        # it) and the task that called it first, if one of ours (never waited for).
        self._closer: asyncio.Task[None] | None = None
        self._closed_from: asyncio.Task[Any] | None = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

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

    def _new_connector(self, limit: int) -> _QuietConnector:
        # Both owned sessions share one record of their idle connections (max_idle counts
        # both pools together).
        return _QuietConnector(
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
        if self._closed:
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

    @property
    def sessions(self) -> tuple[aiohttp.ClientSession, ...]:
        """The borrowed session, or the owned ones created so far (none is created here).

        A borrowed session's handshake child shares its connector, so it is not listed.
        """
        return tuple(s for s in (self._session, self._stream_session) if s is not None)

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

    # ------------------------------------------------------------------ the connection budget

    def _live_streams(self) -> int:
        return sum(1 for r in list(self._stream_responses) if not r.closed) + sum(
            1 for ws in list(self._websockets) if not ws.closed
        )

    def busy(self, pool: Pool) -> int:
        """How many connections of ``pool`` oe_async holds or is acquiring now."""
        held = self._live_streams() if pool is Pool.STREAMS else 0
        return held + self._in_flight[pool is Pool.STREAMS]

    def limit(self, pool: Pool) -> int | None:
        """How many connections ``pool`` may hold (None: unlimited).

        For a borrowed session both pools are its one pool; streams may use all but
        :attr:`ConnectionBudget.reserve` of it.
        """
        if self.owns_session:
            return self.budget.streams if pool is Pool.STREAMS else self.budget.requests
        connector = self.session.connector
        total = connector.limit if connector is not None else 0
        if not total:
            return None
        if pool is Pool.STREAMS:
            return max(1, total - self.budget.reserve)
        return total

    def exhausted(self, pool: Pool, waited: float) -> ConnectionPoolExhaustedError:
        """The error for a wait of ``waited`` seconds on a full ``pool``."""
        limit = self.limit(pool) or 0
        busy = self.busy(pool)
        if self.owns_session:
            where, name, whose = f"the {pool.value} pool", pool.value, ""
        else:
            name = "session"
            where = "the borrowed session's pool"
            if pool is Pool.STREAMS:
                where += f" (streams may use all but {self.budget.reserve} of it)"
            whose = " held by oe_async"
        return ConnectionPoolExhaustedError(
            f"no free connection after {waited:.1f} s: {where} allows {limit} "
            f"and {busy} were busy{whose}",
            pool=name,
            limit=limit,
            busy=busy,
        )

    def with_pool_wait(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
        """``timeout`` with its ``connect`` bound (pool wait + connect) filled in.

        Only a borrowed session needs it: an owned session's connectors are never asked
        for more connections than they hold (:meth:`acquire` waits, bounded, first).
        """
        if timeout.connect is not None or self.owns_session:
            return timeout
        cached = self._pool_wait_cache.get(timeout)
        if cached is not None:
            return cached
        if len(self._pool_wait_cache) > 64:
            self._pool_wait_cache.clear()
        cached = self._pool_wait_cache[timeout] = self._add_pool_wait(timeout)
        return cached

    def _add_pool_wait(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
        connect = self.budget.pool_timeout + (timeout.sock_connect or self.budget.pool_timeout)
        return attrs.evolve(timeout, connect=connect)

    def pool_full_error(
        self, pool: Pool, err: BaseException, elapsed: float
    ) -> ConnectionPoolExhaustedError | None:
        """The pool error when ``err`` came from waiting on a full pool, else None.

        aiohttp raises the same ``ConnectionTimeoutError`` for a slow connect and for a
        wait on its pool; the socket connect is bounded by ``sock_connect`` alone, so a
        connect timeout that took ``pool_timeout`` or longer was (also) a pool wait. This
        matters for a borrowed session, whose other users oe_async cannot count.
        """
        if not isinstance(err, aiohttp.ConnectionTimeoutError):
            return None
        if elapsed < self.budget.pool_timeout or self.limit(pool) is None:
            return None
        return self.exhausted(pool, elapsed)

    def try_acquire(self, pool: Pool) -> bool:
        """Take a request slot at once if one is free (no coroutine: the common case)."""
        if pool is Pool.REQUESTS:
            gate = self._gate if self._gate is not None else self._request_gate()
            if gate is None or gate.try_take():
                self._in_flight[0] += 1  # the requests pool's count
                return True
        return False

    async def acquire(self, pool: Pool, *, wait: float | None = None) -> None:
        """Count one request (or a stream being opened) against ``pool``; pair with :meth:`release`.

        The wait for room is bounded by :attr:`ConnectionBudget.pool_timeout` (or ``wait``,
        what is left of the call's deadline, when shorter), then
        :class:`oe_async.ConnectionPoolExhaustedError`. Requests take a slot of a gate
        sized to their pool (first come, first served); streams hold connections beyond
        the call, so their room is what the live streams leave.
        """
        if self.try_acquire(pool):
            return
        bound = self.budget.pool_timeout
        if wait is not None and wait < bound:
            bound = max(0.0, wait)
        if pool is Pool.STREAMS:
            await self._wait_for_stream_room(bound)
        else:
            gate = self._gate
            assert gate is not None  # noqa: S101 (try_acquire made it, or took the slot)
            if not await gate.take(bound):
                raise self.exhausted(pool, bound)
        self._in_flight[pool is Pool.STREAMS] += 1

    def release(self, pool: Pool) -> None:
        """Give back what :meth:`acquire` took."""
        self._in_flight[pool is Pool.STREAMS] -= 1
        if pool is Pool.REQUESTS and self._gate is not None:
            self._gate.give()

    @asynccontextmanager
    async def slot(self, pool: Pool, *, wait: float | None = None) -> AsyncIterator[None]:
        """:meth:`acquire` and :meth:`release` as a context manager."""
        await self.acquire(pool, wait=wait)
        try:
            yield
        finally:
            self.release(pool)

    def _request_gate(self) -> _Gate | None:
        if self._gate is None:
            limit = self.limit(Pool.REQUESTS)
            if limit is None:
                return None
            self._gate = _Gate(limit)
        return self._gate

    async def _wait_for_stream_room(self, bound: float) -> None:
        limit = self.limit(Pool.STREAMS)
        if limit is None or self.busy(Pool.STREAMS) < limit:
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        # Streams end whenever their readers let go, with no notification to hook: look
        # again every 50 ms. Only a full pool pays this, and only for pool_timeout.
        while self.busy(Pool.STREAMS) >= limit:
            if self._closed:
                raise ClientClosedError("This OctoEverywhere client is closed")
            waited = loop.time() - start
            if waited >= bound:
                raise self.exhausted(Pool.STREAMS, waited)
            await asyncio.sleep(min(0.05, bound - waited))

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

    def track(
        self,
        stream: aiohttp.ClientResponse | aiohttp.ClientWebSocketResponse,
        pool: Pool = Pool.REQUESTS,
    ) -> None:
        """Remember an open response or WebSocket so that :meth:`close` ends it.

        Responses of the stream pool (and every WebSocket) count against the stream
        allowance until they are released or closed.
        """
        if isinstance(stream, aiohttp.ClientWebSocketResponse):
            self._websockets.add(stream)
        else:
            self._responses.add(stream)
            if pool is Pool.STREAMS:
                self._stream_responses.add(stream)

    def enter_call(self) -> asyncio.Task[Any] | None:
        """Note that the current task waits inside a funnel call; pair with :meth:`leave_call`.

        Returns the task to pass to :meth:`leave_call` and :meth:`closed_the_call`, or
        None when the task is already inside one (a LAN probe within a call).
        """
        task = asyncio.current_task()
        waiting = self.waiting
        if task is None or task in waiting:
            return None
        waiting.add(task)
        return task

    def leave_call(self, task: asyncio.Task[Any] | None) -> None:
        """The task that :meth:`enter_call` returned has left the funnel call."""
        if task is not None:
            self.waiting.discard(task)

    def closed_the_call(self, task: asyncio.Task[Any] | None) -> bool:
        """On ``CancelledError`` inside a call: True when :meth:`close` sent it, and only it.

        The caller then raises :class:`oe_async.ClientClosedError` instead. A cancellation
        of the caller's own (before or after close()'s) always passes through.
        """
        if task is None or task not in self._interrupted:
            return False
        self._interrupted.discard(task)
        return task.uncancel() == 0

    async def close(self) -> None:
        """End everything in progress, cancel the background tasks, close an owned session.

        Calls waiting for a connection or an answer end at once with
        :class:`oe_async.ClientClosedError` (on a borrowed session too, where the
        connections stay open: they are the session owner's). Open responses are closed
        (their readers fail at once) and open WebSockets get :data:`WEBSOCKET_CLOSE_BOUND`
        seconds for a clean close; the features turn what their callers see into
        :class:`oe_async.ClientClosedError`.

        Idempotent. A second caller waits for the first close() to finish. Called from a
        task the client runs (a subscription's or a poller's callback), it closes
        everything else and returns; that task stops when the callback returns. The work
        runs in a task of its own: a caller cancelled meanwhile does not leave it half done.
        """
        current = asyncio.current_task()
        closer = self._closer
        if closer is None:
            self._closed = True
            self._closed_from = current if current in self._tasks else None
            closer = self._closer = asyncio.get_running_loop().create_task(
                self._close_all(current), name="oe_async close"
            )
        elif current in self._tasks and current is not self._closed_from:
            return  # a task this close() cancels: waiting for it would wait for ourselves
        await asyncio.shield(closer)

    async def _close_all(self, caller: asyncio.Task[Any] | None) -> None:
        # Calls still waiting (for a connect that is never answered, for headers a relay
        # never sends) in the callers' tasks: interrupt them; the funnel raises
        # ClientClosedError there. Our own tasks are cancelled below; the task that called
        # close() is left to finish it.
        for task in list(self.waiting):
            if task is caller or task in self._tasks or task.done() or task.cancelling():
                continue
            self._interrupted.add(task)
            task.cancel()
        for response in [*self._responses, *self.held]:
            response.close()
        closing = [asyncio.ensure_future(ws.close()) for ws in list(self._websockets)]
        if closing:
            _, late = await asyncio.wait(closing, timeout=WEBSOCKET_CLOSE_BOUND)
            for future in late:
                future.cancel()  # aiohttp then drops the connection
            await asyncio.gather(*closing, return_exceptions=True)
        tasks = [task for task in self._tasks if task is not caller]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._handshake_child is not None:
            await self._handshake_child.close()  # never closes the borrowed connector
        if self._stream_session is not None:
            await self._stream_session.close()
        if self.owns_session and self._session is not None:
            await self._session.close()
        _LOGGER.debug("OctoEverywhere client closed (%d background task(s) cancelled)", len(tasks))


class _Gate:
    """A counting gate with a synchronous fast path and first-come, first-served waiters.

    ``asyncio.Semaphore`` has no way to take a free slot without a coroutine; on the path of
    every small request that costs more than the rest of the bookkeeping together.
    """

    __slots__ = ("_waiters", "limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_take(self) -> bool:
        """Take a slot if one is free and nobody is queued before us."""
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return True
        return False

    async def take(self, bound: float) -> bool:
        """Wait at most ``bound`` seconds for a slot; False when none came."""
        if self.try_take():
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(bound):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as time ran out: pass it on
            return False
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give()  # cancelled after being handed a slot: pass it on
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return True

    def give(self) -> None:
        """Give a slot back: straight to the first waiter still waiting, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; ``used`` is unchanged
                return
        self.used -= 1


class _QuietConnector(aiohttp.TCPConnector):
    """A connector that never sends on a pooled connection which heard something while idle.

    aiohttp hands a kept-alive connection to the next request even when bytes arrived on
    it while it sat in the pool: an unsolicited response (a stray ``408`` from a proxy or a
    server timing the connection out) is then read as the next request's answer, and every
    later answer on that connection is off by one. Such a connection reports
    ``should_close`` (it holds buffered data); drop it and take another.

    Nor does it send on a pooled connection the server has closed when the event loop has
    not read the close yet (a busy loop, or the close arriving just now): see
    :class:`_KeptAlive`. The request then goes out on another connection, and nothing of it
    was sent on the dead one, so this is safe for any method. Public API only: ``connect()``,
    ``Connection.protocol`` and ``add_callback()``, ``ResponseHandler.should_close``,
    ``is_connected()`` and ``close()``, the transport's ``socket`` extra.
    """

    def __init__(self, kept_alive: _KeptAlive, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kept_alive = kept_alive

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        """A pooled connection with nothing unread on it, or a new one."""
        kept_alive = self._kept_alive
        for _ in range(_MAX_STALE):
            conn = await super().connect(req, traces, timeout)
            protocol = conn.protocol
            if protocol is None:
                return conn
            if protocol.should_close:
                _LOGGER.debug("dropping a pooled connection that received data while idle")
            elif kept_alive.usable(conn, protocol, req.method):
                return conn
            else:
                _LOGGER.debug("dropping a pooled connection that the server has closed")
            conn.close()
        conn = await super().connect(req, traces, timeout)
        if conn.protocol is not None:
            kept_alive.track(conn, conn.protocol)
        return conn


#: Idle connections with stray data dropped before one connect() gives up looking.
_MAX_STALE: Final = 8
#: A connection handed out again after this many seconds is looked at before use, whatever
#: the method (sooner, only for methods aiohttp does not re-send on a dropped connection).
_LOOK_AFTER: Final = 1.0
#: Connections remembered before the first sweep of closed ones (then twice the live ones).
_SWEEP_MIN: Final = 256
_monotonic: Final = time.monotonic
#: ``select.poll`` (none on Windows: there the look is skipped, aiohttp's own check stays).
_POLL: Final[Any] = getattr(select, "poll", None)


class _KeptAlive:
    """What the owned sessions' connectors know of their kept-alive connections.

    **Stale connections.** A server closes an idle connection on its own schedule; aiohttp
    skips a pooled connection once the event loop has read the close, but on a busy loop,
    or when the close arrives just before a request, it sends on it. The server never
    reads that request; the client sees ``ServerDisconnectedError``, and only an idempotent
    request is re-sent (by aiohttp, once). So a connection is looked at before it is handed
    out again: after :data:`_LOOK_AFTER` seconds, and always for a method that would not be
    re-sent. A zero-timeout ``poll()`` of its socket (no wait, no read) shows whether the
    server's close (or anything else) has arrived unread; then it is dropped before a byte
    is written, and the request takes another connection. A close still on the wire when
    the request leaves cannot be seen: an idempotent request is then re-sent by aiohttp,
    and any other fails, as it may have reached the server.

    **The idle cap.** With ``max_idle``, connections released to the pools are remembered
    in the order they were released; past ``max_idle`` the least recently used is closed
    (a closed connection left in aiohttp's pool is skipped and dropped by aiohttp). The
    cap is an upper bound: a connection that the server or aiohttp closed counts until it
    is the oldest.
    """

    __slots__ = ("_handed_out", "_idle", "_max_idle", "_sweep_at")

    def __init__(self, max_idle: int | None) -> None:
        #: When each connection was last handed out: a new one is not looked at (the TLS
        #: session tickets a server sends after the handshake may still be unread).
        self._handed_out: dict[ResponseHandler, float] = {}
        self._idle: collections.OrderedDict[ResponseHandler, None] | None = (
            None if max_idle is None else collections.OrderedDict()
        )
        self._max_idle = max_idle or 0
        self._sweep_at = _SWEEP_MIN

    def usable(self, conn: Connection, protocol: ResponseHandler, method: str) -> bool:
        """Whether ``conn`` may carry a ``method`` request now; if so it is in use from now.

        On the path of every request: one clock read and two dict operations unless the
        connection is looked at (and, with a cap, the release callback).
        """
        now = _monotonic()
        handed_out = self._handed_out
        last = handed_out.get(protocol)
        handed_out[protocol] = now
        if last is not None:
            if (now - last >= _LOOK_AFTER or method not in IDEMPOTENT_METHODS) and _unread_close(
                protocol
            ):
                del handed_out[protocol]
                return False
        elif len(handed_out) > self._sweep_at:
            self._sweep()
        if self._idle is not None:
            self.track(conn, protocol)
        return True

    def track(self, conn: Connection, protocol: ResponseHandler) -> None:
        """``conn`` is in use: with a cap, note when it goes back to the pool."""
        idle = self._idle
        if idle is not None:
            idle.pop(protocol, None)
            conn.add_callback(functools.partial(self._released, protocol))

    def _released(self, protocol: ResponseHandler) -> None:
        idle = self._idle
        if idle is None or protocol.should_close:
            return  # aiohttp closes it: it never becomes idle
        idle[protocol] = None
        while len(idle) > self._max_idle:
            oldest, _ = idle.popitem(last=False)
            if oldest.is_connected():
                _LOGGER.debug(
                    "closing the least recently used idle connection (max_idle=%d)",
                    self._max_idle,
                )
                oldest.close()

    def _sweep(self) -> None:
        """Forget closed connections (amortised: the threshold doubles with the live ones)."""
        handed_out = self._handed_out
        for protocol in [p for p in handed_out if not p.is_connected()]:
            del handed_out[protocol]
        self._sweep_at = max(_SWEEP_MIN, 2 * len(handed_out))


def _unread_close(protocol: ResponseHandler) -> bool:
    """Whether an idle connection is closed, or its socket holds bytes the loop has not read.

    On an idle connection that is the server's close (end of stream, a reset, a TLS
    ``close_notify``) or an answer nobody asked for: either way it must not carry a request.
    """
    transport = protocol.transport
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None or _POLL is None:
        return False
    poller = _POLL()
    try:
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


# aiohttp keeps a session's own ``proxy=``/``proxy_auth=`` with no public accessor; read
# them (None if a later aiohttp renames them: tests/test_close.py pins the behaviour).
def _session_proxy(session: aiohttp.ClientSession) -> str | URL | None:
    value = getattr(session, "_default_proxy", None)
    return value if isinstance(value, str | URL) else None


def _session_proxy_auth(session: aiohttp.ClientSession) -> aiohttp.BasicAuth | None:
    value = getattr(session, "_default_proxy_auth", None)
    return value if isinstance(value, aiohttp.BasicAuth) else None
