"""printer.mqtt against real peers: mosquitto (directly and through StandInRelay) and the
plugin's real mqttmux proxy in front of mosquitto playing a Bambu Lab printer's broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
from yarl import URL

from oe_async import (
    AppConnection,
    AppConnectionRevokedError,
    BambuPrinter,
    BasicAuth,
    CommunicationError,
    MQTTBrokerUnavailableError,
    MQTTMessage,
    MQTTNotAuthorizedError,
    MQTTSession,
    MQTTSubscribeError,
    OctoEverywhere,
    PrinterConnection,
    PrinterOfflineError,
    ReconnectPolicy,
    SubscriptionEvent,
    SubscriptionState,
)
from oe_async.mqtt_codec import MQTTDecoder, encode_connect
from oe_async.mqtt_errors import connack_error
from oe_async.mqtt_packets import PINGREQ, ConnAck, PingResp, SubAck
from oe_async.testing.relay import StandInRelay

from .support import PROXY_PATH, Mosquitto, MuxRelay

T = TypeVar("T")
FAST = ReconnectPolicy(max_failures=None, base_delay=0.05, max_delay=0.5)


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)
    assert check(), what


async def next_message(messages: AsyncIterator[T], timeout: float = 30) -> T:
    async with asyncio.timeout(timeout):
        return await anext(messages)


async def round_trip(mq: MQTTSession, topic: str) -> None:
    """Subscribe, publish QoS 0 and 1, receive both back (the broker echoes to us)."""
    results = await mq.subscribe(topic, qos=1)
    assert [r.granted_qos for r in results] == [1]
    await mq.publish(topic, b"zero")
    await mq.publish(topic, {"one": 1}, qos=1)
    messages = mq.messages()
    first, second = await next_message(messages), await next_message(messages)
    assert (first.payload, first.qos) == (b"zero", 0)
    assert (second.json(), second.qos) == ({"one": 1}, 1)


# ---------------------------------------------------------------------------- mosquitto


async def test_mosquitto_websocket_listener_directly(direct: PrinterConnection) -> None:
    async with direct.mqtt.connect(path="/mqtt", keepalive=1) as mq:
        await round_trip(mq, "oe/direct")
        await mq.publish("oe/retained", b"kept", retain=True, qos=1)
        await wait_until(lambda: mq.pings >= 3, "mosquitto answering our pings")
        await mq.unsubscribe("oe/direct")
    async with direct.mqtt.connect(path="/mqtt") as mq:
        await mq.subscribe("oe/retained")
        message = await next_message(mq.messages())
        assert (message.payload, message.retain) == (b"kept", True)
        await mq.publish("oe/retained", b"", retain=True)  # clear it


async def test_mosquitto_credentials_and_refusals(oe: OctoEverywhere, broker: Mosquitto) -> None:
    auth = BasicAuth("unused", "unused")
    printer = oe.printer(
        AppConnection(url=broker.ws_auth_url, auth=auth, allow_insecure_loopback=True)
    )
    async with printer.mqtt.connect(path="/mqtt", username="bblp", password=broker.access_code):
        pass
    # mosquitto 2.0 answers a wrong password, and no user at all, with 5 (not authorised).
    with pytest.raises(MQTTNotAuthorizedError) as bad:
        async with printer.mqtt.connect(path="/mqtt", username="bblp", password="wrong"):
            pass
    assert bad.value.needs_user_action
    assert not bad.value.temporary
    with pytest.raises(MQTTNotAuthorizedError):
        async with printer.mqtt.connect(path="/mqtt"):
            pass


async def test_mosquitto_through_the_stand_in_relay(oe: OctoEverywhere, broker: Mosquitto) -> None:
    async with StandInRelay(broker.ws_url) as relay:
        printer = oe.printer(relay.app_connection())
        async with printer.mqtt.connect(path="/mqtt") as mq:
            assert mq.through_relay
            await round_trip(mq, "oe/relayed")
        (handshake,) = relay.requests_to("/mqtt")
        assert handshake.websocket
        relay.fail(601, path="/mqtt", times=1)
        with pytest.raises(PrinterOfflineError):
            async with printer.mqtt.connect(path="/mqtt"):
                pass
        async with printer.mqtt.connect(path="/mqtt") as mq:
            await mq.subscribe("oe/relayed")
            assert await relay.close_websockets(604) == 1
            with pytest.raises(AppConnectionRevokedError):
                await next_message(mq.messages())


# ---------------------------------------------------------------------------- the real proxy


@contextlib.asynccontextmanager
async def printer_side(direct: PrinterConnection, serial: str) -> AsyncIterator[MQTTSession]:
    """The printer's side on its broker: sees the requests, publishes the reports."""
    async with direct.mqtt.connect(path="/mqtt") as side:
        await side.subscribe(f"device/{serial}/request", qos=1)
        yield side


