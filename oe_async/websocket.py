"""WebSockets to the printer (through the relay or the LAN) and reconnecting subscriptions.

``printer.websocket.connect(path)`` opens a socket through the request funnel, whose
handshake carries the relay credentials by the same origin rule as every HTTP request, on
every redirect hop. A handshake refused with a 6xx raises the mapped
:class:`oe_async.RelayError`; so does a socket the relay closes with a 6xx close code (its
MQTT proxy does this).

``printer.websocket.subscribe(path, on_message)`` keeps a socket open in a background task owned by
the client: it reconnects with capped full-jitter backoff, re-sends a hello/subscribe
message after each connect, reports connected/reconnected/disconnected/stopped events, and
stops on permanent errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final, Self

import aiohttp
import attrs

from ._funnel import Funnel
from ._http import TRANSPORT_ERRORS
from .errors import (
    ClientClosedError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    RequestTimeoutError,
    is_relay_status,
    relay_error,
)
from .retry import ReconnectPolicy, is_temporary

__all__ = [
    "DEFAULT_HEARTBEAT",
    "Hello",
    "MessageHandler",
    "PrinterWebSocket",
    "StateHandler",
    "Subscription",
    "SubscriptionEvent",
    "SubscriptionState",
    "WebSockets",
]

_LOGGER = logging.getLogger(__package__)

DEFAULT_HEARTBEAT: Final = 30.0
#: aiohttp reports a close code outside RFC 6455's ranges (such as 604) as a protocol error
#: whose message names the code; this is how a 6xx close from the relay is recognised.
_CLOSE_CODE_RE: Final = re.compile(r"close code:?\s*(\d{3,4})", re.IGNORECASE)
_CLOSED_TYPES: Final = frozenset(
    {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED}
)

#: What a subscription sends after each connect: text, bytes, a JSON-able object, or an async
#: callable that receives the socket.
Hello = (
    str | bytes | Mapping[str, Any] | list[Any] | Callable[["PrinterWebSocket"], Awaitable[None]]
)
#: ``on_message(message)``, sync or async, for each TEXT/BINARY message.
MessageHandler = Callable[[aiohttp.WSMessage], Awaitable[None] | None]


def relay_close_code(message: aiohttp.WSMessage) -> int | None:
    """The OctoEverywhere status (600-699) a close or error message carries, if any."""
    if message.type is aiohttp.WSMsgType.CLOSE and isinstance(message.data, int):
        code = message.data
    elif message.type is aiohttp.WSMsgType.ERROR:
        match = _CLOSE_CODE_RE.search(str(message.data))
        code = int(match.group(1)) if match else 0
    else:
        return None
    return code if is_relay_status(code) else None


class PrinterWebSocket:
    """A WebSocket to the printer; a thin wrapper over aiohttp's ``ClientWebSocketResponse``.

    Iterating yields TEXT and BINARY messages and stops at a normal close. A close or error
    that carries an OctoEverywhere 6xx status raises its :class:`oe_async.RelayError`;
    closing the client raises :class:`oe_async.ClientClosedError`; other failures raise
    :class:`oe_async.CommunicationError`. Create with ``printer.websocket.connect()``.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, path: str, funnel: Funnel) -> None:
        self._ws = ws
        self._path = path
        self._funnel = funnel

    @property
    def raw(self) -> aiohttp.ClientWebSocketResponse:
        """The underlying aiohttp WebSocket (for what this wrapper does not cover)."""
        return self._ws

    @property
    def closed(self) -> bool:
        """True once the socket is closed."""
        return self._ws.closed

    @property
    def close_code(self) -> int | None:
        """The close code, once closed."""
        return self._ws.close_code

    @property
    def protocol(self) -> str | None:
        """The negotiated sub-protocol."""
        return self._ws.protocol

    async def send_str(self, data: str) -> None:
        """Send a text message."""
        await self._send(self._ws.send_str(data))

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self._send(self._ws.send_bytes(data))

    async def send_json(self, data: Any) -> None:
        """Send ``data`` as a JSON text message."""
        await self.send_str(json.dumps(data))

    async def _send(self, sending: Awaitable[None]) -> None:
        try:
            await sending
        except TRANSPORT_ERRORS as err:
            raise self._funnel.error_for(err, "WebSocket send on", self._path) from None

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        """The next message (CLOSE/CLOSED messages included, as aiohttp returns them).

        Raises:
            RelayError: the relay closed the socket with a 6xx code.
            CommunicationError: the connection failed; RequestTimeoutError on ``timeout``.

        """
        try:
            message = await self._ws.receive(timeout)
        except TimeoutError:
            raise RequestTimeoutError(f"WebSocket {self._path}: no message in time") from None
        except TRANSPORT_ERRORS as err:
            raise self._funnel.error_for(err, "WebSocket", self._path) from None
        if message.type in _CLOSED_TYPES and self._funnel.client_closed:
            raise ClientClosedError(f"WebSocket {self._path}: the OctoEverywhere client was closed")
        code = relay_close_code(message)
        if code is not None:
            raise relay_error(code, app_id=self._funnel.app_id)
        if message.type is aiohttp.WSMsgType.ERROR:
            kind = type(message.data).__name__ if message.data is not None else "error"
            raise CommunicationError(f"WebSocket {self._path} failed ({kind})")
        return message

    async def receive_json(self, timeout: float | None = None) -> Any:
        """The next TEXT or BINARY message decoded as JSON."""
        message = await self.receive(timeout)
        if message.type in _CLOSED_TYPES:
            raise CommunicationError(f"WebSocket {self._path} closed while waiting for JSON")
        return json.loads(message.data)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> aiohttp.WSMessage:
        message = await self.receive()
        if message.type in _CLOSED_TYPES:
            raise StopAsyncIteration
        return message

    async def close(self, *, code: int = 1000, message: bytes = b"") -> None:
        """Close the socket (idempotent)."""
        with contextlib.suppress(*TRANSPORT_ERRORS):
            await self._ws.close(code=code, message=message)


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


