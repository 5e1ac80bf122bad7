"""The simulator's MQTT proxy in front of a fake Bambu Lab printer.

``/octoeverywhere-command-api/proxy/mqtt`` on the relay behaves like the plugin's proxy
(``octoeverywhere/mqttmux``): raw MQTT 3.1.1 in binary WebSocket messages, the first a
CONNECT; protocol levels other than 4 get CONNACK 1 and a close; ``clean_session=0`` gets
CONNACK 3; a second CONNECT, a malformed packet, a PUBACK for an unknown packet id or a first
message that is not a CONNECT closes the socket; silence past 1.5 times the keepalive closes
it; a session with the client id of an older one replaces it; while the printer's broker is
down (:meth:`FakeBambuPrinter.set_broker_online`) every session is closed and a new CONNECT
gets CONNACK 3.

Behind it, a fake printer with one serial number: it publishes JSON reports on
``device/<serial>/report`` (the whole state after a ``pushall``, then only what changed)
and takes commands on ``device/<serial>/request`` (``pushall``; ``pause``, ``resume`` and
``stop`` change ``gcode_state``; every command is recorded). A filter outside the printer's
``device/<serial>/`` topics is refused with SUBACK 0x80 (for that filter only). Get the
printer of a simulator with :func:`bambu_printer`::

    fake = bambu_printer(sim)
    await fake.update(gcode_state="RUNNING", mc_percent=10)   # pushed to subscribers
    await fake.set_broker_online(False)                        # an outage
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
import weakref
from typing import Any, Final

import attrs
from aiohttp import WSMsgType, web

from oe_async.mqtt_codec import (
    MQTTDecoder,
    encode_connack,
    encode_puback,
    encode_publish,
    encode_suback,
)
from oe_async.mqtt_packets import (
    PINGRESP,
    PROTOCOL_LEVEL_311,
    SUBACK_FAILURE,
    Connect,
    Disconnect,
    MQTTMessage,
    MQTTProtocolError,
    PingReq,
    PubAck,
    Subscribe,
    Unsubscribe,
    topic_matches,
    validate_topic_filter,
)
from oe_async.testing._core import SimulatorCore, simulator_of
from oe_async.testing.canary import SECRET_MARKER

__all__ = ["PATH", "FakeBambuPrinter", "bambu_printer", "setup"]

PATH: Final = "/octoeverywhere-command-api/proxy/mqtt"
_MAX_PACKET: Final = 1024 * 1024  # the plugin's proxy bound


def _full_report() -> dict[str, Any]:
    """A Bambu Lab P1-like ``print`` object, as a ``pushall`` answers it."""
    return {
        "gcode_state": "RUNNING",
        "mc_percent": 42,
        "mc_remaining_time": 38,
        "layer_num": 62,
        "total_layer_num": 145,
        "subtask_name": "benchy",
        "gcode_file": "/data/Metadata/plate_1.gcode",
        "nozzle_temper": 219.8,
        "nozzle_target_temper": 220,
        "bed_temper": 60.1,
        "bed_target_temper": 60,
        "chamber_temper": 38.2,
        "print_error": 0,
        "stg_cur": 0,
        "spd_lvl": 2,
        "spd_mag": 100,
        "wifi_signal": "-48dBm",
        "nozzle_diameter": "0.4",
        "nozzle_type": "hardened_steel",
        "lights_report": [{"node": "chamber_light", "mode": "on"}],
        "ams": {"ams": [], "ams_exist_bits": "0", "tray_now": "255"},
    }


@attrs.define(eq=False)
class _Session:
    ws: web.WebSocketResponse
    client_id: str = ""
    subscriptions: dict[str, int] = attrs.field(factory=dict)
    next_id: int = 0
    unacked: set[int] = attrs.field(factory=set)

    async def send(self, data: bytes) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_bytes(data)

    async def deliver(self, topic: str, payload: bytes, qos: int) -> None:
        granted = max(
            (q for f, q in self.subscriptions.items() if topic_matches(f, topic)), default=None
        )
        if granted is None:
            return
        qos = min(qos, granted)
        if not qos:
            await self.send(encode_publish(topic, payload))
            return
        self.next_id = self.next_id % 65_535 + 1
        self.unacked.add(self.next_id)
        await self.send(encode_publish(topic, payload, qos=1, packet_id=self.next_id))


@attrs.define(eq=False)
class FakeBambuPrinter:
    """The fake printer behind the simulator's MQTT proxy (see :func:`bambu_printer`).

    Attributes:
        serial: its serial number (it carries the simulator's secret marker: the library
            must never show it).
        report: its state, the ``print`` object a ``pushall`` sends.
        broker_online: False while its broker is down (change with ``set_broker_online``).
        push_interval: seconds between the small reports each session gets while it is
            subscribed (progress and temperatures, like a printer's steady stream; a
            running print advances 1 % per report; 0, the default, turns them off).
        requests: every command received on the request topic (decoded JSON), in order.
        published: every message an app published, in order.
        answer_pings, ack_publishes: False to play a broker that stops answering PINGREQ,
            or that never acknowledges QoS 1 messages.
        connects: CONNECTs accepted; ``refusals``: the CONNACK codes of those refused.

    """

    serial: str = attrs.field(factory=lambda: f"01P00A-{SECRET_MARKER}-{secrets.token_hex(3)}")
    report: dict[str, Any] = attrs.field(factory=_full_report)
    broker_online: bool = True
    push_interval: float = 0.0
    #: False: PINGREQs go unanswered (a broker that hangs); QoS 1 PUBLISHes get no PUBACK.
    answer_pings: bool = True
    ack_publishes: bool = True
    requests: list[Any] = attrs.field(factory=list)
    published: list[MQTTMessage] = attrs.field(factory=list)
    connects: int = 0
    refusals: list[int] = attrs.field(factory=list)
    sessions: list[_Session] = attrs.field(factory=list)

    @property
    def report_topic(self) -> str:
        """``device/<serial>/report``."""
        return f"device/{self.serial}/report"

    @property
    def request_topic(self) -> str:
        """``device/<serial>/request``."""
        return f"device/{self.serial}/request"

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Deliver a message to every session subscribed to ``topic``."""
        for session in list(self.sessions):
            await session.deliver(topic, payload, qos)

    async def push(self, print_fields: dict[str, Any], *, qos: int = 0) -> None:
        """Publish ``{"print": print_fields}`` on the report topic."""
        body = {"print": {**print_fields, "command": "push_status", "msg": 1}}
        await self.publish(self.report_topic, json.dumps(body).encode(), qos)

    async def update(self, **fields: Any) -> None:
        """Change the printer's state and push what changed (a partial report)."""
        self.report.update(fields)
        await self.push(fields)

    async def set_broker_online(self, online: bool) -> None:  # noqa: FBT001
        """Take the printer's broker down (every session closed) or bring it back."""
        self.broker_online = online
        if not online:
            await self.close_sessions()

    async def close_sessions(self, code: int = 1000) -> int:
        """Close every session's WebSocket with ``code``; return how many."""
        sessions, self.sessions = list(self.sessions), []
        for session in sessions:
            await session.ws.close(code=code)
        return len(sessions)


