"""MQTT through the relay: ``printer.mqtt`` (Bambu Lab, Elegoo Centauri Carbon 2).

OctoEverywhere exposes a printer's MQTT broker at
``/octoeverywhere-command-api/proxy/mqtt`` on the App Connection URL: a WebSocket that
carries raw MQTT 3.1.1 packets in binary messages, authenticated like every other request.
All app sessions share the plugin's one connection to the printer's broker; the printer's
own credentials stay on the printer. :meth:`MQTT.connect` opens one session over the
funnel's WebSocket (same auth pins, proxies, TLS rules and connection budget; the relay only,
since the path is the plugin's), and :meth:`MQTT.subscribe` keeps one open in the
background. :class:`oe_async.BambuPrinter` (:mod:`oe_async.bambu_mqtt`) adds a Bambu Lab
printer's topics, commands and typed report on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Protocol

from .errors import (
    ClientClosedError,
    CommunicationError,
    InvalidArgumentError,
    OctoEverywhereError,
    RequestTimeoutError,
)
from .mqtt_codec import DEFAULT_MAX_PACKET_SIZE, MQTTDecoder, encode_connect
from .mqtt_packets import (
    MQTTMessage,
    Payload,
    payload_bytes,
    redact_topic,
    validate_topic,
    validate_topic_filter,
)
from .mqtt_session import (
    DEFAULT_KEEPALIVE,
    DEFAULT_MAX_QUEUED,
    MQTTSession,
    MQTTSocket,
    check_max_queued,
)
from .retry import ReconnectPolicy, is_temporary
from .subscription import (
    StateHandler,
    SubscriptionEvent,
    SubscriptionState,
    _Reconnecting,
    call_handler,
)

__all__ = [
    "MQTT",
    "PROXY_PATH",
    "MQTTSubscription",
    "MessageCallback",
    "SessionHook",
]

_LOGGER = logging.getLogger(__package__)

#: The relay's MQTT proxy (the plugin command API; always through the relay).
PROXY_PATH: Final = "/octoeverywhere-command-api/proxy/mqtt"
#: The WebSocket sub-protocol MQTT clients offer (OASIS MQTT 3.1.1, section 6).
SUBPROTOCOL: Final = "mqtt"
#: A connection that lasts this long (seconds) resets a subscription's back-off.
STABLE_AFTER: Final = 10.0

#: ``on_message(message)``, sync or async, for each message a subscription receives.
MessageCallback = Callable[[MQTTMessage], Awaitable[None] | None]
#: ``on_connect(session)``, async: runs after each (re)connect and resubscribe.
SessionHook = Callable[[MQTTSession], Awaitable[None]]


class WebSocketOpener(Protocol):
    """What the MQTT feature needs of ``printer.websocket`` (:class:`oe_async.WebSockets`)."""

    def connect(
        self,
        path: str,
        *,
        protocols: tuple[str, ...] = (),
        heartbeat: float | None = ...,
        receive_timeout: float | None = None,
        handshake_timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        max_msg_size: int = ...,
    ) -> AbstractAsyncContextManager[MQTTSocket]:
        """Open a WebSocket through the funnel."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Start a task the client owns."""
        ...

    @property
    def client_closed(self) -> bool:
        """True once the client was closed."""
        ...


def _new_client_id() -> str:
    # The relay closes an older session that has the same client id: one id per use.
    return f"oe-async-{secrets.token_hex(8)}"


