"""What the client owns and close() ends: background tasks, open streams, calls waiting.

:class:`Owned` is the client's record of everything in progress: the background tasks the
library starts (LAN re-probes, subscriptions, Gadget pollers, shared webcam streams), the
responses and WebSockets being streamed, and the tasks waiting inside a funnel call.
:meth:`Owned.close` ends them all, then lets the transport close its sessions. See
docs/architecture.md, "Closing".
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import aiohttp

from oe_async.errors import ClientClosedError

from .budget import Pool

_LOGGER = logging.getLogger("oe_async")

#: How long close() lets open WebSockets finish their closing handshake (seconds).
WEBSOCKET_CLOSE_BOUND: Final = 0.5


class Owned:
    """The background tasks, open streams and waiting calls of one client, and their end."""

    def __init__(self) -> None:
        #: True once :meth:`close` has been called (an attribute: the session property
        #: reads it on every request).
        self.closed: bool = False
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

    def live_streams(self) -> int:
        """How many responses of the stream pool and WebSockets are open now."""
        return sum(1 for r in list(self._stream_responses) if not r.closed) + sum(
            1 for ws in list(self._websockets) if not ws.closed
        )

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start a background task that is owned here and cancelled by :meth:`close`.

        Raises:
            ClientClosedError: the client is closed (the coroutine is closed unstarted).

        """
        if self.closed:
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

    async def close(self, finish: Callable[[], Awaitable[None]]) -> None:
        """End everything in progress, cancel the background tasks, then await ``finish()``.

        ``finish`` closes what the caller owns after everything here has ended (the
        transport's sessions). Idempotent: a second caller waits for the first close() to
        finish; called from one of our tasks, it closes everything else and returns. The
        work runs in a task of its own: a caller cancelled meanwhile does not leave it half
        done. See :meth:`oe_async._transport.Transport.close`.
        """
        current = asyncio.current_task()
        closer = self._closer
        if closer is None:
            self.closed = True
            self._closed_from = current if current in self._tasks else None
            closer = self._closer = asyncio.get_running_loop().create_task(
                self._close_all(current, finish), name="oe_async close"
            )
        elif current in self._tasks and current is not self._closed_from:
            return  # a task this close() cancels: waiting for it would wait for ourselves
        await asyncio.shield(closer)

    async def _close_all(
        self, caller: asyncio.Task[Any] | None, finish: Callable[[], Awaitable[None]]
    ) -> None:
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
        await finish()
        _LOGGER.debug("OctoEverywhere client closed (%d background task(s) cancelled)", len(tasks))
