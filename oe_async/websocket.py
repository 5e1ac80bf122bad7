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
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final, Self

import aiohttp

from ._funnel import Funnel
from ._http import TRANSPORT_ERRORS, shown_path
from .errors import (
    ClientClosedError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    RequestTimeoutError,
    UnexpectedResponseError,
    is_relay_status,
    relay_error,
)
from .retry import ReconnectPolicy, is_temporary
from .subscription import StateHandler, SubscriptionEvent, SubscriptionState
from .subscription import call_handler as _call

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

_LOGGER = logging.getLogger(__package__)

DEFAULT_HEARTBEAT: Final = 30.0
#: Leaving ``connect()`` (or ``PrinterWebSocket.close()``) waits at most this many seconds
#: for the server to answer the close; then the connection is dropped. aiohttp alone waits
#: 10 s after *each* frame, so a server that keeps talking could hold the exit for ever.
CLOSE_TIMEOUT: Final = 2.0
#: More pings and pongs than this within one second end the socket with
#: :class:`oe_async.UnexpectedResponseError` (a control-frame flood). Real servers ping every
#: few seconds; answering a ping costs ~20 µs of event-loop CPU, so an unbounded flood of
#: 2-byte pings would stall the loop for seconds.
MAX_CONTROL_FRAMES_PER_SECOND: Final = 50
#: aiohttp reports a close code outside RFC 6455's ranges (such as 604) as a protocol error
#: whose message names the code; this is how a 6xx close from the relay is recognised.
_CLOSE_CODE_RE: Final = re.compile(r"close code:?\s*(\d{3,4})", re.IGNORECASE)
_CLOSED_TYPES: Final = frozenset(
    {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED}
)
_CONTROL_TYPES: Final = frozenset({aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG})
#: Frames discarded between two yields to the loop while dropping a flooding server (~2 ms).
#: Twice what aiohttp queues before it stops reading the socket (1,024 empty frames), so a
#: batch that starts when aiohttp's backlog runs out usually empties its queue (see _abort).
_DRAIN_BATCH: Final = 2048
#: RFC 6455 "policy violation": the close code sent to a server that floods control frames.
_POLICY_VIOLATION: Final = 1008

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


def decode_json(data: str | bytes, what: str) -> Any:
    """``data`` decoded as JSON; :class:`oe_async.UnexpectedResponseError` if it is not.

    Text that is not JSON (or not UTF-8) and JSON nested too deeply for the decoder (a bare
    ``RecursionError`` otherwise) both end here, with a message that names ``what`` but never
    quotes the data.
    """
    try:
        return json.loads(data)
    except ValueError:
        raise UnexpectedResponseError(f"{what}: a message that is not JSON") from None
    except RecursionError:
        raise UnexpectedResponseError(f"{what}: a JSON message nested too deeply") from None


class _ControlFrameBudget:
    """Counts pings and pongs in one-second windows; refuses more than the bound."""

    __slots__ = ("_count", "_limit", "_window")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._window = 0.0
        self._count = 0

    def spend(self, now: float) -> bool:
        """Account one control frame at ``now``; False once the bound is passed."""
        if now - self._window >= 1.0:
            self._window = now
            self._count = 0
        self._count += 1
        return self._count <= self._limit