class MQTT:
    """MQTT to the printer through the relay: ``printer.mqtt``."""

    __slots__ = ("_websockets",)

    def __init__(self, websockets: WebSocketOpener) -> None:
        self._websockets = websockets

    def __repr__(self) -> str:
        return "<MQTT>"

    @contextlib.asynccontextmanager
    async def connect(
        self,
        *,
        path: str = PROXY_PATH,
        client_id: str | None = None,
        keepalive: int = DEFAULT_KEEPALIVE,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 30.0,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        max_queued: int = DEFAULT_MAX_QUEUED,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[MQTTSession]:
        """Open an MQTT session: ``async with printer.mqtt.connect() as mq: ...``.

        The WebSocket offers the ``mqtt`` sub-protocol and carries the relay credentials like
        every request; then CONNECT (clean session, MQTT 3.1.1) and its CONNACK. Leaving the
        block sends DISCONNECT and closes the socket.

        Args:
            path: the WebSocket path (default: the relay's MQTT proxy; a broker's own
                WebSocket path, e.g. ``/mqtt``, also works).
            client_id: the MQTT client id (default: a new random one; the relay closes an
                older session with the same id).
            keepalive: seconds (1-65,535; 0 turns keepalive off); the relay closes a
                session silent for 1.5 times it, so a PINGREQ goes out after half of it.
            username: for a broker that asks (the relay does not: the printer's
                credentials stay on the printer).
            password: the broker's password, with ``username``. Never logged.
            connect_timeout: seconds for the handshake, then as long again for CONNACK.
            max_packet_size: the largest packet accepted (bytes).
            max_queued: messages held for :meth:`MQTTSession.messages` before reading
                stops until the app catches up (nothing is dropped).
            headers: extra handshake headers.

        Raises:
            RelayError: a 6xx answer to the handshake (e.g. 601 printer offline, 604).
            MQTTConnectionRefusedError: CONNACK refused (3: the printer's broker is down).
            RequestTimeoutError: no handshake or CONNACK in time.
            CommunicationError: the connection failed.
            InvalidArgumentError: a bad option (nothing is sent).

        """
        if client_id is None:
            client_id = _new_client_id()
        connect = _checked_connect(
            client_id,
            keepalive=keepalive,
            username=username,
            password=password,
            connect_timeout=connect_timeout,
            max_packet_size=max_packet_size,
            max_queued=max_queued,
        )
        async with self._websockets.connect(
            path,
            protocols=(SUBPROTOCOL,),
            heartbeat=None,  # MQTT's own keepalive checks the whole path to the broker
            handshake_timeout=connect_timeout,
            headers=headers,
            max_msg_size=2 * max_packet_size + 16,
        ) as socket:
            session = MQTTSession(
                socket,
                client_id=client_id,
                keepalive=keepalive,
                max_packet_size=max_packet_size,
                max_queued=max_queued,
                spawn=self._websockets.spawn,
                client_closed=lambda: self._websockets.client_closed,
            )
            await session.start(connect, timeout=connect_timeout)
            try:
                yield session
            finally:
                await session.close()

    def subscribe(
        self,
        topic_filters: str | Sequence[str],
        on_message: MessageCallback,
        *,
        qos: int = 0,
        on_state: StateHandler | None = None,
        on_connect: SessionHook | None = None,
        reconnect: ReconnectPolicy | None = None,
        stable_after: float = STABLE_AFTER,
        **connect_options: Any,
    ) -> MQTTSubscription:
        """Keep a session subscribed in the background; hand every message to ``on_message``.

        After each (re)connect it subscribes again, then runs ``on_connect(session)`` (e.g.
        ask for a full report), then reports CONNECTED.

        Args:
            topic_filters: a filter or several.
            on_message: called (sync or async) with each :class:`oe_async.MQTTMessage`.
            qos: the QoS asked for the filters (0 or 1).
            on_state: called with a :class:`oe_async.SubscriptionEvent` on connected,
                reconnected, disconnected (with the typed error) and stopped.
            on_connect: an async callable run with the :class:`oe_async.MQTTSession` after
                each (re)subscribe.
            reconnect: back-off and give-up rule; default: full jitter from 1 s to 60 s,
                never giving up on temporary errors.
            stable_after: a connection must last this many seconds to reset the back-off, so
                a refused CONNECT (the printer's broker down) or a session dropped at once
                waits longer each time, never reconnecting every second.
            connect_options: what :meth:`connect` takes (``path``, ``keepalive``...).

        The task belongs to the client: it stops with ``OctoEverywhere.close()``,
        :meth:`MQTTSubscription.close`, a permanent error or an exception of a callback
        (``wait()`` raises those).

        Raises:
            InvalidArgumentError: a bad filter, QoS or callback (nothing is started).

        """
        filters = (topic_filters,) if isinstance(topic_filters, str) else tuple(topic_filters)
        return MQTTSubscription(
            self,
            filters,
            on_message,
            qos=qos,
            on_state=on_state,
            on_connect=on_connect,
            reconnect=reconnect or ReconnectPolicy(max_failures=None, max_delay=60.0),
            stable_after=stable_after,
            connect_options=connect_options,
        )

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` (a subscription's loop) in a task the client owns."""
        return self._websockets.spawn(coro, name=name)

    @property
    def client_closed(self) -> bool:
        """True once the client was closed."""
        return self._websockets.client_closed


class MQTTSubscription(_Reconnecting):
    """An MQTT session kept open and subscribed in the background.

    Create with ``printer.mqtt.subscribe()``. :meth:`publish` sends through the live
    session (waiting for one); a QoS 1 message that the broker did not acknowledge before
    the connection dropped is sent again, marked DUP, after the reconnect.
    """

    def __init__(
        self,
        mqtt: MQTT,
        topic_filters: tuple[str, ...],
        on_message: MessageCallback,
        *,
        qos: int,
        on_state: StateHandler | None,
        on_connect: SessionHook | None,
        reconnect: ReconnectPolicy,
        stable_after: float,
        connect_options: dict[str, Any],
    ) -> None:
        if not topic_filters:
            raise InvalidArgumentError("subscribe() needs at least one topic filter")
        for topic_filter in topic_filters:
            validate_topic_filter(topic_filter)
        if isinstance(qos, bool) or qos not in (0, 1):
            raise InvalidArgumentError("subscribe() supports QoS 0 and 1")
        handlers = (on_message, on_state, on_connect)
        if not callable(on_message) or any(h is not None and not callable(h) for h in handlers):
            raise InvalidArgumentError("on_message, on_state and on_connect must be callables")
        if isinstance(stable_after, bool) or not isinstance(stable_after, int | float):
            raise InvalidArgumentError("stable_after must be a number of seconds")
        self._mqtt = mqtt
        self._filters = topic_filters
        self._on_message = on_message
        self._qos = qos
        self._on_connect = on_connect
        self._policy = reconnect
        self._stable_after = float(stable_after)
        self._options = {"client_id": _new_client_id(), **connect_options}
        _check_connect_options(self._options)  # here, not first in the background task
        self._session: MQTTSession | None = None
        #: Successful connects so far.
        self.connects: int = 0
        #: Connection attempts that failed or ended before ``stable_after`` seconds.
        self.failures: int = 0
        shown = ", ".join(redact_topic(f) for f in topic_filters)
        super().__init__(on_state)  # the state, before the loop starts
        self._task = mqtt.spawn(self._run(), name=f"oe_async MQTT subscription {shown}")

    def __repr__(self) -> str:
        shown = ", ".join(redact_topic(f) for f in self._filters)
        return f"<MQTTSubscription [{shown}] {self._state.value} connects={self.connects}>"

    @property
    def session(self) -> MQTTSession | None:
        """The live session while CONNECTED, else None."""
        return self._session if self._state is SubscriptionState.CONNECTED else None

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the session is (re)connected; raise if the subscription stopped."""
        await self._live_session(timeout)

    async def _live_session(self, timeout: float | None) -> MQTTSession:
        async with asyncio.timeout(timeout):
            while True:
                session = self.session
                if session is not None and not session.closed:
                    return session
                if self._task.done():
                    await self.wait()
                    raise CommunicationError("The MQTT subscription has stopped.")
                waiter = asyncio.ensure_future(self._connected.wait())
                try:
                    await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()

    async def close(self) -> None:
        """Stop the subscription and close its session (idempotent)."""
        self._task.cancel()
        await asyncio.wait({self._task})

    async def publish(
        self,
        topic: str,
        payload: Payload = b"",
        *,
        qos: int = 0,
        retain: bool = False,
        timeout: float | None = 60.0,
    ) -> None:
        """Publish through the live session, waiting for one if it is reconnecting.

        With ``qos=1`` it returns once the broker acknowledged the message; a message the
        connection lost on the way is sent again (DUP) on the next connection.

        Args:
            topic: the topic name (no wildcards).
            payload: bytes, text (UTF-8) or a dict/list (sent as compact JSON).
            qos: 0 (at most once) or 1 (at least once, re-sent after a reconnect).
            retain: ask the broker to keep it as the topic's retained message.
            timeout: seconds for the whole delivery, reconnects included (None: no limit).

        Raises:
            RequestTimeoutError: not delivered in time.
            InvalidArgumentError: a bad topic, QoS or payload (nothing is sent).
            CommunicationError: the subscription stopped (or the error that stopped it).

        """
        validate_topic(topic)
        data = payload_bytes(payload)
        if isinstance(qos, bool) or qos not in (0, 1):
            raise InvalidArgumentError("publish() supports QoS 0 and 1")
        timer = asyncio.timeout(timeout)
        try:
            async with timer:
                dup = False
                while True:
                    session = await self._live_session(None)
                    try:
                        await session.publish(
                            topic, data, qos=qos, retain=retain, timeout=None, dup=dup
                        )
                    except OctoEverywhereError as err:
                        if qos == 0 or not session.closed or not is_temporary(err):
                            raise
                        dup = True  # lost with its connection: send it again on the next
                        continue
                    return
        except TimeoutError:
            if not timer.expired():
                raise
            raise RequestTimeoutError(
                f"MQTT publish to {redact_topic(topic)} not delivered within {timeout:g} s"
            ) from None

    async def _attempt(self, loop: asyncio.AbstractEventLoop) -> tuple[OctoEverywhereError, bool]:
        """One connection, until it ends: (why it ended, whether it lasted long enough)."""
        started: float | None = None
        try:
            async with self._mqtt.connect(**self._options) as session:
                await session.subscribe(*self._filters, qos=self._qos)
                if self._on_connect is not None:
                    await self._on_connect(session)
                self._session = session
                self.connects += 1
                started = loop.time()
                await self._emit(
                    SubscriptionEvent(
                        state=SubscriptionState.CONNECTED, reconnected=self.connects > 1
                    )
                )
                async for message in session.messages():
                    await call_handler(self._on_message, message)
            error: OctoEverywhereError = CommunicationError(
                "The printer's MQTT broker closed the connection."
            )
        except OctoEverywhereError as err:
            error = err
        finally:
            self._session = None
        stable = started is not None and loop.time() - started >= self._stable_after
        return error, stable

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                error, stable = await self._attempt(loop)
                self._error = error
                if not is_temporary(error):
                    break
                self.failures = 0 if stable else self.failures + 1
                limit = self._policy.max_failures
                if limit is not None and self.failures >= limit:
                    break
                await self._emit(
                    SubscriptionEvent(
                        state=SubscriptionState.DISCONNECTED, error=error, failures=self.failures
                    )
                )
                delay = self._policy.delay(max(self.failures, 1), error)
                _LOGGER.debug("MQTT subscription: reconnecting in %.2f s (%s)", delay, error)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self._mark_stopped()
            if self._mqtt.client_closed:  # not close(): wait() says why it stopped
                self._error = ClientClosedError("MQTT subscription: the client was closed")
            raise
        except Exception as err:  # noqa: BLE001 (a callback failed: wait() raises it)
            self._error = err
            _LOGGER.debug("MQTT subscription stopped by its callback: %r", err)
        await self._report_stopped()


def _checked_connect(
    client_id: str,
    *,
    keepalive: int,
    username: str | None,
    password: str | None,
    connect_timeout: float,
    max_packet_size: int,
    max_queued: int,
) -> bytes:
    """The CONNECT packet for these options, or :class:`InvalidArgumentError` (nothing sent)."""
    if isinstance(keepalive, bool) or not isinstance(keepalive, int) or keepalive < 0:
        raise InvalidArgumentError("keepalive must be a whole number of seconds >= 0")
    connect = encode_connect(client_id, keepalive=keepalive, username=username, password=password)
    MQTTDecoder(max_packet_size=max_packet_size)  # checks its type and range
    if (
        isinstance(connect_timeout, bool)
        or not isinstance(connect_timeout, int | float)
        or not connect_timeout > 0
    ):
        raise InvalidArgumentError("connect_timeout must be a positive number of seconds")
    check_max_queued(max_queued)
    return connect


def _check_connect_options(options: Mapping[str, Any]) -> None:
    """Check options meant for :meth:`MQTT.connect` as it would: names and values."""
    signature = inspect.signature(MQTT.connect)
    try:
        bound = signature.bind(None, **options)
    except TypeError:
        unknown = sorted(set(options) - set(signature.parameters))
        raise InvalidArgumentError(
            f"not an option of printer.mqtt.connect(): {', '.join(unknown)}"
        ) from None
    bound.apply_defaults()
    args = bound.arguments
    client_id = args["client_id"]
    _checked_connect(
        _new_client_id() if client_id is None else client_id,
        keepalive=args["keepalive"],
        username=args["username"],
        password=args["password"],
        connect_timeout=args["connect_timeout"],
        max_packet_size=args["max_packet_size"],
        max_queued=args["max_queued"],
    )
