"""Gadget, OctoEverywhere's AI failure detection: ``printer.gadget``.

:meth:`Gadget.status` is one App API call; :meth:`Gadget.poller` polls as OctoEverywhere
asks: at most every 10 s per connection, only while printing and while someone looks at it,
backing off otherwise. :class:`GadgetPoller` runs in a task the client owns.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import aiohttp

from ._convert import structure
from ._funnel import Feature, Funnel, Target
from .errors import InvalidArgumentError, OctoEverywhereError
from .models import GadgetState, GadgetStatus
from .retry import RetryPolicy, is_temporary

__all__ = ["MIN_GADGET_INTERVAL", "Gadget", "GadgetPoller", "StatusHandler"]

_LOGGER = logging.getLogger(__package__)

#: OctoEverywhere asks for no more than one Gadget call per 10 s per connection.
MIN_GADGET_INTERVAL: Final = 10.0

GADGET_PATH: Final = "/api/gadget/GetStatusFromAppConnection"

#: ``on_status(status)``, sync or async.
StatusHandler = Callable[[GadgetStatus], Awaitable[None] | None]


class Gadget(Feature):
    """Gadget status for one printer: ``printer.gadget``.

    The 10 s floor between calls is kept here, per connection, across every poller.
    """

    __slots__ = ("next_call",)

    def __init__(self, funnel: Funnel) -> None:
        super().__init__(funnel)
        #: When the next poller call may be made (``time.monotonic()`` clock).
        self.next_call: float = -float("inf")

    async def status(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> GadgetStatus:
        """Gadget AI failure detection for the current print (one App API call).

        Poll at most every 10 s, only while printing and visible: :meth:`poller` does
        that for you. ``timeout`` is the whole call's deadline (retries included),
        ``retry`` its retry policy (default: the client's).
        """
        # A read, though the App API wants POST: safe to retry.
        call = self._funnel.call(
            "POST",
            GADGET_PATH,
            target=Target.APP_API,
            idempotent=True,
            timeout=timeout,
            retry=retry,
        )
        data = await self._funnel.json(call)
        return structure(data, GadgetStatus, what="Gadget status answer")

    def poller(
        self,
        on_status: StatusHandler,
        *,
        is_visible: Callable[[], bool] = lambda: True,
        interval: float = MIN_GADGET_INTERVAL,
        idle_interval: float = 60.0,
        max_idle_interval: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> GadgetPoller:
        """Poll in the background as OctoEverywhere recommends; see :class:`GadgetPoller`.

        Args:
            on_status: called with each :class:`oe_async.GadgetStatus`.
            is_visible: whether someone looks at the result now (no calls while False).
            interval: seconds between polls while a print is watched (at least 10).
            idle_interval: the first back-off while idle, disabled or not visible.
            max_idle_interval: the longest back-off.
            clock: the monotonic clock (injectable for tests).
            sleep: the sleep function (injectable for tests).

        """
        return GadgetPoller(
            self,
            on_status,
            is_visible=is_visible,
            interval=interval,
            idle_interval=idle_interval,
            max_idle_interval=max_idle_interval,
            clock=clock,
            sleep=sleep,
        )

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` (a poller's loop) in a task the client owns and cancels on close."""
        return self._funnel.transport.spawn(coro, name=name)

    @property
    def client_closed(self) -> bool:
        """True once the client was closed."""
        return self._funnel.transport.closed


class GadgetPoller:
    """Polls :meth:`Gadget.status` for one printer and hands each result to ``on_status``.

    Create with ``printer.gadget.poller(...)``; it starts at once.

    * While Gadget is ``ACTIVE`` (a print is being watched) and ``is_visible()`` is true:
      every ``interval`` seconds (never less than 10 s).
    * Otherwise (idle, disabled, not visible): backs off from ``idle_interval`` doubling up
      to ``max_idle_interval``; while not visible it makes no call at all.
    * Temporary errors back off the same way (honouring ``Retry-After``); permanent errors
      stop the poller (``await poller.wait()`` raises them).

    The 10 s floor is kept per connection, across every poller of that connection.
    ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        gadget: Gadget,
        on_status: StatusHandler,
        *,
        is_visible: Callable[[], bool] = lambda: True,
        interval: float = MIN_GADGET_INTERVAL,
        idle_interval: float = 60.0,
        max_idle_interval: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not callable(on_status) or not callable(is_visible):
            raise InvalidArgumentError("on_status and is_visible must be callables")
        if not interval > 0 or not idle_interval > 0 or max_idle_interval < idle_interval:
            raise InvalidArgumentError("intervals must be positive, max_idle >= idle")
        self._gadget = gadget
        self._on_status = on_status
        self._is_visible = is_visible
        #: Seconds between polls while a print is watched.
        self.interval: float = max(interval, MIN_GADGET_INTERVAL)
        #: The first back-off while idle, disabled or not visible.
        self.idle_interval: float = max(idle_interval, MIN_GADGET_INTERVAL)
        #: The longest back-off.
        self.max_idle_interval: float = max(max_idle_interval, self.idle_interval)
        self._clock = clock
        self._sleep = sleep
        #: The last status received.
        self.last: GadgetStatus | None = None
        #: The permanent error that stopped the poller.
        self.error: OctoEverywhereError | None = None
        #: Gadget calls made.
        self.calls: int = 0
        self._closing = False
        self._task = gadget.spawn(self._run(), name="oe_async Gadget poller")

    @property
    def done(self) -> bool:
        """True once the poller has stopped (closed, or ended by a permanent error)."""
        return self._task.done()

    async def close(self) -> None:
        """Stop polling (from ``on_status`` too: the poller stops when it returns)."""
        if asyncio.current_task() is self._task:
            self._closing = True  # waiting for our own task would wait for ever
            return
        self._task.cancel()
        await asyncio.wait({self._task})

    async def wait(self) -> None:
        """Wait until the poller stops; raise the error that stopped it."""
        await asyncio.wait({self._task})
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]

    async def _respect_floor(self) -> None:
        """Never call sooner than 10 s after the last call on this connection."""
        wait = self._gadget.next_call - self._clock()
        if wait > 0:
            await self._sleep(wait)

    async def _run(self) -> None:
        idle = self.idle_interval
        while True:
            if not self._is_visible():
                await self._sleep(idle)
                idle = min(idle * 2, self.max_idle_interval)
                continue
            await self._respect_floor()
            self._gadget.next_call = self._clock() + MIN_GADGET_INTERVAL
            self.calls += 1
            try:
                status = await self._gadget.status()
            except OctoEverywhereError as err:
                if not is_temporary(err):
                    self.error = err
                    raise
                delay = max(idle, err.retry_after or 0.0)
                idle = min(idle * 2, self.max_idle_interval)
                _LOGGER.debug("Gadget poll failed (%s); next in %.0f s", type(err).__name__, delay)
                await self._sleep(delay)
                continue
            self.last = status
            result = self._on_status(status)
            if inspect.isawaitable(result):
                await result
            if self._closing or self._gadget.client_closed:
                return  # the callback closed the poller or the client: stop
            if status.state is GadgetState.ACTIVE:
                idle = self.idle_interval
                await self._sleep(self.interval)
            else:
                await self._sleep(idle)
                idle = min(idle * 2, self.max_idle_interval)
