"""WebSockets to the printer (through the relay or the LAN) and reconnecting subscriptions.

``printer.websocket(path)`` opens aiohttp's ``ws_connect`` on the client's session. The
handshake carries the relay credentials by the same origin rule as every HTTP request, on
every redirect hop (see :data:`oe_async.client.HANDSHAKE_AUTH`). A handshake refused with a
6xx raises the mapped :class:`~oe_async.RelayError`; so does a socket the relay closes with a
6xx close code (its MQTT proxy does this).

``printer.subscribe(path, on_message)`` keeps a socket open in a background task owned by
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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Self

import aiohttp
import attrs
from multidict import CIMultiDict

from ._http import TRANSPORT_ERRORS, display_path, transport_error
from .client import HANDSHAKE_AUTH
from .errors import (
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    RequestTimeoutError,
    http_error,
    is_relay_status,
    relay_error,
)
from .retry import ReconnectPolicy, is_temporary
from .routing import Route, RoutePolicy

if TYPE_CHECKING:
    from .connection import PrinterConnection

__all__ = [
    "PrinterWebSocket",
    "Subscription",
    "SubscriptionEvent",
    "SubscriptionState",
]

_LOGGER = logging.getLogger(__package__)

DEFAULT_HEARTBEAT: Final = 30.0
#: aiohttp reports a close code outside RFC 6455's ranges (such as 604) as a protocol error
#: whose message names the code; this is how a 6xx close from the relay is recognised.
_CLOSE_CODE_RE: Final = re.compile(r"close code:?\s*(\d{3,4})", re.IGNORECASE)
_CLOSED_TYPES: Final = frozenset(
    {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED}
)

Hello = (
    str | bytes | Mapping[str, Any] | list[Any] | Callable[["PrinterWebSocket"], Awaitable[None]]
)
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
    that carries an OctoEverywhere 6xx status raises its :class:`~oe_async.RelayError`;
    other failures raise :class:`~oe_async.CommunicationError`.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, path: str, app_id: str) -> None:
        self._ws = ws
        self._path = path
        self._app_id = app_id

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
            raise transport_error(err, "WebSocket send on", self._path) from None

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
            raise transport_error(err, "WebSocket", self._path) from None
        code = relay_close_code(message)
        if code is not None:
            raise relay_error(code, app_id=self._app_id)
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


@contextlib.asynccontextmanager
async def open_websocket(
    printer: PrinterConnection,
    path: str,
    *,
    protocols: tuple[str, ...],
    heartbeat: float | None,
    receive_timeout: float | None,
    handshake_timeout: float,
    headers: Mapping[str, str] | None,
    max_msg_size: int,
) -> AsyncIterator[PrinterWebSocket]:
    """Implement :meth:`PrinterConnection.websocket`."""
    if not handshake_timeout > 0:
        raise InvalidArgumentError("handshake_timeout must be a positive number of seconds")
    call = printer._call("GET", path, headers=headers)  # validates the path and headers
    client = printer.client
    while True:
        url, route = await printer._resolve(call)
        request_headers: CIMultiDict[str] = CIMultiDict(headers or {})
        request_headers.setdefault("User-Agent", client.user_agent)
        token = HANDSHAKE_AUTH.set(printer._auth)
        try:
            async with asyncio.timeout(handshake_timeout):
                ws = await client.handshake_session().ws_connect(
                    url,
                    protocols=protocols,
                    heartbeat=heartbeat,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=receive_timeout, ws_close=10.0),
                    headers=request_headers,
                    max_msg_size=max_msg_size,
                )
        except aiohttp.WSServerHandshakeError as err:
            if err.status < 400:
                raise CommunicationError(
                    f"WebSocket {display_path(url)}: the server did not accept the upgrade "
                    f"(HTTP {err.status})"
                ) from None
            raise http_error(
                err.status,
                err.headers or {},
                b"",
                app_id=client.app_id,
                method="GET",
                path=display_path(url),
            ) from None
        except TRANSPORT_ERRORS as err:
            if route is Route.LAN and printer.route_policy is RoutePolicy.PREFER_LOCAL:
                printer._router.lan_failed()
                continue  # the handshake did not happen: try the relay
            raise transport_error(err, "WebSocket", display_path(url)) from None
        finally:
            HANDSHAKE_AUTH.reset(token)
        break
    socket = PrinterWebSocket(ws, path=display_path(url), app_id=client.app_id)
    try:
        yield socket
    finally:
        await socket.close()


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


StateHandler = Callable[[SubscriptionEvent], Awaitable[None] | None]


async def _call(handler: Callable[[Any], Awaitable[None] | None], value: Any) -> None:
    result = handler(value)
    if inspect.isawaitable(result):
        await result


class Subscription:
    """A WebSocket kept open in the background. Create with ``printer.subscribe()``.

    Use ``await sub.close()`` (or close the client) to stop it; ``await sub.wait()``
    returns when it stops and raises the permanent error that stopped it, if any.
    """

    def __init__(
        self,
        printer: PrinterConnection,
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
        self._printer = printer
        self._path = path
        self._on_message = on_message
        self._hello = hello
        self._on_state = on_state
        self._policy = reconnect
        self._options = websocket_options
        self._state = SubscriptionState.CONNECTING
        self._error: BaseException | None = None
        self._connected = asyncio.Event()
        self.connects = 0
        self._task = printer.client._spawn(self._run(), name=f"oe_async subscription {path}")

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
                    async with open_websocket(self._printer, self._path, **self._options) as socket:
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
