"""One WebSocket to the printer: :class:`PrinterWebSocket`, with its bounds.

A ``receive(timeout=...)`` is a deadline for a message however many pings arrive; more than
:data:`MAX_CONTROL_FRAMES_PER_SECOND` pings/pongs in a second end the socket; close() waits
at most :data:`CLOSE_TIMEOUT` seconds for the server; a 6xx close code is the relay's error
only on the relay route.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Final, Self

import aiohttp
import attrs

from oe_async._funnel import Funnel
from oe_async._http import TRANSPORT_ERRORS
from oe_async.errors import (
    ClientClosedError,
    CommunicationError,
    InvalidArgumentError,
    RequestTimeoutError,
    UnexpectedResponseError,
    is_relay_status,
    relay_error,
)

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


@attrs.define
class _ControlFrameBudget:
    """Counts pings and pongs in one-second windows; refuses more than the bound."""

    _limit: int
    _window: float = attrs.field(default=0.0, init=False)
    _count: int = attrs.field(default=0, init=False)

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
        self._receive_timeout = check_timeout(receive_timeout, "receive_timeout")
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
        deadline = self._receive_timeout if timeout is None else check_timeout(timeout)
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
        if message.type in _CLOSED_TYPES and self._funnel.transport.closed:
            raise ClientClosedError(f"WebSocket {self._path}: the OctoEverywhere client was closed")
        code = relay_close_code(message) if self._relay else None
        if code is not None:
            raise relay_error(code, app_id=self._funnel.transport.app_id)
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


def check_timeout(value: float | None, name: str = "timeout") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds or None")
    return float(value)