class PrinterWebSocket:
    """A WebSocket to the printer; a thin wrapper over aiohttp's ``ClientWebSocketResponse``.

    Iterating yields TEXT and BINARY messages and stops at a normal close; ``iter_json()``
    yields them decoded. A close or error that carries an OctoEverywhere 6xx status raises its
    :class:`oe_async.RelayError` when the socket goes through the relay (on the LAN route a
    6xx close is a :class:`oe_async.CommunicationError`); closing the client raises
    :class:`oe_async.ClientClosedError`; a ping/pong flood (more than
    :data:`MAX_CONTROL_FRAMES_PER_SECOND` a second) raises
    :class:`oe_async.UnexpectedResponseError` and closes the socket; other failures raise
    :class:`oe_async.CommunicationError`. Create with ``printer.websocket.connect()``.

    Pings are answered here when the socket leaves them to its reader (aiohttp's
    ``autoping=False``), so the flood bound applies; pongs are never returned.
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        path: str,
        funnel: Funnel,
        relay: bool = True,
        receive_timeout: float | None = None,
    ) -> None:
        self._ws = ws
        self._path = path
        self._funnel = funnel
        self._relay = relay
        self._receive_timeout = _check_timeout(receive_timeout, "receive_timeout")
        self._control = _ControlFrameBudget(MAX_CONTROL_FRAMES_PER_SECOND)

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

    @property
    def through_relay(self) -> bool:
        """True when the socket goes through the relay (False: the printer's LAN address)."""
        return self._relay

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

        Args:
            timeout: seconds to wait for a message (default: ``connect(receive_timeout=)``,
                else no limit). It is a deadline: pings, pongs and a server that does not
                read our pongs do not extend it.

        Raises:
            RelayError: the relay closed the socket with a 6xx code.
            RequestTimeoutError: no message before ``timeout``.
            UnexpectedResponseError: a flood of pings/pongs (the socket is closed).
            CommunicationError: the connection failed.

        """
        deadline = self._receive_timeout if timeout is None else _check_timeout(timeout)
        timer = asyncio.timeout(deadline)
        try:
            async with timer:
                message = await self._next_message()
        except TimeoutError:
            if not timer.expired():
                raise
            raise RequestTimeoutError(
                f"WebSocket {self._path}: no message within {deadline:g} s"
            ) from None
        if message.type in _CLOSED_TYPES and self._funnel.client_closed:
            raise ClientClosedError(f"WebSocket {self._path}: the OctoEverywhere client was closed")
        code = relay_close_code(message) if self._relay else None
        if code is not None:
            raise relay_error(code, app_id=self._funnel.app_id)
        if message.type is aiohttp.WSMsgType.ERROR:
            kind = type(message.data).__name__ if message.data is not None else "error"
            raise CommunicationError(f"WebSocket {self._path} failed ({kind})")
        return message

    async def _next_message(self) -> aiohttp.WSMessage:
        """Aiohttp's next message that is not a ping or pong; pings answered, both bounded."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await self._ws.receive()
                if message.type not in _CONTROL_TYPES:
                    return message
                if not self._control.spend(loop.time()):
                    break
                if message.type is aiohttp.WSMsgType.PING:
                    await self._ws.pong(message.data)
            except TRANSPORT_ERRORS as err:
                raise self._funnel.error_for(err, "WebSocket", self._path) from None
        await self._abort(_POLICY_VIOLATION)
        raise UnexpectedResponseError(
            f"WebSocket {self._path}: more than {MAX_CONTROL_FRAMES_PER_SECOND} pings/pongs "
            "in one second (a control-frame flood); closed"
        )

    async def receive_json(self, timeout: float | None = None) -> Any:
        """The next TEXT or BINARY message decoded as JSON.

        Raises:
            UnexpectedResponseError: the message is not JSON (or nests too deeply).
            CommunicationError: the socket closed first; and what :meth:`receive` raises.

        """
        message = await self.receive(timeout)
        if message.type in _CLOSED_TYPES:
            raise CommunicationError(f"WebSocket {self._path} closed while waiting for JSON")
        return decode_json(message.data, f"WebSocket {self._path}")

    async def iter_json(self, *, timeout: float | None = None) -> AsyncIterator[Any]:
        """Each TEXT or BINARY message decoded as JSON, until the socket closes normally.

        ``async for update in ws.iter_json(): ...``. ``timeout`` is a deadline for each
        message, as in :meth:`receive`.

        Raises:
            UnexpectedResponseError: a message is not JSON (or nests too deeply).
            RelayError, CommunicationError: as :meth:`receive`.

        """
        while True:
            message = await self.receive(timeout)
            if message.type in _CLOSED_TYPES:
                return
            yield decode_json(message.data, f"WebSocket {self._path}")

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> aiohttp.WSMessage:
        message = await self.receive()
        if message.type in _CLOSED_TYPES:
            raise StopAsyncIteration
        return message

    async def close(self, *, code: int = 1000, message: bytes = b"") -> None:
        """Close the socket (idempotent), waiting at most :data:`CLOSE_TIMEOUT` seconds.

        A server that does not answer the close in time (or keeps sending frames instead)
        has its connection dropped.
        """
        with contextlib.suppress(*TRANSPORT_ERRORS):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code=code, message=message)

    async def _abort(self, code: int) -> None:
        """Drop the connection of a flooding server without stalling the event loop.

        aiohttp's ``close()`` reads every frame it already holds (up to one socket read,
        256 KiB: 128,000 empty pings) without yielding, looking for the close answer, and
        nothing public drops a client WebSocket's connection without reading. So those
        frames are discarded here in batches with the loop free in between, until aiohttp
        has to wait for the network; that wait is cancelled at once, which makes its
        ``close()`` send our close frame and drop the connection without reading more.
        Bounded by :data:`CLOSE_TIMEOUT` for a server that never lets the queue run dry.
        """
        deadline = asyncio.get_running_loop().time() + CLOSE_TIMEOUT
        with contextlib.suppress(*TRANSPORT_ERRORS):
            while not self._ws.closed and asyncio.get_running_loop().time() < deadline:
                async with asyncio.timeout(0):  # expires at the first real wait
                    for _ in range(_DRAIN_BATCH):
                        if (await self._ws.receive()).type in _CLOSED_TYPES:
                            break
                await asyncio.sleep(0)
        await self.close(code=code)