_STATES: Final = {"pause": "PAUSE", "resume": "RUNNING", "stop": "FAILED"}
_printers: weakref.WeakKeyDictionary[SimulatorCore, FakeBambuPrinter] = weakref.WeakKeyDictionary()


def bambu_printer(sim: SimulatorCore) -> FakeBambuPrinter:
    """The fake Bambu Lab printer behind ``sim``'s MQTT proxy (one per simulated printer).

    Its serial number is the one ``get-connection-info`` answers on ``sim``.
    """
    printer = _printers.get(sim)
    if printer is None:
        # The serial the plugin's get-connection-info reports, so that
        # ``BambuPrinter.discover`` finds this printer.
        serial = sim.state.plugin.connection.get("SerialNumber")
        printer = _printers[sim] = (
            FakeBambuPrinter(serial=serial) if isinstance(serial, str) else FakeBambuPrinter()
        )
    return printer


async def _command(printer: FakeBambuPrinter, message: MQTTMessage) -> None:
    """A command on the request topic: recorded; pushall, pause, resume, stop answered."""
    try:
        command = json.loads(message.payload)
    except ValueError:
        printer.requests.append(None)
        return
    printer.requests.append(command)
    if not isinstance(command, dict):
        return
    pushing, printing = command.get("pushing"), command.get("print")
    if isinstance(pushing, dict) and pushing.get("command") == "pushall":
        body = {
            "print": {
                **copy.deepcopy(printer.report),
                "command": "push_status",
                "msg": 0,
                "sequence_id": pushing.get("sequence_id", "0"),
            }
        }
        await printer.publish(printer.report_topic, json.dumps(body).encode())
    elif isinstance(printing, dict) and printing.get("command") in _STATES:
        name = printing["command"]
        answer = {"command": name, "sequence_id": printing.get("sequence_id", "0")}
        answer.update(result="success", reason="success")
        await printer.publish(printer.report_topic, json.dumps({"print": answer}).encode())
        await printer.update(gcode_state=_STATES[name])


