"""What every reconnecting stream reports: its state and the events of its changes.

``printer.websocket.subscribe()`` and ``printer.mqtt.subscribe()`` call one ``on_state``
handler shape with one event type, so an app maps either to its entity's availability the
same way; :class:`_Reconnecting` is what both subscriptions share (their state, the error
that stopped them, waiting for them). No I/O.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from .errors import OctoEverywhereError

__all__ = ["StateHandler", "SubscriptionEvent", "SubscriptionState", "call_handler"]


class SubscriptionState(enum.Enum):
    """Where a subscription is."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@attrs.frozen(kw_only=True)
class SubscriptionEvent:
    """A change of state; ``reconnected`` is True for every connect after the first."""

    state: SubscriptionState
    reconnected: bool = False
    error: OctoEverywhereError | None = None
    failures: int = 0


#: ``on_state(event)``, sync or async, on every change of a subscription's state.
StateHandler = Callable[[SubscriptionEvent], Awaitable[None] | None]


async def call_handler(handler: Callable[[Any], Awaitable[None] | None], value: Any) -> None:
    """Call a sync or async callback with ``value`` (awaiting it when it is async)."""
    result = handler(value)
    if inspect.isawaitable(result):
        await result


class _Reconnecting:
    """The state of a reconnecting subscription, and waiting for it (a base class).

    ``printer.websocket``'s :class:`oe_async.Subscription` and ``printer.mqtt``'s
    :class:`oe_async.MQTTSubscription` run their loop as ``self._task`` and report every
    change through :meth:`_emit`; this holds what they report.
    """

    _task: asyncio.Task[None]

    def __init__(self, on_state: StateHandler | None) -> None:
        self._on_state = on_state
        self._state = SubscriptionState.CONNECTING
        self._error: BaseException | None = None
        self._connected = asyncio.Event()

    @property
    def state(self) -> SubscriptionState:
        """The current state."""
        return self._state

    @property
    def error(self) -> BaseException | None:
        """What stopped the subscription, or the last disconnect's cause."""
        return self._error

    async def wait(self) -> None:
        """Wait for the subscription to stop; raise what stopped it (if it was an error)."""
        await asyncio.wait({self._task})  # a cancellation of the caller still propagates
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        if self._error is not None and self._state is SubscriptionState.STOPPED:
            raise self._error

    async def _emit(self, event: SubscriptionEvent) -> None:
        self._state = event.state
        if event.state is SubscriptionState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        if self._on_state is not None:
            await call_handler(self._on_state, event)

    def _mark_stopped(self) -> None:
        self._state = SubscriptionState.STOPPED
        self._connected.clear()

    async def _report_stopped(self) -> None:
        """STOPPED, and ``on_state`` told why (a callback's own failure is not an error of ours).

        A failure of ``on_state`` here ends the task with it: :meth:`wait` raises it.
        """
        self._mark_stopped()
        if self._on_state is not None:
            cause = self._error if isinstance(self._error, OctoEverywhereError) else None
            await call_handler(
                self._on_state, SubscriptionEvent(state=SubscriptionState.STOPPED, error=cause)
            )