async def test_the_real_proxy_carries_reports_and_commands_both_ways(
    relay_printer: PrinterConnection, direct: PrinterConnection, mux_relay: MuxRelay, serial: str
) -> None:
    report, request = f"device/{serial}/report", f"device/{serial}/request"
    async with printer_side(direct, serial) as side, relay_printer.mqtt.connect() as app:
        assert [r.granted_qos for r in await app.subscribe(report, qos=1)] == [1]
        await app.publish(request, {"pushing": {"command": "pushall"}}, qos=1)  # PUBACK: upstream
        command = await next_message(side.messages())
        assert command.json() == {"pushing": {"command": "pushall"}}
        for percent in (1, 2, 3):  # QoS 1 from the printer: the proxy gives its own packet ids
            await side.publish(report, {"print": {"mc_percent": percent}}, qos=1)
        messages = app.messages()
        received = [await next_message(messages) for _ in range(3)]
        assert [(m.qos, m.json()["print"]["mc_percent"]) for m in received] == [
            (1, 1),
            (1, 2),
            (1, 3),
        ]
        # The proxy closes a session on a PUBACK it did not ask for: ours were right.
        await app.publish(request, b"{}", qos=1)
        assert not app.closed
    assert mux_relay.streams == 1


async def test_a_bambu_printer_through_the_real_proxy(
    relay_printer: PrinterConnection, direct: PrinterConnection, serial: str
) -> None:
    report_topic = f"device/{serial}/report"
    async with printer_side(direct, serial) as side:

        async def printer_answers() -> None:
            async for command in side.messages():
                body = command.json()
                if "pushing" in body:
                    full = {"gcode_state": "RUNNING", "mc_percent": 42, "nozzle_temper": 219.8}
                    await side.publish(report_topic, {"print": full})
                elif body.get("print", {}).get("command") == "pause":
                    await side.publish(report_topic, {"print": {"gcode_state": "PAUSE"}})

        answering = asyncio.ensure_future(printer_answers())
        try:
            async with BambuPrinter(relay_printer.mqtt, serial).connect() as bambu:
                reports = bambu.reports()
                first = await next_message(reports)
                assert (first.gcode_state, first.mc_percent, first.nozzle_temper) == (
                    "RUNNING",
                    42,
                    219.8,
                )
                await bambu.pause(qos=1)
                paused = await next_message(reports)
                assert (paused.gcode_state, paused.mc_percent) == ("PAUSE", 42)
        finally:
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answering


async def test_the_real_proxy_refuses_one_filter_with_suback_0x80(
    relay_printer: PrinterConnection, broker: Mosquitto, mux_relay: MuxRelay, serial: str
) -> None:
    report = f"device/{serial}/report"
    loop = asyncio.get_running_loop()
    async with relay_printer.mqtt.connect() as first, relay_printer.mqtt.connect() as app:
        await first.subscribe(report)  # now subscribed upstream: later ones are answered locally
        broker.freeze(True)  # the printer's broker stops answering the plugin for a while
        try:
            with pytest.raises(MQTTSubscribeError) as caught:
                await app.subscribe(report, f"device/{serial}/other")
        finally:
            await loop.run_in_executor(None, broker.freeze, False)
        assert [r.ok for r in caught.value.results] == [True, False]
        assert caught.value.temporary
        assert not app.closed
        await app.unsubscribe(report)
    assert mux_relay.subscribe_timeout < 5  # below paho's keepalive: the upstream stayed up
    assert mux_relay.upstream_connected()


async def test_the_real_proxy_refuses_an_invalid_filter_alone(
    relay_printer: PrinterConnection,
) -> None:
    # Our client never sends an invalid filter; by hand, the proxy refuses only that one.
    body = b"\x00\x01" + b"\x00\x03a/b\x01" + b"\x00\x05a/#/b\x00"
    subscribe = bytes((0x82, len(body))) + body
    answers = await _raw_exchange(relay_printer, [encode_connect("c"), subscribe, PINGREQ], 3)
    # PINGREQ is answered at once, SUBSCRIBE on the proxy's worker thread: either order.
    assert answers[0] == ConnAck(return_code=0)
    assert SubAck(packet_id=1, return_codes=(1, 0x80)) in answers[1:]
    assert PingResp() in answers[1:]  # still open after the refusal


async def test_the_real_proxy_keeps_a_pinging_session_open(
    relay_printer: PrinterConnection,
) -> None:
    # The proxy closes a session silent for 1.5 x keepalive: with keepalive=1 that is 1.5 s.
    async with relay_printer.mqtt.connect(keepalive=1) as app:
        await wait_until(lambda: app.pings >= 5, "five pings answered by the proxy")
        assert not app.closed


