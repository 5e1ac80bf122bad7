"""What every reconnecting stream reports: its state and the events of its changes.

``printer.websocket.subscribe()`` and ``printer.mqtt.subscribe()`` call one ``on_state``
handler shape with one event type, so an app maps either to its entity's availability the
same way. Pure: no I/O.
"""

from __future__ import annotations

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
