"""The connection budget: how many connections each pool may hold, and the waits for one.

:class:`ConnectionBudget` is the app's setting (public as :class:`oe_async.ConnectionBudget`);
:class:`Pools` counts what oe_async holds of each :class:`Pool` and bounds every wait for a
free connection with :class:`oe_async.ConnectionPoolExhaustedError`. See
docs/architecture.md, "The connection budget".
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final, Protocol

import aiohttp
import attrs

from oe_async.errors import ClientClosedError, ConnectionPoolExhaustedError, InvalidArgumentError

#: How long the owned session keeps an idle connection open (seconds). Apps poll every 5 to
#: 60 s (Home Assistant: 30 s): a connection must outlive a 60 s interval with room for
#: jitter, or every poll pays a new TCP and TLS handshake (aiohttp's default is 15 s). And it
#: stays under the 75 s after which nginx and aiohttp servers close an idle connection, so
#: on those the client, not the server, ends it, and never sends on a connection being closed.
DEFAULT_KEEPALIVE: Final = 70.0


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


class Streams(Protocol):
    """What :class:`Pools` asks of the owner of the open streams."""

    @property
    def closed(self) -> bool:
        """True once the client is closed."""
        ...

    def live_streams(self) -> int:
        """How many responses of the stream pool and WebSockets are open now."""
        ...


class Pools:
    """What oe_async holds of each connection pool, and the bounded waits for room.

    Args:
        budget: the pools' sizes and the longest wait.
        owns_session: whether the sessions are ours (two pools) or borrowed (one).
        connector_limit: a borrowed session's connector limit (0: unlimited).
        streams: the open streams (their count is what the stream pool holds).

    """

    def __init__(
        self,
        budget: ConnectionBudget,
        *,
        owns_session: bool,
        connector_limit: Callable[[], int],
        streams: Streams,
    ) -> None:
        self.budget: Final = budget
        self._owns_session = owns_session
        self._connector_limit = connector_limit
        self._streams = streams
        # Requests being sent or read, and streams being opened: with the tracked streams,
        # what oe_async holds of each pool (for the pool-exhausted error).
        # Indexed by ``pool is Pool.STREAMS``: an Enum key would hash in Python code.
        self._in_flight: list[int] = [0, 0]
        self._gate: Gate | None = None
        self._pool_wait_cache: dict[aiohttp.ClientTimeout, aiohttp.ClientTimeout] = {}

    def busy(self, pool: Pool) -> int:
        """How many connections of ``pool`` oe_async holds or is acquiring now."""
        held = self._streams.live_streams() if pool is Pool.STREAMS else 0
        return held + self._in_flight[pool is Pool.STREAMS]

    def limit(self, pool: Pool) -> int | None:
        """How many connections ``pool`` may hold (None: unlimited).

        For a borrowed session both pools are its one pool; streams may use all but
        :attr:`ConnectionBudget.reserve` of it.
        """
        if self._owns_session:
            return self.budget.streams if pool is Pool.STREAMS else self.budget.requests
        total = self._connector_limit()
        if not total:
            return None
        if pool is Pool.STREAMS:
            return max(1, total - self.budget.reserve)
        return total

    def exhausted(self, pool: Pool, waited: float) -> ConnectionPoolExhaustedError:
        """The error for a wait of ``waited`` seconds on a full ``pool``."""
        limit = self.limit(pool) or 0
        busy = self.busy(pool)
        if self._owns_session:
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
        if timeout.connect is not None or self._owns_session:
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

    def _request_gate(self) -> Gate | None:
        if self._gate is None:
            limit = self.limit(Pool.REQUESTS)
            if limit is None:
                return None
            self._gate = Gate(limit)
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
            if self._streams.closed:
                raise ClientClosedError("This OctoEverywhere client is closed")
            waited = loop.time() - start
            if waited >= bound:
                raise self.exhausted(Pool.STREAMS, waited)
            await asyncio.sleep(min(0.05, bound - waited))


class Gate:
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