def _allowed(printer: FakeBambuPrinter, topic_filter: str) -> bool:
    try:
        validate_topic_filter(topic_filter)
    except ValueError:
        return False
    return topic_matches(topic_filter, printer.report_topic) or topic_matches(
        topic_filter, printer.request_topic
    )


async def _refuse(session: _Session, printer: FakeBambuPrinter, code: int) -> None:
    printer.refusals.append(code)
    await session.send(encode_connack(code))
    await session.ws.close()


async def _on_connect(printer: FakeBambuPrinter, session: _Session, packet: Connect) -> bool:
    """Answer the CONNECT as the plugin's proxy does; True when the session is accepted."""
    if packet.protocol_level != PROTOCOL_LEVEL_311 or packet.protocol_name != "MQTT":
        await _refuse(session, printer, 1)
    elif not printer.broker_online:
        await _refuse(session, printer, 3)
    elif not packet.client_id and not packet.clean_session:
        await _refuse(session, printer, 2)
    elif not packet.clean_session:
        await _refuse(session, printer, 3)  # the mux keeps no session state
    else:
        session.client_id = packet.client_id or f"oe-{secrets.token_hex(16)}"
        for older in [s for s in printer.sessions if s.client_id == session.client_id]:
            printer.sessions.remove(older)
            await older.ws.close()
        await session.send(encode_connack(0))
        printer.connects += 1
        printer.sessions.append(session)
        return True
    return False


async def _on_subscribe(printer: FakeBambuPrinter, session: _Session, packet: Subscribe) -> None:
    codes = []
    for topic_filter, qos in packet.subscriptions:
        if _allowed(printer, topic_filter):
            session.subscriptions[topic_filter] = min(qos, 1)
            codes.append(min(qos, 1))
        else:
            codes.append(SUBACK_FAILURE)
    await session.send(encode_suback(packet.packet_id, codes))


