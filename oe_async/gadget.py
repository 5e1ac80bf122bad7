"""A Gadget status poller that follows OctoEverywhere's guidance.

Poll at most every 10 s per connection, only while printing and while someone looks at it;
back off otherwise. :class:`GadgetPoller` runs in a task the client owns.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from .errors import InvalidArgumentError, OctoEverywhereError
from .models import GadgetState, GadgetStatus
from .retry import is_temporary

if TYPE_CHECKING:
    from .connection import PrinterConnection

__all__ = ["MIN_GADGET_INTERVAL", "GadgetPoller"]

_LOGGER = logging.getLogger(__package__)

#: OctoEverywhere asks for no more than one Gadget call per 10 s per connection.
MIN_GADGET_INTERVAL: Final = 10.0

StatusHandler = Callable[[GadgetStatus], Awaitable[None] | None]


class GadgetPoller:
    """Polls ``gadget_status()`` for one printer and hands each result to ``on_status``.

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
        printer: PrinterConnection,
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
        self._printer = printer
        self._on_status = on_status
        self._is_visible = is_visible
        self.interval = max(interval, MIN_GADGET_INTERVAL)
        self.idle_interval = max(idle_interval, MIN_GADGET_INTERVAL)
        self.max_idle_interval = max(max_idle_interval, self.idle_interval)
        self._clock = clock
        self._sleep = sleep
        self.last: GadgetStatus | None = None
        self.error: OctoEverywhereError | None = None
        self.calls = 0
        self._task = printer.client._spawn(self._run(), name="oe_async Gadget poller")

    async def close(self) -> None:
        """Stop polling."""
        self._task.cancel()
        await asyncio.wait({self._task})

    async def wait(self) -> None:
        """Wait until the poller stops; raise the error that stopped it."""
        await asyncio.wait({self._task})
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]

    async def _respect_floor(self) -> None:
        """Never call sooner than 10 s after the last call on this connection."""
        wait = self._printer._gadget_next_call - self._clock()
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
            self._printer._gadget_next_call = self._clock() + MIN_GADGET_INTERVAL
            self.calls += 1
            try:
                status = await self._printer.gadget_status()
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
            if status.state is GadgetState.ACTIVE:
                idle = self.idle_interval
                await self._sleep(self.interval)
            else:
                await self._sleep(idle)
                idle = min(idle * 2, self.max_idle_interval)
