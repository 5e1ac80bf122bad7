"""WebSockets to the printer (through the relay or the LAN) and reconnecting subscriptions.

``printer.websocket.connect(path)`` opens a socket through the request funnel, whose
handshake carries the relay credentials by the same origin rule as every HTTP request, on
every redirect hop. A handshake refused with a 6xx raises the mapped
:class:`oe_async.RelayError`; so does a socket the relay closes with a 6xx close code (its
MQTT proxy does this). A 6xx close code on the plain-http LAN route means nothing (only the
relay speaks OctoEverywhere's codes) and reads as a :class:`oe_async.CommunicationError`.

Hostile servers are bounded: a ``receive(timeout=...)`` is a deadline for a message however
many pings arrive meanwhile; more than :data:`MAX_CONTROL_FRAMES_PER_SECOND` pings/pongs in
a second end the socket with :class:`oe_async.UnexpectedResponseError`; leaving
``connect()`` waits at most :data:`CLOSE_TIMEOUT` seconds for the server's close answer; a
message that is not JSON (or nests without end) raises :class:`oe_async.UnexpectedResponseError`
from ``receive_json()``/``iter_json()``.

``printer.websocket.subscribe(path, on_message)`` keeps a socket open in a background task owned by
the client: it reconnects with capped full-jitter backoff, re-sends a hello/subscribe
message after each connect, reports connected/reconnected/disconnected/stopped events, and
stops on permanent errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final

import aiohttp

from oe_async._funnel import Feature, WebSocketOptions
from oe_async._http import shown_path
from oe_async.errors import (
    ClientClosedError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
)
from oe_async.retry import ReconnectPolicy, is_temporary
from oe_async.subscription import (
    StateHandler,
    SubscriptionEvent,
    SubscriptionState,
    _Reconnecting,
)
from oe_async.subscription import call_handler as _call

from ._socket import (
    CLOSE_TIMEOUT,
    MAX_CONTROL_FRAMES_PER_SECOND,
    PrinterWebSocket,
    check_timeout,
)
from ._socket import relay_close_code as relay_close_code  # importable from here, as before

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_HEARTBEAT",
    "MAX_CONTROL_FRAMES_PER_SECOND",
    "Hello",
    "MessageHandler",
    "PrinterWebSocket",
    "StateHandler",
    "Subscription",
    "SubscriptionEvent",
    "SubscriptionState",
    "WebSockets",
]

_LOGGER = logging.getLogger("oe_async")

DEFAULT_HEARTBEAT: Final = 30.0

#: What a subscription sends after each connect: text, bytes, a JSON-able object, or an async
#: callable that receives the socket.
Hello = (
    str | bytes | Mapping[str, Any] | list[Any] | Callable[["PrinterWebSocket"], Awaitable[None]]
)
#: ``on_message(message)``, sync or async, for each TEXT/BINARY message.
MessageHandler = Callable[[aiohttp.WSMessage], Awaitable[None] | None]


class Subscription(_Reconnecting):
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
        self._path = path  # for connecting only: its query may hold a token
        self._shown = shown_path(path)  # what reprs, logs, task names and messages show
        self._on_message = on_message
        self._hello = hello
        self._policy = reconnect
        self._options = websocket_options
        # sub.close() was called from one of its own callbacks: stop when it returns.
        self._closing = False
        #: Successful connects so far.
        self.connects: int = 0
        super().__init__(on_state)  # the state, before the loop starts
        self._task = websockets.spawn(self._run(), name=f"oe_async subscription {self._shown}")

    def __repr__(self) -> str:
        return f"<Subscription {self._shown} {self._state.value} connects={self.connects}>"

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
            raise CommunicationError(f"subscription {self._shown} stopped")

    async def close(self) -> None:
        """Stop the subscription and close its socket (idempotent).

        From one of its own callbacks it returns at once; the subscription stops when
        the callback returns.
        """
        if asyncio.current_task() is self._task:
            self._closing = True  # waiting for our own task would wait for ever
            return
        self._task.cancel()
        await asyncio.wait({self._task})

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

    def _stopped_by_close(self) -> bool:
        """True (and the subscription STOPPED) when the client or the subscription was closed.

        Asked after each callback: one that closed the client (``await oe.close()`` in
        ``on_message`` or ``on_state``) or the subscription (``await sub.close()``) ends
        it when it returns, as close() does for every other task.
        """
        closed = self._websockets.client_closed
        if not (closed or self._closing):
            return False
        self._mark_stopped()
        self._error = (
            ClientClosedError(f"subscription {self._shown}: the OctoEverywhere client was closed")
            if closed
            else None  # sub.close(): no error (wait() returns)
        )
        return True

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
                        if self._stopped_by_close():
                            return
                        async for message in socket:
                            delivered = True
                            await _call(self._on_message, message)
                            if self._stopped_by_close():
                                return
                    error: OctoEverywhereError = CommunicationError(
                        f"the server closed WebSocket {self._shown}"
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
                if self._stopped_by_close():
                    return
                delay = self._policy.delay(max(failures, 1), error)
                _LOGGER.debug("subscription %s: reconnecting in %.2f s", self._shown, delay)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # Closed by the client (not sub.close()): wait() says why it stopped.
            if not self._stopped_by_close():
                self._mark_stopped()
            raise
        except Exception as err:  # noqa: BLE001 (an on_message/on_state callback failed)
            self._error = err
            _LOGGER.debug("subscription %s stopped by its callback: %r", self._shown, err)
        await self._report_stopped()


class WebSockets(Feature):
    """WebSockets to the printer: ``printer.websocket``."""

    __slots__ = ()

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
        sessions alike. The socket is closed when the block exits, within
        :data:`CLOSE_TIMEOUT` seconds whatever the server does.

        Args:
            path: the WebSocket path.
            protocols: sub-protocols to offer.
            heartbeat: seconds between our pings (None: no pings; a server that stops
                answering them is then noticed only by ``receive_timeout``).
            receive_timeout: the default deadline of each :meth:`PrinterWebSocket.receive`
                (seconds; pings do not extend it). None: wait as long as the socket lives.
            handshake_timeout: seconds for the whole handshake.
            headers: extra handshake headers.
            max_msg_size: the largest message accepted, in bytes.

        Raises:
            RelayError: a 6xx answer to the handshake, or a 6xx close code later (relay
                route only).
            PrinterHTTPError: the printer refused the upgrade (e.g. 404).
            CommunicationError: the connection failed.

        """
        call = self._funnel.call("GET", path, headers=headers)  # validates path and headers
        receive_timeout = check_timeout(receive_timeout, "receive_timeout")
        options = WebSocketOptions(
            protocols=protocols,
            heartbeat=heartbeat,
            # PrinterWebSocket.receive() applies it as a deadline; aiohttp would restart it
            # at every ping.
            receive_timeout=None,
            handshake_timeout=handshake_timeout,
            max_msg_size=max_msg_size,
        )
        async with self._funnel.websocket(call, options) as (ws, where, through_relay):
            # The route the handshake took: only the relay speaks OctoEverywhere's 6xx codes.
            socket = PrinterWebSocket(
                ws,
                path=where,
                funnel=self._funnel,
                relay=through_relay,
                receive_timeout=receive_timeout,
            )
            try:
                yield socket
            finally:
                # Bounded here, so the funnel's own (unbounded) close finds it closed.
                await socket.close()

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
        return self._funnel.transport.spawn(coro, name=name)

    @property
    def client_closed(self) -> bool:
        """True once the client was closed."""
        return self._funnel.transport.closed
