"""printer.mqtt against the simulator's MQTT proxy (a fake Bambu Lab printer behind it).

Sessions: CONNECT/CONNACK and its refusals as typed errors, SUBACK per filter, QoS 0 and 1
both ways, keepalive, the relay's 6xx at the handshake and as close codes, the client
closing, cancellation, back-pressure, a server that breaks the protocol. Subscriptions:
resubscribe after a reconnect, availability events, a back-off that refusals do not reset,
QoS 1 re-sent after a reconnect, permanent errors and callback errors stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web

from oe_async import (
    AppConnectionRevokedError,
    ClientClosedError,
    CommunicationError,
    ConnectionBudget,
    ConnectionPoolExhaustedError,
    InvalidArgumentError,
    MQTTBrokerUnavailableError,
    MQTTConnectionRefusedError,
    MQTTMessage,
    MQTTProtocolError,
    MQTTSubscribeError,
    OctoEverywhere,
    PrinterConnection,
    PrinterOfflineError,
    ReconnectPolicy,
    RequestTimeoutError,
    SubscriptionEvent,
    SubscriptionState,
)
from oe_async.mqtt import PROXY_PATH
from oe_async.mqtt_codec import MQTTDecoder, encode_connack, encode_publish
from oe_async.testing import Simulator
from oe_async.testing.fake_mqtt import FakeBambuPrinter, bambu_printer

FAST = ReconnectPolicy(max_failures=None, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def fake(sim: Simulator) -> FakeBambuPrinter:
    return bambu_printer(sim)


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll a condition with a generous bound (never a sleep "long enough")."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


async def next_message(messages: AsyncIterator[MQTTMessage]) -> MQTTMessage:
    async with asyncio.timeout(20):
        return await anext(messages)


# ---------------------------------------------------------------------------- sessions


async def test_subscribe_publish_and_receive_through_the_relay(
    printer: PrinterConnection, sim: Simulator, fake: FakeBambuPrinter
) -> None:
    async with printer.mqtt.connect() as mq:
        assert mq.through_relay
        results = await mq.subscribe(fake.report_topic, qos=1)
        assert [(r.topic_filter, r.granted_qos) for r in results] == [(fake.report_topic, 1)]
        await mq.publish(fake.request_topic, {"pushing": {"command": "pushall"}}, qos=1)
        message = await next_message(mq.messages())
        assert message.topic == fake.report_topic
        assert message.json()["print"]["gcode_state"] == "RUNNING"
        await mq.publish(fake.request_topic, b'{"info": {"command": "get_version"}}')
    assert fake.requests == [
        {"pushing": {"command": "pushall"}},
        {"info": {"command": "get_version"}},
    ]
    assert [m.qos for m in fake.published] == [1, 0]
    # The relay checked the App Connection credentials on the handshake.
    (handshake,) = sim.requests_to("relay", PROXY_PATH)
    assert handshake.authorization == sim.auth.header_value
    assert handshake.headers["Sec-WebSocket-Protocol"] == "mqtt"
    await wait_until(lambda: not fake.sessions, "DISCONNECT to end the session")


async def test_qos1_messages_from_the_printer_are_acknowledged(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    async with printer.mqtt.connect() as mq:
        await mq.subscribe(fake.report_topic, qos=1)
        for percent in (10, 11, 12):
            await fake.push({"mc_percent": percent}, qos=1)
        messages = mq.messages()
        received = [await next_message(messages) for _ in range(3)]
        assert [m.qos for m in received] == [1, 1, 1]
        assert [m.json()["print"]["mc_percent"] for m in received] == [10, 11, 12]
        await wait_until(lambda: not fake.sessions[0].unacked, "three PUBACKs")
        # The proxy closes a session on a PUBACK it did not ask for: still open.
        await mq.publish(fake.request_topic, b"{}", qos=1)
        assert not mq.closed


async def test_suback_refuses_one_filter_and_keeps_the_others(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    async with printer.mqtt.connect() as mq:
        with pytest.raises(MQTTSubscribeError) as caught:
            await mq.subscribe(fake.report_topic, "elsewhere/#")
        assert [r.ok for r in caught.value.results] == [True, False]
        assert caught.value.temporary
        assert "1 of 2" in caught.value.message
        await fake.update(mc_percent=77)
        assert (await next_message(mq.messages())).json()["print"]["mc_percent"] == 77
        await mq.unsubscribe(fake.report_topic)
        assert not fake.sessions[0].subscriptions


async def test_a_broker_outage_refuses_connect_with_a_temporary_typed_error(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    await fake.set_broker_online(False)
    with pytest.raises(MQTTBrokerUnavailableError) as caught:
        async with printer.mqtt.connect():
            pytest.fail("connected while the broker is down")
    error = caught.value
    assert error.return_code == 3
    assert error.temporary
    assert not error.needs_user_action
    assert "not available" in error.message
    assert fake.refusals == [3]


async def test_an_outage_while_connected_ends_the_session(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    async with printer.mqtt.connect() as mq:
        await mq.subscribe(fake.report_topic)
        fake.ack_publishes = False
        pending = asyncio.ensure_future(mq.publish(fake.request_topic, b"{}", qos=1))
        await wait_until(lambda: len(fake.published) == 1, "the publish to arrive")
        await fake.set_broker_online(False)
        with pytest.raises(CommunicationError, match="closed") as caught:
            await next_message(mq.messages())
        assert caught.value.message == "The printer's MQTT broker closed the connection."
        with pytest.raises(CommunicationError):
            await pending
        assert mq.closed
        assert isinstance(mq.error, CommunicationError)
        with pytest.raises(CommunicationError):
            await mq.publish(fake.request_topic, b"{}")


async def test_the_relay_refusing_the_handshake_is_its_typed_error(
    printer: PrinterConnection, sim: Simulator
) -> None:
    sim.fail(601, path=PROXY_PATH, times=1)
    with pytest.raises(PrinterOfflineError):
        async with printer.mqtt.connect():
            pass
    sim.revoke()
    with pytest.raises(AppConnectionRevokedError) as caught:
        async with printer.mqtt.connect():
            pass
    assert caught.value.needs_user_action


async def test_a_6xx_close_code_is_the_relays_typed_error(
    printer: PrinterConnection, sim: Simulator, fake: FakeBambuPrinter
) -> None:
    async with printer.mqtt.connect() as mq:
        await mq.subscribe(fake.report_topic)
        assert await sim.close_websockets(604) == 1
        with pytest.raises(AppConnectionRevokedError):
            await next_message(mq.messages())


async def test_keepalive_pings_keep_a_quiet_session_open(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    # The proxy closes a session silent for 1.5 x keepalive: pings every 0.5 s keep it.
    async with printer.mqtt.connect(keepalive=1) as mq:
        await wait_until(lambda: mq.pings >= 4, "four answered pings")
        assert not mq.closed
        assert len(fake.sessions) == 1


async def test_a_broker_that_stops_answering_pings_ends_the_session(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    fake.answer_pings = False
    async with printer.mqtt.connect(keepalive=1) as mq:
        with pytest.raises(RequestTimeoutError, match="no MQTT PINGRESP"):
            await next_message(mq.messages())


async def test_a_session_with_the_same_client_id_replaces_the_older(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    async with printer.mqtt.connect(client_id="app-1") as first:
        assert first.client_id == "app-1"
        async with printer.mqtt.connect(client_id="app-1"):
            with pytest.raises(CommunicationError):
                await next_message(first.messages())
        async with printer.mqtt.connect() as other:
            assert other.client_id.startswith("oe-async-")


async def test_closing_the_client_ends_a_session_with_client_closed(
    sim: Simulator, fake: FakeBambuPrinter
) -> None:
    oe = sim.client()
    printer = oe.printer(sim.app_connection())
    async with printer.mqtt.connect() as mq:
        await mq.subscribe(fake.report_topic)
        reader = asyncio.ensure_future(next_message(mq.messages()))
        await oe.close()
        with pytest.raises(ClientClosedError):
            await reader


async def test_cancelling_the_reader_disconnects_and_leaves_no_task(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    before = len(asyncio.all_tasks())

    async def follow() -> None:
        async with printer.mqtt.connect() as mq:
            await mq.subscribe(fake.report_topic)
            async for _ in mq:
                pass

    task = asyncio.ensure_future(follow())
    await wait_until(lambda: bool(fake.sessions and fake.sessions[0].subscriptions), "subscribed")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: not fake.sessions, "the session to end")
    assert len(asyncio.all_tasks()) == before


async def test_a_slow_reader_gets_every_message_in_order(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    async with printer.mqtt.connect(max_queued=2) as mq:
        await mq.subscribe(fake.report_topic, qos=1)
        for percent in range(20):
            await fake.push({"mc_percent": percent}, qos=1)
        messages = mq.messages()
        got = [(await next_message(messages)).json()["print"]["mc_percent"] for _ in range(20)]
        assert got == list(range(20))


async def test_bad_arguments_send_nothing(printer: PrinterConnection, sim: Simulator) -> None:
    with pytest.raises(InvalidArgumentError, match="keepalive"):
        async with printer.mqtt.connect(keepalive=-1):
            pass
    with pytest.raises(InvalidArgumentError, match="user name"):
        async with printer.mqtt.connect(password="x"):
            pass
    assert not sim.requests_to("relay", PROXY_PATH)
    async with printer.mqtt.connect() as mq:
        with pytest.raises(InvalidArgumentError, match="whole level"):
            await mq.subscribe("device/a+/report")
        with pytest.raises(InvalidArgumentError, match="QoS 0 and 1"):
            await mq.subscribe("a", qos=2)
        with pytest.raises(InvalidArgumentError, match="QoS 0 and 1"):
            await mq.publish("a", b"", qos=2)
        with pytest.raises(InvalidArgumentError, match=r"'\+' or '#'"):
            await mq.publish("a/#", b"")
        with pytest.raises(InvalidArgumentError, match="at least one"):
            await mq.subscribe()
        assert not mq.closed


@pytest_asyncio.fixture
async def rogue() -> AsyncIterator[Callable[[bytes], str]]:
    """A WebSocket server that answers CONNECT with CONNACK 0 and then ``after`` bytes."""
    script: dict[str, bytes] = {}

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("mqtt",))
        await ws.prepare(request)
        decoder = MQTTDecoder()
        async for message in ws:
            if message.type is WSMsgType.BINARY and decoder.feed(message.data):
                if script.get("connack", b"x"):
                    await ws.send_bytes(script.get("connack", encode_connack(0)))
                await ws.send_bytes(script["after"])
                if script.get("close"):
                    await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/mqtt", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    def serve(after: bytes, connack: bytes | None = None, *, close: bool = False) -> str:
        script["after"] = after
        script["close"] = b"yes" if close else b""
        if connack is not None:
            script["connack"] = connack
        return f"http://127.0.0.1:{port}"

    yield serve  # type: ignore[misc]
    await runner.cleanup()


def _noise(seed: int) -> bytes:
    """Seeded garbage, often shaped like packets (a random type and length first)."""
    rng = random.Random(seed)
    body = rng.randbytes(rng.randrange(0, 40))
    if seed % 2:
        body = bytes((rng.randrange(256), len(body))) + body
    return body


@pytest.mark.parametrize("seed", range(24))
async def test_garbage_after_connack_ends_the_session_with_a_library_error(
    oe: OctoEverywhere, sim: Simulator, rogue: Callable[..., str], seed: int
) -> None:
    printer = oe.printer(sim.app_connection(url=rogue(_noise(seed), close=True)))
    async with printer.mqtt.connect(path="/mqtt") as mq:
        await mq.publish("t", b"", qos=0)
        with pytest.raises((MQTTProtocolError, CommunicationError)):
            async with asyncio.timeout(20):
                async for _ in mq.messages():
                    pass
        assert mq.closed


async def test_an_answer_that_is_not_a_connack_fails_the_connect(
    oe: OctoEverywhere, sim: Simulator, rogue: Callable[..., str]
) -> None:
    printer = oe.printer(sim.app_connection(url=rogue(encode_publish("t", b"x"), connack=b"")))
    with pytest.raises(MQTTProtocolError, match="not a CONNACK"):
        async with printer.mqtt.connect(path="/mqtt"):
            pass
    printer = oe.printer(sim.app_connection(url=rogue(b"\x20\x02\x00\x05", connack=b"")))
    with pytest.raises(MQTTConnectionRefusedError, match="return code 5") as caught:
        async with printer.mqtt.connect(path="/mqtt"):
            pass
    assert caught.value.needs_user_action


@pytest.mark.parametrize(
    "after",
    [
        b"\x30\x05\x00\x03a/#",  # a wildcard in a PUBLISH topic
        b"\x20\x02\x00\x00",  # a second CONNACK
        b"\x34\x05\x00\x01a\x00\x01",  # a QoS 2 message nobody asked for
        b"\x82\x06\x00\x01\x00\x01a\x00",  # a SUBSCRIBE (only clients send those)
    ],
)
async def test_a_server_that_breaks_the_protocol_ends_the_session(
    oe: OctoEverywhere, sim: Simulator, rogue: Callable[[bytes], str], after: bytes
) -> None:
    printer = oe.printer(sim.app_connection(url=rogue(after)))
    async with printer.mqtt.connect(path="/mqtt") as mq:
        with pytest.raises(MQTTProtocolError):
            await next_message(mq.messages())
        assert mq.closed


# ---------------------------------------------------------------------------- subscriptions


class Recorder:
    def __init__(self) -> None:
        self.events: list[SubscriptionEvent] = []
        self.messages: list[MQTTMessage] = []

    def on_state(self, event: SubscriptionEvent) -> None:
        self.events.append(event)

    async def on_message(self, message: MQTTMessage) -> None:
        self.messages.append(message)

    def states(self) -> list[SubscriptionState]:
        return [event.state for event in self.events]


async def test_a_subscription_resubscribes_after_a_reconnect(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    seen = Recorder()
    sessions: list[Any] = []

    async def on_connect(session: Any) -> None:
        sessions.append(session)
        await session.publish(fake.request_topic, {"pushing": {"command": "pushall"}})

    sub = printer.mqtt.subscribe(
        fake.report_topic,
        seen.on_message,
        on_state=seen.on_state,
        on_connect=on_connect,
        reconnect=FAST,
    )
    try:
        await sub.wait_connected(20)
        await wait_until(lambda: len(seen.messages) == 1, "the full report")
        assert await fake.close_sessions() == 1
        await wait_until(lambda: sub.connects == 2 and len(seen.messages) == 2, "a reconnect")
        await fake.update(mc_percent=99)
        await wait_until(lambda: len(seen.messages) == 3, "the update after resubscribing")
        assert seen.states()[:3] == [
            SubscriptionState.CONNECTED,
            SubscriptionState.DISCONNECTED,
            SubscriptionState.CONNECTED,
        ]
        assert [e.reconnected for e in seen.events if e.state is SubscriptionState.CONNECTED] == [
            False,
            True,
        ]
        assert len(sessions) == 2
        assert fake.connects == 2
    finally:
        await sub.close()
    assert sub.state is SubscriptionState.STOPPED  # close(): no callback while cancelled


async def test_a_broker_outage_backs_off_and_never_resets_on_refusals(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    seen = Recorder()
    sub = printer.mqtt.subscribe(
        fake.report_topic, seen.on_message, on_state=seen.on_state, reconnect=FAST
    )
    try:
        await sub.wait_connected(20)
        await fake.set_broker_online(False)
        await wait_until(lambda: sub.failures >= 6, "six failed attempts")
        await fake.set_broker_online(True)
        await sub.wait_connected(20)
    finally:
        await sub.close()
    down = [e for e in seen.events if e.state is SubscriptionState.DISCONNECTED]
    # Each refused CONNECT is one more failure: the back-off window only grows.
    assert [e.failures for e in down[:6]] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(e.error, MQTTBrokerUnavailableError) for e in down[1:6])
    assert isinstance(down[0].error, CommunicationError)  # the session the outage closed
    # One CONNECT per reported failure: no hidden retry loop.
    assert len(fake.refusals) == len(down) - 1
    assert FAST.delay(6, down[5].error) <= FAST.max_delay  # type: ignore[arg-type]


async def test_a_qos1_publish_lost_with_its_connection_is_sent_again(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    seen = Recorder()
    sub = printer.mqtt.subscribe(fake.report_topic, seen.on_message, reconnect=FAST)
    try:
        await sub.wait_connected(20)
        fake.ack_publishes = False
        delivery = asyncio.ensure_future(
            sub.publish(fake.request_topic, {"print": {"command": "pause"}}, qos=1, timeout=30)
        )
        await wait_until(lambda: len(fake.published) == 1, "the first attempt")
        fake.ack_publishes = True
        await fake.close_sessions()
        await asyncio.wait_for(delivery, 30)
    finally:
        await sub.close()
    first, again = fake.published
    assert (first.dup, again.dup) == (False, True)
    assert first.payload == again.payload


async def test_a_permanent_error_stops_the_subscription(
    printer: PrinterConnection, sim: Simulator, fake: FakeBambuPrinter
) -> None:
    seen = Recorder()
    sub = printer.mqtt.subscribe(
        fake.report_topic, seen.on_message, on_state=seen.on_state, reconnect=FAST
    )
    await sub.wait_connected(20)
    sim.revoke()
    await sim.close_websockets(604)
    with pytest.raises(AppConnectionRevokedError):
        await asyncio.wait_for(sub.wait(), 20)
    assert sub.state is SubscriptionState.STOPPED
    assert isinstance(seen.events[-1].error, AppConnectionRevokedError)
    with pytest.raises(AppConnectionRevokedError):
        await sub.publish(fake.request_topic, b"{}")


async def test_a_callback_error_stops_the_subscription(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    def broken(message: MQTTMessage) -> None:
        raise KeyError("the app's bug")

    sub = printer.mqtt.subscribe(fake.report_topic, broken, reconnect=FAST)
    await sub.wait_connected(20)
    await fake.update(mc_percent=1)
    with pytest.raises(KeyError):
        await asyncio.wait_for(sub.wait(), 20)
    with pytest.raises(KeyError):
        await sub.wait_connected(1)


async def test_closing_the_client_stops_subscriptions(
    sim: Simulator, fake: FakeBambuPrinter
) -> None:
    oe = sim.client()
    printer = oe.printer(sim.app_connection())
    seen = Recorder()
    sub = printer.mqtt.subscribe(fake.report_topic, seen.on_message, on_state=seen.on_state)
    await sub.wait_connected(20)
    await oe.close()
    with pytest.raises(ClientClosedError):
        await sub.wait()
    assert seen.states()[-1] is SubscriptionState.STOPPED


async def test_subscription_arguments_are_checked_at_once(printer: PrinterConnection) -> None:
    with pytest.raises(InvalidArgumentError, match="whole level"):
        printer.mqtt.subscribe("a+", print)
    with pytest.raises(InvalidArgumentError, match="callables"):
        printer.mqtt.subscribe("a", "not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="QoS"):
        printer.mqtt.subscribe(["a", "b"], print, qos=2)


async def test_publish_waits_for_a_connection_and_times_out(
    printer: PrinterConnection, fake: FakeBambuPrinter
) -> None:
    await fake.set_broker_online(False)
    sub = printer.mqtt.subscribe(fake.report_topic, print, reconnect=FAST)
    try:
        with pytest.raises(RequestTimeoutError, match="not delivered"):
            await sub.publish(fake.request_topic, b"{}", timeout=0.3)
        with contextlib.suppress(TimeoutError):
            await sub.wait_connected(0.05)
        assert sub.session is None
    finally:
        await sub.close()
    assert json.dumps(repr(sub)).count(fake.serial) == 0


async def test_the_proxy_is_reached_through_the_relay_even_with_a_lan(
    oe: OctoEverywhere, sim: Simulator, fake: FakeBambuPrinter
) -> None:
    lan = await sim.start_lan()
    printer = oe.printer(sim.app_connection(), lan_url=lan, route="prefer_local")
    async with printer.mqtt.connect() as mq:
        assert mq.through_relay  # the plugin's command API lives on the relay only
        await mq.subscribe(fake.report_topic)
    assert sim.requests_to("relay", PROXY_PATH)
    assert not sim.requests_to("lan", PROXY_PATH)


async def test_an_mqtt_session_holds_a_stream_connection(sim: Simulator) -> None:
    budget = ConnectionBudget(streams=1, pool_timeout=0.3)
    async with sim.client(connections=budget) as oe:
        printer = oe.printer(sim.app_connection())
        async with printer.mqtt.connect():
            with pytest.raises(ConnectionPoolExhaustedError) as caught:
                async with printer.mqtt.connect():
                    pass
            assert caught.value.pool == "streams"
            assert await printer.get_json("/api/printer")  # requests have their own pool
        async with printer.mqtt.connect():  # the first one gave its connection back
            pass


@pytest.mark.parametrize(("stable_after", "failures"), [(10.0, [1, 2, 3]), (0.0, [0, 0, 0])])
async def test_only_a_connection_that_lasted_resets_the_back_off(
    printer: PrinterConnection, fake: FakeBambuPrinter, stable_after: float, failures: list[int]
) -> None:
    # A proxy that drops each session right after it connected: with the default, each drop
    # is one more failure (a longer wait each time); a session that lasted resets the count.
    seen = Recorder()
    sub = printer.mqtt.subscribe(
        fake.report_topic,
        seen.on_message,
        on_state=seen.on_state,
        reconnect=FAST,
        stable_after=stable_after,
    )
    try:
        for drop in range(1, 4):
            await wait_until(lambda drop=drop: sub.connects == drop, f"connect {drop}")
            await fake.close_sessions()
            await wait_until(
                lambda drop=drop: seen.states().count(SubscriptionState.DISCONNECTED) == drop,
                f"disconnect {drop}",
            )
    finally:
        await sub.close()
    down = [e.failures for e in seen.events if e.state is SubscriptionState.DISCONNECTED]
    assert down == failures