async def _on_packet(  # noqa: PLR0911 (one answer per packet type)
    printer: FakeBambuPrinter, session: _Session, packet: object
) -> bool:
    """Handle one packet after CONNECT; False closes the session."""
    if isinstance(packet, MQTTMessage):
        printer.published.append(packet)
        if packet.qos == 1 and packet.packet_id is not None and printer.ack_publishes:
            await session.send(encode_puback(packet.packet_id))
        if packet.topic == printer.request_topic:
            await _command(printer, packet)
        else:
            await printer.publish(packet.topic, packet.payload, packet.qos)
        return packet.qos < 2
    if isinstance(packet, Subscribe):
        await _on_subscribe(printer, session, packet)
        return True
    if isinstance(packet, Unsubscribe):
        for topic_filter in packet.topic_filters:
            session.subscriptions.pop(topic_filter, None)
        await session.send(bytes((0xB0, 2)) + packet.packet_id.to_bytes(2, "big"))
        return True
    if isinstance(packet, PubAck):
        if packet.packet_id not in session.unacked:
            return False  # the proxy closes on a PUBACK it did not ask for
        session.unacked.discard(packet.packet_id)
        return True
    if isinstance(packet, PingReq):
        if printer.answer_pings:
            await session.send(PINGRESP)
        return True
    return False  # DISCONNECT, a second CONNECT, QoS 2 flows: the proxy closes


async def _pusher(printer: FakeBambuPrinter, session: _Session) -> None:
    """Every ``push_interval``: a small report; the first session's clock advances a print."""
    while printer.push_interval > 0:
        await asyncio.sleep(printer.push_interval)
        if not session.subscriptions:
            continue
        report = printer.report
        if printer.sessions[:1] == [session] and report.get("gcode_state") == "RUNNING":
            report["mc_percent"] = min(100, int(report.get("mc_percent", 0)) + 1)
            report["mc_remaining_time"] = max(0, int(report.get("mc_remaining_time", 0)) - 1)
        keys = ("mc_percent", "mc_remaining_time", "nozzle_temper", "bed_temper")
        body = {"print": {**{k: report.get(k) for k in keys}, "command": "push_status", "msg": 1}}
        await session.deliver(printer.report_topic, json.dumps(body).encode(), 0)


async def _serve(printer: FakeBambuPrinter, session: _Session) -> None:
    decoder = MQTTDecoder(max_packet_size=_MAX_PACKET)
    keepalive: float | None = None
    connected = False
    ws = session.ws
    while not ws.closed:
        try:
            message = await ws.receive(timeout=keepalive)
        except TimeoutError:
            return  # silent past 1.5 x keepalive
        if message.type is not WSMsgType.BINARY:
            return  # text (the legacy JSON mode is not simulated), close, error
        if not connected and message.data[:1] != b"\x10":
            return  # the proxy routes only a first frame that starts a CONNECT
        try:
            packets = decoder.feed(message.data)
        except MQTTProtocolError:
            return
        for packet in packets:
            if isinstance(packet, Connect):
                if connected or not await _on_connect(printer, session, packet):
                    return
                connected = True
                keepalive = packet.keepalive * 1.5 if packet.keepalive else None
            elif (
                not connected
                or isinstance(packet, Disconnect)
                or not await _on_packet(printer, session, packet)
            ):
                return


async def mqtt_proxy(request: web.Request) -> web.StreamResponse:
    """``GET /octoeverywhere-command-api/proxy/mqtt``: the WebSocket MQTT proxy."""
    sim = simulator_of(request)
    printer = bambu_printer(sim)
    ws = web.WebSocketResponse(
        protocols=("mqtt",), heartbeat=None, autoping=True, max_msg_size=2 * _MAX_PACKET
    )
    await ws.prepare(request)
    entry = (ws, request)
    sim.websockets.append(entry)
    session = _Session(ws)
    pusher = asyncio.ensure_future(_pusher(printer, session))
    try:
        await _serve(printer, session)
    except ConnectionError:
        pass
    finally:
        pusher.cancel()
        await asyncio.gather(pusher, return_exceptions=True)
        if session in printer.sessions:
            printer.sessions.remove(session)
        if entry in sim.websockets:
            sim.websockets.remove(entry)
        await ws.close()
    return ws


def setup(app: web.Application) -> None:
    """Add the MQTT proxy route (before the plugin's catch-all)."""
    app.router.add_get(PATH, mqtt_proxy)
