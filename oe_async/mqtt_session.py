"""One MQTT 3.1.1 session over a WebSocket: what ``printer.mqtt.connect()`` yields.

The session sends CONNECT (clean session, protocol level 4) and waits for CONNACK; a
refusal raises its :class:`oe_async.MQTTConnectionRefusedError` subclass. Then two tasks
owned by the client run until the session ends: a reader (which answers QoS 1 messages with
PUBACK and matches SUBACK/UNSUBACK/PUBACK to their requests) and a keepalive that sends
PINGREQ when nothing was sent for half the keepalive and ends the session with
:class:`oe_async.RequestTimeoutError` when a ping gets no answer within the keepalive.

Messages wait in a bounded queue (``max_queued``) for :meth:`MQTTSession.messages`; when it
is full the reader stops reading (back-pressure reaches the server), nothing is dropped.
Whatever ends the session (the server closing, a 6xx close code from the relay, a protocol
error, the client closing) is raised by every pending call and, after the queued messages,
by ``messages()``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final, Protocol

import aiohttp

from .errors import (
    ClientClosedError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    RequestTimeoutError,
)
from .mqtt_codec import (
    MQTTDecoder,
    encode_puback,
    encode_publish,
    encode_subscribe,
    encode_unsubscribe,
)
from .mqtt_errors import MQTTSubscribeError, connack_error
from .mqtt_packets import (
    DISCONNECT,
    PINGREQ,
    SUBACK_FAILURE,
    ConnAck,
    MQTTMessage,
    MQTTProtocolError,
    Packet,
    Payload,
    PingResp,
    PubAck,
    SubAck,
    SubscribeResult,
    UnsubAck,
    payload_bytes,
)

__all__ = [
    "DEFAULT_ACK_TIMEOUT",
    "DEFAULT_KEEPALIVE",
    "DEFAULT_MAX_QUEUED",
    "MQTTSession",
    "MQTTSocket",
    "Spawn",
]

_LOGGER = logging.getLogger(__package__)

#: Seconds to wait for a SUBACK, UNSUBACK or PUBACK by default. The relay's proxy waits up
#: to 15 s (SUBSCRIBE) and 20 s (QoS 1 PUBLISH) for the printer's broker before it answers.
DEFAULT_ACK_TIMEOUT: Final = 30.0
#: The keepalive asked for by default (seconds); the relay closes a silent session after
#: 1.5 times it. A PINGREQ goes out after half of it without another packet.
DEFAULT_KEEPALIVE: Final = 30
#: Messages held for ``messages()`` before the reader waits for the app (back-pressure).
DEFAULT_MAX_QUEUED: Final = 1000
_MAX_PACKET_ID: Final = 65_535
_BINARY: Final = aiohttp.WSMsgType.BINARY
_TEXT: Final = aiohttp.WSMsgType.TEXT
#: WebSocket close code for a peer that broke the protocol (RFC 6455).
_PROTOCOL_ERROR_CLOSE: Final = 1002

_Ack = PubAck | SubAck | UnsubAck


class MQTTSocket(Protocol):
    """The WebSocket a session runs on (``oe_async.PrinterWebSocket`` is one)."""

    @property
    def through_relay(self) -> bool:
        """True when the socket goes through OctoEverywhere's relay."""
        ...

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message."""
        ...

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        """The next message; raises the relay's 6xx and network errors as oe_async errors."""
        ...

    async def close(self, *, code: int = 1000, message: bytes = b"") -> None:
        """Close the socket (bounded)."""
        ...