async def _call(handler: Callable[[Any], Awaitable[None] | None], value: Any) -> None:
    result = handler(value)
    if inspect.isawaitable(result):
        await result


class Subscription:
    """A WebSocket kept open in the background. Create with ``printer.websocket.subscribe()``.

    Use ``await sub.close()`` (or close the client) to stop it; ``await sub.wait()``
    returns when it stops and raises the permanent error that stopped it, if any.
    """

    def __init__(
        self,
        websockets: WebSockets,
        path: str,
        on_message: MessageHandler,
        *,
        hello: Hello | None,
        on_state: StateHandler | None,
        reconnect: ReconnectPolicy,
        websocket_options: dict[str, Any],
    ) -> None:
        if not callable(on_message) or (on_state is not None and not callable(on_state)):
            raise InvalidArgumentError("on_message and on_state must be callables")
        self._websockets = websockets
        self._path = path
        self._on_message = on_message
        self._hello = hello
        self._on_state = on_state
        self._policy = reconnect
        self._options = websocket_options
        self._state = SubscriptionState.CONNECTING
        self._error: BaseException | None = None
        self._connected = asyncio.Event()
        #: Successful connects so far.
        self.connects: int = 0
        self._task = websockets.spawn(self._run(), name=f"oe_async subscription {path}")

    def __repr__(self) -> str:
        return f"<Subscription {self._path} {self._state.value} connects={self.connects}>"

    @property
    def state(self) -> SubscriptionState:
        """The current state."""
        return self._state

    @property
    def error(self) -> BaseException | None:
        """What stopped the subscription, or the last disconnect's cause."""
        return self._error

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the socket is (re)connected; raises if the subscription stopped."""
        async with asyncio.timeout(timeout):
            waiter = asyncio.ensure_future(self._connected.wait())
            try:
                await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        if not self._connected.is_set():
            await self.wait()
            raise CommunicationError(f"subscription {self._path} stopped")

    async def wait(self) -> None:
        """Wait for the subscription to stop; raise what stopped it (if it was an error)."""
        await asyncio.wait({self._task})  # a cancellation of the caller still propagates
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        if self._error is not None and self._state is SubscriptionState.STOPPED:
            raise self._error

    async def close(self) -> None:
        """Stop the subscription and close its socket (idempotent)."""
        self._task.cancel()
        await asyncio.wait({self._task})

    async def _emit(self, event: SubscriptionEvent) -> None:
        self._state = event.state
        if event.state is SubscriptionState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        if self._on_state is not None:
            await _call(self._on_state, event)

    async def _send_hello(self, socket: PrinterWebSocket) -> None:
        hello = self._hello
        if hello is None:
            return
        if callable(hello):
            await hello(socket)
        elif isinstance(hello, str):
            await socket.send_str(hello)
        elif isinstance(hello, bytes):
            await socket.send_bytes(hello)
        else:
            await socket.send_json(hello)

    async def _run(self) -> None:
        failures = 0
        try:
            while True:
                delivered = False
                try:
                    async with self._websockets.connect(self._path, **self._options) as socket:
                        await self._send_hello(socket)
                        self.connects += 1
                        failures = 0
                        await self._emit(
                            SubscriptionEvent(
                                state=SubscriptionState.CONNECTED, reconnected=self.connects > 1
                            )
                        )
                        async for message in socket:
                            delivered = True
                            await _call(self._on_message, message)
                    error: OctoEverywhereError = CommunicationError(
                        f"the server closed WebSocket {self._path}"
                    )
                except OctoEverywhereError as err:
                    error = err
                self._error = error
                if not is_temporary(error):
                    break
                failures = 0 if delivered else failures + 1
                limit = self._policy.max_failures
                if limit is not None and failures >= limit:
                    break
                await self._emit(
                    SubscriptionEvent(
                        state=SubscriptionState.DISCONNECTED, error=error, failures=failures
                    )
                )
                delay = self._policy.delay(max(failures, 1), error)
                _LOGGER.debug("subscription %s: reconnecting in %.2f s", self._path, delay)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self._state = SubscriptionState.STOPPED
            self._connected.clear()
            if self._websockets.client_closed:  # not sub.close(): wait() says why it stopped
                self._error = ClientClosedError(
                    f"subscription {self._path}: the OctoEverywhere client was closed"
                )
            raise
        except Exception as err:  # noqa: BLE001 (an on_message/on_state callback failed)
            self._error = err
            _LOGGER.debug("subscription %s stopped by its callback: %r", self._path, err)
        self._state = SubscriptionState.STOPPED
        self._connected.clear()
        if self._on_state is not None:
            cause = self._error if isinstance(self._error, OctoEverywhereError) else None
            # A failure here ends the task with it: wait() raises it.
            stopped = SubscriptionEvent(state=SubscriptionState.STOPPED, error=cause)
            await _call(self._on_state, stopped)


class WebSockets:
    """WebSockets to the printer: ``printer.websocket``."""

    __slots__ = ("_funnel",)

    def __init__(self, funnel: Funnel) -> None:
        self._funnel = funnel

    def __repr__(self) -> str:
        return f"<WebSockets of {self._funnel!r}>"

    @contextlib.asynccontextmanager
    async def connect(
        self,
        path: str,
        *,
        protocols: tuple[str, ...] = (),
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        receive_timeout: float | None = None,
        handshake_timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        max_msg_size: int = 4 * 1024 * 1024,
    ) -> AsyncIterator[PrinterWebSocket]:
        """Open a WebSocket: ``async with printer.websocket.connect("/websocket") as ws``.

        OctoPrint pushes on ``/sockjs/websocket``, Moonraker speaks JSON-RPC on
        ``/websocket``. The handshake carries the relay credentials (and printer-level
        headers) only to their origin, on every redirect hop, on owned and borrowed
        sessions alike. The socket is closed when the block exits.

        Raises:
            RelayError: a 6xx answer to the handshake, or a 6xx close code later.
            PrinterHTTPError: the printer refused the upgrade (e.g. 404).
            CommunicationError: the connection failed.

        """
        call = self._funnel.call("GET", path, headers=headers)  # validates path and headers
        async with self._funnel.websocket(
            call,
            protocols=protocols,
            heartbeat=heartbeat,
            receive_timeout=receive_timeout,
            handshake_timeout=handshake_timeout,
            max_msg_size=max_msg_size,
        ) as (ws, where):
            yield PrinterWebSocket(ws, path=where, funnel=self._funnel)

    def subscribe(
        self,
        path: str,
        on_message: MessageHandler,
        *,
        hello: Hello | None = None,
        on_state: StateHandler | None = None,
        reconnect: ReconnectPolicy | None = None,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        headers: Mapping[str, str] | None = None,
    ) -> Subscription:
        """Keep a WebSocket open in the background and hand every message to ``on_message``.

        Args:
            path: the WebSocket path.
            on_message: called (sync or async) with each TEXT/BINARY ``aiohttp.WSMessage``.
            hello: sent after every (re)connect: text, bytes, a JSON-able object, or an
                async callable that receives the :class:`PrinterWebSocket`.
            on_state: called with a :class:`SubscriptionEvent` on connected, reconnected,
                disconnected and stopped: map it to your entity's availability.
            reconnect: backoff and give-up rule; default: capped full-jitter backoff from
                1 s to 60 s, never giving up on temporary errors.
            heartbeat: WebSocket ping interval in seconds.
            headers: extra handshake headers.

        The task belongs to the client: it stops with ``OctoEverywhere.close()`` or
        ``Subscription.close()``, and on a permanent error (``wait()`` raises it). An
        exception from a callback also stops it and is raised by ``wait()``.

        """
        return Subscription(
            self,
            path,
            on_message,
            hello=hello,
            on_state=on_state,
            reconnect=reconnect or ReconnectPolicy(max_failures=None, max_delay=60.0),
            websocket_options={"heartbeat": heartbeat, "headers": headers},
        )

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` (a subscription's loop) in a task the client owns."""
        return self._funnel.spawn(coro, name=name)

    @property
    def client_closed(self) -> bool:
        """True once the client was closed."""
        return self._funnel.client_closed