async def test_the_real_proxy_replaces_a_session_with_the_same_client_id(
    relay_printer: PrinterConnection,
) -> None:
    # The proxy sends CONNACK before it registers the client id (wireclient.py), so when the
    # second CONNECT is handled before the first registration, the FIRST registration replaces
    # the second session. Either way exactly one of the two ends, with a CommunicationError,
    # and the other stays up and keeps working. (The broker's ACL allows only ``device/#``
    # to the proxy's account: a topic outside it is granted but silently never delivered.)
    async with (
        relay_printer.mqtt.connect(client_id="one-app") as first,
        relay_printer.mqtt.connect(client_id="one-app") as second,
    ):
        await wait_until(lambda: first.closed or second.closed, "one session replaced")
        replaced, kept = (first, second) if first.closed else (second, first)
        with pytest.raises(CommunicationError):
            await next_message(replaced.messages())
        assert not kept.closed
        await round_trip(kept, "device/one-app/echo")


async def _raw_exchange(
    printer: PrinterConnection, frames: list[bytes], expect: int | None = None
) -> list[Any]:
    """Send raw frames on the proxy's WebSocket; what came back (until ``expect`` packets,
    or until the proxy closed it)."""
    answers: list[Any] = []
    decoder = MQTTDecoder()
    async with printer.websocket.connect(PROXY_PATH, protocols=("mqtt",)) as ws:
        for frame in frames:
            await ws.send_bytes(frame)
        async with asyncio.timeout(30):
            async for message in ws:
                answers += decoder.feed(message.data)
                if expect is not None and len(answers) >= expect:
                    break
    return answers


async def test_the_real_proxys_connect_rules(relay_printer: PrinterConnection) -> None:
    # MQTT 3.1 and 5: CONNACK 1 and a close.
    for level, name in ((3, "MQIsdp"), (5, "MQTT")):
        connect = encode_connect("c", protocol_level=level, protocol_name=name)
        assert await _raw_exchange(relay_printer, [connect]) == [ConnAck(return_code=1)]
    # clean_session=0: CONNACK 3 (what a broker outage also answers).
    answer = await _raw_exchange(relay_printer, [encode_connect("c", clean_session=False)])
    assert answer == [ConnAck(return_code=3)]
    assert isinstance(connack_error(3), MQTTBrokerUnavailableError)
    # A first frame that is not a CONNECT, and a second CONNECT: closed without a word.
    assert await _raw_exchange(relay_printer, [PINGREQ]) == []
    twice = [encode_connect("c"), encode_connect("c")]
    assert await _raw_exchange(relay_printer, twice) == [ConnAck(return_code=0)]


async def test_a_broker_outage_through_the_real_proxy(
    relay_printer: PrinterConnection,
    direct: PrinterConnection,
    broker: Mosquitto,
    mux_relay: MuxRelay,
    serial: str,
) -> None:
    loop = asyncio.get_running_loop()
    events: list[SubscriptionEvent] = []
    received: list[MQTTMessage] = []
    report = f"device/{serial}/report"
    sub = relay_printer.mqtt.subscribe(
        report, received.append, on_state=events.append, reconnect=FAST, qos=1
    )
    try:
        await sub.wait_connected(30)
        await loop.run_in_executor(None, broker.stop)  # the printer's broker goes away
        await wait_until(lambda: sub.failures >= 4, "four refused reconnects")
        down = [e for e in events if e.state is SubscriptionState.DISCONNECTED]
        assert [e.failures for e in down[:4]] == [1, 2, 3, 4]  # refusals never reset it
        refused = [e.error for e in down[1:4]]
        assert all(isinstance(error, MQTTBrokerUnavailableError) for error in refused), refused
        assert all(error is not None and error.temporary for error in refused)
        await loop.run_in_executor(None, broker.start)
        await wait_until(mux_relay.upstream_connected, "the proxy's upstream to come back")
        await sub.wait_connected(30)
        async with direct.mqtt.connect(path="/mqtt") as side:  # the printer reports again
            await wait_until(lambda: sub.state is SubscriptionState.CONNECTED, "connected")
            await side.publish(report, json.dumps({"print": {"mc_percent": 7}}), qos=1)
            await wait_until(lambda: bool(received), "a report after the outage")
        assert received[-1].json() == {"print": {"mc_percent": 7}}
        assert sub.connects >= 2
    finally:
        await sub.close()
        if broker.process is None:
            await loop.run_in_executor(None, broker.start)


async def test_wrong_relay_credentials_are_refused_at_the_handshake(
    oe: OctoEverywhere, mux_relay: MuxRelay
) -> None:
    printer = oe.printer(
        AppConnection(
            url=URL(str(mux_relay.url)),
            auth=BasicAuth("someone", "else"),
            allow_insecure_loopback=True,
        )
    )
    with pytest.raises(Exception, match="606") as caught:
        async with printer.mqtt.connect():
            pass
    assert caught.value.needs_user_action