class Spawn(Protocol):
    """Starts a task the client owns (and cancels when it closes)."""

    def __call__(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` in a task named ``name``."""
        ...


def check_max_queued(max_queued: object) -> None:
    """Raise :class:`InvalidArgumentError` unless ``max_queued`` is an integer >= 1."""
    if isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued < 1:
        raise InvalidArgumentError("max_queued must be an integer >= 1")


class _MessageQueue:
    """A bounded FIFO with one reader and one writer; ``end()`` wakes both for good."""

    __slots__ = ("_ended", "_getter", "_items", "_limit", "_putter")

    def __init__(self, limit: int) -> None:
        self._items: collections.deque[MQTTMessage] = collections.deque()
        self._limit = limit
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None
        self._ended = False

    @property
    def blocked(self) -> bool:
        """True while a ``put()`` waits for room (the app is not reading)."""
        return self._putter is not None

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: MQTTMessage) -> None:
        while len(self._items) >= self._limit and not self._ended:
            self._putter = asyncio.get_running_loop().create_future()
            try:
                await self._putter
            finally:
                self._putter = None
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    async def get(self) -> MQTTMessage | None:
        """The next item, or None once the queue ended and is empty."""
        while not self._items:
            if self._ended:
                return None
            if self._getter is not None:
                raise InvalidArgumentError("only one task at a time can read MQTT messages")
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        item = self._items.popleft()
        putter = self._putter
        if putter is not None and not putter.done():
            putter.set_result(None)
        return item

    def end(self) -> None:
        self._ended = True
        for waiter in (self._getter, self._putter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


class MQTTSession:
    """One MQTT session on one WebSocket. Get it from ``printer.mqtt.connect()``.

    Use it within that ``async with`` block: :meth:`subscribe`, :meth:`unsubscribe`,
    :meth:`publish` and :meth:`messages` (or ``async for message in session``). Leaving the
    block sends DISCONNECT and closes the socket.
    """

    def __init__(
        self,
        socket: MQTTSocket,
        *,
        client_id: str,
        keepalive: int,
        max_packet_size: int,
        max_queued: int,
        spawn: Spawn,
        client_closed: Callable[[], bool],
    ) -> None:
        check_max_queued(max_queued)
        self._socket = socket
        self._client_id = client_id
        self._keepalive = keepalive
        self._decoder = MQTTDecoder(max_packet_size=max_packet_size)
        self._queue = _MessageQueue(max_queued)
        self._spawn = spawn
        self._client_closed = client_closed
        #: packet id -> (the acknowledgement expected, its waiter)
        self._waiters: dict[int, tuple[type[_Ack], asyncio.Future[Packet]]] = {}
        self._next_id = 0
        self._error: OctoEverywhereError | None = None
        self._ended = False
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._last_sent = self._loop.time()
        self._ping_sent: float | None = None
        self._early: list[Packet] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: PINGRESPs received (each answers one of our keepalive pings).
        self.pings: int = 0
        #: Messages received so far (QoS 0 and 1).
        self.received: int = 0

    def __repr__(self) -> str:
        state = "ended" if self._ended else "open"
        return f"<MQTTSession {state} relay={self._socket.through_relay} received={self.received}>"

    @property
    def client_id(self) -> str:
        """The MQTT client id this session connected with."""
        return self._client_id

    @property
    def through_relay(self) -> bool:
        """True when the session goes through OctoEverywhere's relay."""
        return self._socket.through_relay

    @property
    def closed(self) -> bool:
        """True once the session ended (closed by the app, the server or an error)."""
        return self._ended

    @property
    def error(self) -> OctoEverywhereError | None:
        """What ended the session, if it failed (None while open or after a clean close)."""
        return self._error

    # ------------------------------------------------------------------ start and end

    async def start(self, connect: bytes, *, timeout: float | None) -> None:
        """Send CONNECT, wait for CONNACK, start the reader and the keepalive.

        Raises:
            MQTTConnectionRefusedError: a return code other than 0 (its subclass).
            MQTTProtocolError: the answer is not a CONNACK.
            RequestTimeoutError: no CONNACK within ``timeout`` seconds.
            CommunicationError: the connection failed or closed first.

        """
        await self._send(connect)
        timer = asyncio.timeout(timeout)
        try:
            async with timer:
                packets: list[Packet] = []
                while not packets:
                    message = await self._socket.receive()
                    if message.type is _BINARY:
                        packets = self._decoder.feed(message.data)
                    elif message.type is _TEXT:
                        raise MQTTProtocolError(
                            "MQTT protocol error: a text WebSocket message (MQTT is binary)"
                        )
                    else:
                        raise CommunicationError(
                            "The printer's MQTT broker closed the connection.",
                            detail="the server closed the WebSocket before its MQTT CONNACK",
                        )
        except TimeoutError:
            if not timer.expired():
                raise
            raise RequestTimeoutError(
                f"no MQTT CONNACK within {timeout:g} s of the CONNECT"
            ) from None
        answer, self._early = packets[0], packets[1:]
        if not isinstance(answer, ConnAck):
            raise MQTTProtocolError("MQTT protocol error: the first packet was not a CONNACK")
        if answer.return_code:
            raise connack_error(answer.return_code)
        name = f"oe_async MQTT session {self._client_id}"
        self._tasks.add(self._spawn(self._read(), name=name + " reader"))
        if self._keepalive:
            self._tasks.add(self._spawn(self._keep_alive(), name=name + " keepalive"))

    async def close(self) -> None:
        """Send DISCONNECT (when the session is still up), close the socket, stop its tasks.

        Idempotent. Pending calls raise :class:`oe_async.CommunicationError`.
        """
        if not self._closing:
            self._closing = True
            if not self._ended:
                with contextlib.suppress(OctoEverywhereError):
                    await self._socket.send_bytes(DISCONNECT)
            self._finish(None)
            await self._socket.close()
        tasks = self._tasks
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _finish(self, error: OctoEverywhereError | None) -> None:
        """End the session once: fail every pending call, end the message queue."""
        if self._ended:
            return
        self._ended = True
        self._error = error
        pending = error or CommunicationError(
            "The MQTT session was closed before the broker answered."
        )
        waiters, self._waiters = self._waiters, {}
        for _, waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(pending)
                waiter.exception()  # retrieved: a waiter nobody awaits is no "never retrieved"
        self._queue.end()
        if error is not None:
            _LOGGER.debug("MQTT session %s ended: %s", self._client_id, error)

    def _ended_error(self) -> OctoEverywhereError:
        return self._error or CommunicationError("The MQTT session is closed.")

    # ------------------------------------------------------------------ sending

    async def _send(self, data: bytes) -> None:
        if self._ended:
            raise self._ended_error()
        self._last_sent = self._loop.time()
        try:
            await self._socket.send_bytes(data)
        except OctoEverywhereError as err:
            self._finish(err)
            raise

    def _expect(self, kind: type[_Ack]) -> tuple[int, asyncio.Future[Packet]]:
        """A free packet id and the waiter for its acknowledgement of type ``kind``."""
        if self._ended:
            raise self._ended_error()
        if len(self._waiters) >= _MAX_PACKET_ID:
            raise CommunicationError(
                "Too many MQTT requests are waiting for the broker.",
                detail="no free MQTT packet id: 65,535 acknowledgements outstanding",
            )
        packet_id = self._next_id
        while True:
            packet_id = packet_id % _MAX_PACKET_ID + 1
            if packet_id not in self._waiters:
                break
        self._next_id = packet_id
        waiter: asyncio.Future[Packet] = self._loop.create_future()
        self._waiters[packet_id] = (kind, waiter)
        return packet_id, waiter

    async def _acknowledged(
        self, waiter: asyncio.Future[Packet], timeout: float | None, what: str
    ) -> Packet:
        if timeout is None:
            return await waiter
        timer = asyncio.timeout(timeout)
        try:
            async with timer:
                return await waiter
        except TimeoutError:
            if not timer.expired():
                raise
            raise RequestTimeoutError(f"no MQTT {what} within {timeout:g} s") from None

    async def publish(
        self,
        topic: str,
        payload: Payload = b"",
        *,
        qos: int = 0,
        retain: bool = False,
        timeout: float | None = DEFAULT_ACK_TIMEOUT,
        dup: bool = False,
    ) -> None:
        """Publish a message; with ``qos=1`` wait until the broker acknowledges it (PUBACK).

        Args:
            topic: the topic name (no wildcards).
            payload: bytes, text (UTF-8) or a dict/list (sent as compact JSON).
            qos: 0 (at most once) or 1 (at least once).
            retain: ask the broker to keep it as the topic's retained message.
            timeout: seconds to wait for the PUBACK (None: as long as the session lives).
            dup: mark a QoS 1 message as a possible re-delivery (set by retries).

        Raises:
            InvalidArgumentError: a bad topic, QoS or payload (nothing is sent).
            RequestTimeoutError: no PUBACK in time (the message may still arrive).
            CommunicationError: the session ended first (or what ended it).

        """
        data = payload_bytes(payload)
        if qos == 0 and type(qos) is int:
            await self._send(encode_publish(topic, data, retain=retain))
            return
        if qos != 1 or type(qos) is not int:
            raise InvalidArgumentError("publish() supports QoS 0 and 1")
        packet_id, waiter = self._expect(PubAck)
        try:
            packet = encode_publish(topic, data, qos=1, retain=retain, dup=dup, packet_id=packet_id)
        except InvalidArgumentError:
            del self._waiters[packet_id]
            raise
        await self._send(packet)
        await self._acknowledged(waiter, timeout, "PUBACK")

    async def subscribe(
        self, *topic_filters: str, qos: int = 0, timeout: float | None = DEFAULT_ACK_TIMEOUT
    ) -> list[SubscribeResult]:
        """Subscribe to topic filters; returns what the broker granted for each.

        Args:
            topic_filters: one or more filters (``+`` one level, ``#`` the rest).
            qos: the QoS asked for every filter, 0 or 1.
            timeout: seconds to wait for the SUBACK (None: as long as the session lives).

        Raises:
            MQTTSubscribeError: the broker refused one or more filters (0x80); its
                ``results`` say which, and the others stay subscribed.
            InvalidArgumentError: a malformed filter or QoS (nothing is sent).
            RequestTimeoutError, CommunicationError: as :meth:`publish`.

        """
        if not topic_filters:
            raise InvalidArgumentError("subscribe() needs at least one topic filter")
        if isinstance(qos, bool) or qos not in (0, 1):
            raise InvalidArgumentError("subscribe() supports QoS 0 and 1")
        packet_id, waiter = self._expect(SubAck)
        try:
            packet = encode_subscribe(packet_id, [(f, qos) for f in topic_filters])
        except InvalidArgumentError:
            del self._waiters[packet_id]
            raise
        await self._send(packet)
        answer = await self._acknowledged(waiter, timeout, "SUBACK")
        assert isinstance(answer, SubAck)  # noqa: S101 (the reader checked the type)
        if len(answer.return_codes) != len(topic_filters):
            error = MQTTProtocolError("MQTT protocol error: a SUBACK with the wrong code count")
            self._finish(error)
            await self._socket.close(code=_PROTOCOL_ERROR_CLOSE)
            raise error
        results = [
            SubscribeResult(topic_filter=f, granted_qos=None if code == SUBACK_FAILURE else code)
            for f, code in zip(topic_filters, answer.return_codes, strict=True)
        ]
        if not all(result.ok for result in results):
            raise MQTTSubscribeError(results)
        return results

    async def unsubscribe(
        self, *topic_filters: str, timeout: float | None = DEFAULT_ACK_TIMEOUT
    ) -> None:
        """Unsubscribe from topic filters and wait for the UNSUBACK.

        Raises what :meth:`subscribe` raises (but never :class:`MQTTSubscribeError`).
        """
        if not topic_filters:
            raise InvalidArgumentError("unsubscribe() needs at least one topic filter")
        packet_id, waiter = self._expect(UnsubAck)
        try:
            packet = encode_unsubscribe(packet_id, list(topic_filters))
        except InvalidArgumentError:
            del self._waiters[packet_id]
            raise
        await self._send(packet)
        await self._acknowledged(waiter, timeout, "UNSUBACK")

    # ------------------------------------------------------------------ receiving

    async def messages(self) -> AsyncIterator[MQTTMessage]:
        """Every message received, in order, until the session ends.

        ``async for message in session.messages(): ...`` (one reader at a time). After a
        clean close the iteration stops; when the session failed, the messages already
        received come first, then the error that ended it is raised.

        Raises:
            RelayError: the relay closed the socket with a 6xx code.
            ClientClosedError: the client was closed.
            CommunicationError: the server closed the connection, or it failed.
            MQTTProtocolError: the server broke the protocol.

        """
        while True:
            message = await self._queue.get()
            if message is None:
                if self._error is not None:
                    raise self._error
                return
            yield message

    def __aiter__(self) -> AsyncIterator[MQTTMessage]:
        return self.messages()

    async def _read(self) -> None:
        error: OctoEverywhereError | None = None
        try:
            for packet in self._early:
                await self._dispatch(packet)
            self._early = []
            socket = self._socket
            while not self._ended:
                message = await socket.receive()
                if message.type is _BINARY:
                    for packet in self._decoder.feed(message.data):
                        await self._dispatch(packet)
                elif message.type is _TEXT:
                    raise MQTTProtocolError(
                        "MQTT protocol error: a text WebSocket message (MQTT is binary)"
                    )
                elif not self._closing:
                    raise CommunicationError(
                        "The printer's MQTT broker closed the connection.",
                        detail="the server closed the MQTT WebSocket",
                    )
                else:
                    break
        except MQTTProtocolError as err:
            error = err
            self._finish(err)
            await self._socket.close(code=_PROTOCOL_ERROR_CLOSE)
        except OctoEverywhereError as err:
            error = err
        except asyncio.CancelledError:
            if self._client_closed():
                self._finish(ClientClosedError("MQTT: the OctoEverywhere client was closed"))
            else:
                self._finish(None)
            raise
        self._finish(error)

    async def _dispatch(self, packet: Packet) -> None:
        if isinstance(packet, MQTTMessage):
            self.received += 1
            if packet.qos == 0:
                await self._queue.put(packet)
            elif packet.qos == 1 and packet.packet_id is not None:
                await self._queue.put(packet)
                await self._send(encode_puback(packet.packet_id))
            else:
                raise MQTTProtocolError("MQTT protocol error: a QoS 2 message (none was asked)")
            return
        if isinstance(packet, PubAck | SubAck | UnsubAck):
            entry = self._waiters.pop(packet.packet_id, None)
            if entry is None:
                return  # a late answer to a call that timed out or was cancelled
            kind, waiter = entry
            if not isinstance(packet, kind):
                raise MQTTProtocolError(
                    f"MQTT protocol error: a {type(packet).__name__} for a {kind.__name__}"
                )
            if not waiter.done():
                waiter.set_result(packet)
            return
        if isinstance(packet, PingResp):
            self.pings += 1
            self._ping_sent = None
            return
        raise MQTTProtocolError(f"MQTT protocol error: an unexpected {type(packet).__name__}")

    async def _keep_alive(self) -> None:
        """PINGREQ after half the keepalive without sending; fail on a ping left unanswered."""
        interval = self._keepalive / 2
        loop = self._loop
        while not self._ended:
            now = loop.time()
            due = self._last_sent + interval
            if self._ping_sent is not None:
                if self._queue.blocked:
                    self._ping_sent = now  # the reader waits for the app: not the server's fault
                elif now - self._ping_sent >= self._keepalive:
                    error = RequestTimeoutError(
                        "The printer's MQTT broker stopped answering.",
                        detail=f"no MQTT PINGRESP within {self._keepalive} s of a PINGREQ",
                    )
                    self._finish(error)
                    await self._socket.close()
                    return
                due = min(due, self._ping_sent + self._keepalive)
            if now >= self._last_sent + interval:
                if self._ping_sent is None:
                    self._ping_sent = now
                try:
                    await self._send(PINGREQ)
                except OctoEverywhereError:
                    return  # _send ended the session with it
                continue
            await asyncio.sleep(due - now)