def _check_timeout(value: float | None, name: str = "timeout") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds or None")
    return float(value)


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
        self._path = path  # for connecting only: its query may hold a token
        self._shown = shown_path(path)  # what reprs, logs, task names and messages show
        self._on_message = on_message
        self._hello = hello
        self._on_state = on_state
        self._policy = reconnect
        self._options = websocket_options
        self._state = SubscriptionState.CONNECTING
        self._error: BaseException | None = None
        self._connected = asyncio.Event()
        # sub.close() was called from one of its own callbacks: stop when it returns.
        self._closing = False
        #: Successful connects so far.
        self.connects: int = 0
        self._task = websockets.spawn(self._run(), name=f"oe_async subscription {self._shown}")

    def __repr__(self) -> str:
        return f"<Subscription {self._shown} {self._state.value} connects={self.connects}>"

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
            raise CommunicationError(f"subscription {self._shown} stopped")

    async def wait(self) -> None:
        """Wait for the subscription to stop; raise what stopped it (if it was an error)."""
        await asyncio.wait({self._task})  # a cancellation of the caller still propagates
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        if self._error is not None and self._state is SubscriptionState.STOPPED:
            raise self._error

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

    def _stopped_by_close(self) -> bool:
        """True (and the subscription STOPPED) when the client or the subscription was closed.

        Asked after each callback: one that closed the client (``await oe.close()`` in
        ``on_message`` or ``on_state``) or the subscription (``await sub.close()``) ends
        it when it returns, as close() does for every other task.
        """
        closed = self._websockets.client_closed
        if not (closed or self._closing):
            return False
        self._state = SubscriptionState.STOPPED
        self._connected.clear()
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
                self._state = SubscriptionState.STOPPED
                self._connected.clear()
            raise
        except Exception as err:  # noqa: BLE001 (an on_message/on_state callback failed)
            self._error = err
            _LOGGER.debug("subscription %s stopped by its callback: %r", self._shown, err)
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
        receive_timeout = _check_timeout(receive_timeout, "receive_timeout")
        async with self._funnel.websocket(
            call,
            protocols=protocols,
            heartbeat=heartbeat,
            # PrinterWebSocket.receive() applies it as a deadline; aiohttp would restart it
            # at every ping.
            receive_timeout=None,
            handshake_timeout=handshake_timeout,
            max_msg_size=max_msg_size,
        ) as (ws, where, through_relay):
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
        return self._funnel.spawn(coro, name=name)

    @property
    def client_closed(self) -> bool:
        """True once the client was closed."""
        return self._funnel.client_closed
