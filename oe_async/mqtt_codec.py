"""A sans-I/O MQTT 3.1.1 codec: bytes in, packets out, packets in, bytes out. No I/O.

Feed it what a WebSocket (or any stream) delivers; it returns whole packets::

    decoder = MQTTDecoder()
    for packet in decoder.feed(message_bytes):
        if isinstance(packet, MQTTMessage):
            handle(packet.topic, packet.payload)

and encode what goes the other way with :func:`encode` or the fast per-packet functions
(:func:`encode_publish`, :func:`encode_puback`, ...). A WebSocket frame may hold several
packets or part of one: the decoder keeps what it has not used yet. The packet types are in
:mod:`oe_async.mqtt_packets`.

Everything the peer sends is checked (OASIS MQTT 3.1.1): the fixed header's reserved flags,
a remaining length of at most four bytes and at most ``max_packet_size``, well-formed UTF-8
strings without U+0000, QoS 0-2, non-zero packet identifiers, no wildcard in a PUBLISH topic,
SUBACK codes 0/1/2/0x80, the exact length of fixed-size packets. A violation raises
:class:`oe_async.MQTTProtocolError` (its message never quotes the bytes), after which the
stream is not usable: close the connection, as the specification requires.

What the application hands the encoders is checked too: a bad topic, filter, QoS, packet id
or an oversized field raises :class:`oe_async.InvalidArgumentError` naming the problem.
"""

from __future__ import annotations

from typing import Final

from .errors import InvalidArgumentError
from .mqtt_packets import (
    MAX_STRING,
    PROTOCOL_LEVEL_311,
    SUBACK_FAILURE,
    ConnAck,
    Connect,
    Disconnect,
    MQTTMessage,
    MQTTProtocolError,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    check_string,
    validate_topic,
    validate_topic_filter,
)

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "MAX_REMAINING_LENGTH",
    "MQTTDecoder",
    "encode",
    "encode_connack",
    "encode_connect",
    "encode_puback",
    "encode_publish",
    "encode_suback",
    "encode_subscribe",
    "encode_unsubscribe",
]

#: The largest packet the decoder accepts by default (bytes, fixed header excluded). A
#: Bambu Lab full report is ~10-64 KiB; the plugin's proxy refuses more than 1 MiB.
DEFAULT_MAX_PACKET_SIZE: Final = 4 * 1024 * 1024
#: The protocol's own limit on the remaining length (four length bytes).
MAX_REMAINING_LENGTH: Final = 268_435_455
_MAX_PACKET_ID: Final = 65_535
#: Topics whose validity and encoding are remembered (a client publishes to a few).
_TOPIC_CACHE_SIZE: Final = 256

_PINGREQ_PACKET: Final = PingReq()
_PINGRESP_PACKET: Final = PingResp()
_DISCONNECT_PACKET: Final = Disconnect()
_ID_PACKETS: Final[dict[int, type[PubAck | PubRec | PubRel | PubComp | UnsubAck]]] = {
    4: PubAck,
    5: PubRec,
    6: PubRel,
    7: PubComp,
    11: UnsubAck,
}
_EMPTY_PACKETS: Final[dict[int, PingReq | PingResp | Disconnect]] = {
    12: _PINGREQ_PACKET,
    13: _PINGRESP_PACKET,
    14: _DISCONNECT_PACKET,
}
#: The flags (low nibble) each packet type must carry; PUBLISH has its own rules.
_REQUIRED_FLAGS: Final = {1: 0, 2: 0, 4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 9: 0, 10: 2, 11: 0}
_REQUIRED_FLAGS.update({12: 0, 13: 0, 14: 0})
_SUBACK_CODES: Final = frozenset({0, 1, 2, SUBACK_FAILURE})


# ---------------------------------------------------------------------------- encoding


def _length(value: int) -> bytes:
    """The remaining-length field (1-4 bytes, 7 bits each, low bits first)."""
    if value < 128:
        return bytes((value,))
    if value > MAX_REMAINING_LENGTH:
        raise InvalidArgumentError("an MQTT packet cannot be larger than 268,435,455 bytes")
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (128 if value else 0))
        if not value:
            return bytes(out)


def _string(value: str, what: str) -> bytes:
    encoded = check_string(value, what) if value else b""
    return len(encoded).to_bytes(2, "big") + encoded


def _packet_id(packet_id: object) -> bytes:
    if (
        isinstance(packet_id, bool)
        or not isinstance(packet_id, int)
        or not 1 <= packet_id <= _MAX_PACKET_ID
    ):
        raise InvalidArgumentError("an MQTT packet id must be an integer from 1 to 65,535")
    return packet_id.to_bytes(2, "big")


def _qos(qos: object, allowed: int = 2) -> int:
    if isinstance(qos, bool) or not isinstance(qos, int) or not 0 <= qos <= allowed:
        raise InvalidArgumentError(f"MQTT QoS must be an integer from 0 to {allowed}")
    return qos


_topic_cache: dict[str, bytes] = {}


def _topic_field(topic: str) -> bytes:
    """The length-prefixed topic of a PUBLISH, checked once per distinct topic."""
    field = _topic_cache.get(topic)
    if field is None:
        validate_topic(topic)
        encoded = topic.encode("utf-8")
        field = len(encoded).to_bytes(2, "big") + encoded
        if len(_topic_cache) >= _TOPIC_CACHE_SIZE:
            _topic_cache.clear()
        _topic_cache[topic] = field
    return field


def encode_publish(
    topic: str,
    payload: bytes = b"",
    *,
    qos: int = 0,
    retain: bool = False,
    dup: bool = False,
    packet_id: int | None = None,
) -> bytes:
    """A PUBLISH packet. ``packet_id`` is required for QoS 1 and 2, refused for QoS 0.

    Raises:
        InvalidArgumentError: a bad topic, QoS, packet id or payload type.

    """
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise InvalidArgumentError("an MQTT payload must be bytes")
    variable = _topic_field(topic)
    if qos == 0 and type(qos) is int:
        if packet_id is not None or dup:
            raise InvalidArgumentError("a QoS 0 MQTT message has no packet id and no DUP flag")
    else:
        _qos(qos)
        variable += _packet_id(packet_id)
    first = 0x30 | (8 if dup else 0) | (qos << 1) | (1 if retain else 0)
    size = len(variable) + len(payload)
    if size < 128:
        return bytes((first, size)) + variable + payload
    return bytes((first,)) + _length(size) + variable + bytes(payload)


def _with_id(kind: int, packet_id: int) -> bytes:
    if type(packet_id) is int and 1 <= packet_id <= _MAX_PACKET_ID:
        return bytes((kind, 2, packet_id >> 8, packet_id & 0xFF))
    return bytes((kind, 2)) + _packet_id(packet_id)


def encode_puback(packet_id: int) -> bytes:
    """A PUBACK packet."""
    return _with_id(0x40, packet_id)


def encode_connect(
    client_id: str,
    *,
    keepalive: int = 60,
    clean_session: bool = True,
    username: str | None = None,
    password: str | bytes | None = None,
    protocol_level: int = PROTOCOL_LEVEL_311,
    protocol_name: str = "MQTT",
) -> bytes:
    """A CONNECT packet (no will message: oe_async does not use one).

    Raises:
        InvalidArgumentError: a keepalive outside 0-65,535 s, a password without a user
            name (not allowed by MQTT 3.1.1), or a field too long.

    """
    if isinstance(keepalive, bool) or not isinstance(keepalive, int):
        raise InvalidArgumentError("keepalive must be a whole number of seconds")
    if not 0 <= keepalive <= MAX_STRING:
        raise InvalidArgumentError("keepalive must be from 0 to 65,535 seconds")
    if password is not None and username is None:
        raise InvalidArgumentError("an MQTT password needs a user name (MQTT 3.1.1)")
    if not isinstance(client_id, str):
        raise InvalidArgumentError("an MQTT client id must be a str")
    flags = 0x02 if clean_session else 0
    payload = _string(client_id, "an MQTT client id")
    if username is not None:
        flags |= 0x80
        payload += _string(username, "an MQTT user name")
    if password is not None:
        flags |= 0x40
        secret = password.encode("utf-8") if isinstance(password, str) else bytes(password)
        if len(secret) > MAX_STRING:
            raise InvalidArgumentError("an MQTT password is longer than 65,535 bytes")
        payload += len(secret).to_bytes(2, "big") + secret
    variable = (
        _string(protocol_name, "the protocol name")
        + bytes((protocol_level & 0xFF, flags))
        + keepalive.to_bytes(2, "big")
    )
    body = variable + payload
    return b"\x10" + _length(len(body)) + body


def encode_connack(return_code: int, *, session_present: bool = False) -> bytes:
    """A CONNACK packet."""
    if isinstance(return_code, bool) or not isinstance(return_code, int):
        raise InvalidArgumentError("a CONNACK return code must be an integer")
    if not 0 <= return_code <= 255:
        raise InvalidArgumentError("a CONNACK return code must be from 0 to 255")
    return bytes((0x20, 2, 1 if session_present else 0, return_code))


def encode_subscribe(packet_id: int, subscriptions: list[tuple[str, int]]) -> bytes:
    """A SUBSCRIBE packet for ``(topic filter, requested QoS)`` pairs (at least one)."""
    if not subscriptions:
        raise InvalidArgumentError("SUBSCRIBE needs at least one topic filter")
    body = bytearray(_packet_id(packet_id))
    for topic_filter, qos in subscriptions:
        validate_topic_filter(topic_filter)
        body += _string(topic_filter, "an MQTT topic filter") + bytes((_qos(qos),))
    return b"\x82" + _length(len(body)) + bytes(body)


def encode_suback(packet_id: int, return_codes: list[int]) -> bytes:
    """A SUBACK packet (codes 0, 1, 2 or 0x80, one per filter)."""
    if not return_codes or any(code not in _SUBACK_CODES for code in return_codes):
        raise InvalidArgumentError("SUBACK codes must be 0, 1, 2 or 0x80 (at least one)")
    body = _packet_id(packet_id) + bytes(return_codes)
    return b"\x90" + _length(len(body)) + body


def encode_unsubscribe(packet_id: int, topic_filters: list[str]) -> bytes:
    """An UNSUBSCRIBE packet (at least one filter)."""
    if not topic_filters:
        raise InvalidArgumentError("UNSUBSCRIBE needs at least one topic filter")
    body = bytearray(_packet_id(packet_id))
    for topic_filter in topic_filters:
        validate_topic_filter(topic_filter)
        body += _string(topic_filter, "an MQTT topic filter")
    return b"\xa2" + _length(len(body)) + bytes(body)


def encode(packet: Packet) -> bytes:  # noqa: PLR0911 (one return per packet type)
    """Any packet as bytes (the per-type functions are faster on hot paths).

    Raises:
        InvalidArgumentError: the packet's fields break a rule (see the functions above).

    """
    if isinstance(packet, MQTTMessage):
        return encode_publish(
            packet.topic,
            packet.payload,
            qos=packet.qos,
            retain=packet.retain,
            dup=packet.dup,
            packet_id=packet.packet_id,
        )
    if isinstance(packet, Connect):
        return encode_connect(
            packet.client_id,
            keepalive=packet.keepalive,
            clean_session=packet.clean_session,
            username=packet.username,
            password=packet.password,
            protocol_level=packet.protocol_level,
            protocol_name=packet.protocol_name,
        )
    if isinstance(packet, ConnAck):
        return encode_connack(packet.return_code, session_present=packet.session_present)
    if isinstance(packet, Subscribe):
        return encode_subscribe(packet.packet_id, list(packet.subscriptions))
    if isinstance(packet, SubAck):
        return encode_suback(packet.packet_id, list(packet.return_codes))
    if isinstance(packet, Unsubscribe):
        return encode_unsubscribe(packet.packet_id, list(packet.topic_filters))
    if isinstance(packet, PubAck | PubRec | PubRel | PubComp | UnsubAck):
        flags = 2 if isinstance(packet, PubRel) else 0
        return _with_id((packet.type << 4) | flags, packet.packet_id)
    return bytes((packet.type << 4, 0))


# ---------------------------------------------------------------------------- decoding


def _fail(what: str) -> MQTTProtocolError:
    """A protocol error naming the rule broken, never quoting the bytes."""
    return MQTTProtocolError(f"MQTT protocol error: {what}")


class MQTTDecoder:
    """Turns a byte stream into MQTT packets. Not thread-safe; one per connection.

    Args:
        max_packet_size: the largest remaining length accepted (bytes); a longer packet
            raises :class:`MQTTProtocolError` as soon as its length is read, before its
            body is buffered.

    """

    __slots__ = ("_buffer", "max_packet_size")

    def __init__(self, *, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        if isinstance(max_packet_size, bool) or not isinstance(max_packet_size, int):
            raise InvalidArgumentError("max_packet_size must be an integer")
        if not 2 <= max_packet_size <= MAX_REMAINING_LENGTH:
            raise InvalidArgumentError("max_packet_size must be from 2 to 268,435,455 bytes")
        #: The largest remaining length accepted (bytes).
        self.max_packet_size: int = max_packet_size
        self._buffer = b""

    @property
    def buffered(self) -> int:
        """Bytes held back: the start of a packet still incomplete."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Decode every whole packet in what was held back plus ``data``.

        Raises:
            MQTTProtocolError: a malformed packet (the decoder is then unusable).

        """
        buf = bytes(data) if not isinstance(data, bytes) else data
        if self._buffer:
            buf = self._buffer + buf
        packets: list[Packet] = []
        pos = 0
        end_of_data = len(buf)
        limit = self.max_packet_size
        while end_of_data - pos >= 2:
            size = buf[pos + 1]
            start = pos + 2
            if size & 0x80:
                size &= 0x7F
                shift = 7
                complete = False
                while start < end_of_data:
                    byte = buf[start]
                    start += 1
                    size |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        complete = True
                        break
                    shift += 7
                    if shift > 21:
                        raise _fail("a remaining length longer than four bytes")
                if size > limit:  # a lower bound while incomplete: refuse early
                    raise _fail(f"a packet larger than the limit ({limit} bytes)")
                if not complete:
                    break
            elif size > limit:
                raise _fail(f"a packet larger than the limit ({limit} bytes)")
            end = start + size
            if end > end_of_data:
                break
            packets.append(_decode_packet(buf[pos], buf, start, end))
            pos = end
        self._buffer = buf[pos:] if pos < end_of_data else b""
        return packets


def _read_string(buf: bytes, pos: int, end: int, what: str) -> tuple[str, int]:
    if pos + 2 > end:
        raise _fail(f"{what} runs past the end of its packet")
    length = (buf[pos] << 8) | buf[pos + 1]
    stop = pos + 2 + length
    if stop > end:
        raise _fail(f"{what} runs past the end of its packet")
    try:
        text = buf[pos + 2 : stop].decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{what} is not valid UTF-8") from None
    if "\x00" in text:
        raise _fail(f"{what} contains U+0000")
    return text, stop


def _read_bytes(buf: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise _fail(f"{what} runs past the end of its packet")
    stop = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
    if stop > end:
        raise _fail(f"{what} runs past the end of its packet")
    return buf[pos + 2 : stop], stop


def _read_id(buf: bytes, pos: int, end: int) -> int:
    if pos + 2 > end:
        raise _fail("a packet id runs past the end of its packet")
    packet_id = (buf[pos] << 8) | buf[pos + 1]
    if not packet_id:
        raise _fail("a packet id of 0")
    return packet_id


def _decode_packet(first: int, buf: bytes, start: int, end: int) -> Packet:  # noqa: PLR0911
    kind = first >> 4
    flags = first & 0x0F
    if kind == 3:
        return _decode_publish(flags, buf, start, end)
    required = _REQUIRED_FLAGS.get(kind)
    if required is None:
        raise _fail(f"an unknown packet type ({kind})")
    if flags != required:
        raise _fail(f"reserved flags set on a {PacketType(kind).name} packet")
    size = end - start
    empty = _EMPTY_PACKETS.get(kind)
    if empty is not None:
        if size:
            raise _fail(f"a {PacketType(kind).name} packet with a body")
        return empty
    id_packet = _ID_PACKETS.get(kind)
    if id_packet is not None:
        if size != 2:
            raise _fail(f"a {PacketType(kind).name} packet that is not 2 bytes long")
        return id_packet(_read_id(buf, start, end))
    if kind == 2:
        return _decode_connack(buf, start, end)
    if kind == 9:
        return _decode_suback(buf, start, end)
    if kind == 8:
        return _decode_subscribe(buf, start, end)
    if kind == 10:
        return _decode_unsubscribe(buf, start, end)
    return _decode_connect(buf, start, end)


def _decode_publish(flags: int, buf: bytes, start: int, end: int) -> MQTTMessage:
    qos = (flags >> 1) & 3
    if qos == 3:
        raise _fail("a PUBLISH with QoS 3")
    dup = bool(flags & 8)
    if dup and not qos:
        raise _fail("a QoS 0 PUBLISH with the DUP flag")
    topic, pos = _read_string(buf, start, end, "a PUBLISH topic")
    if not topic or "+" in topic or "#" in topic:
        raise _fail("a PUBLISH topic that is empty or has a wildcard")
    packet_id = None
    if qos:
        packet_id = _read_id(buf, pos, end)
        pos += 2
    return MQTTMessage(
        topic=topic,
        payload=buf[pos:end],
        qos=qos,
        retain=bool(flags & 1),
        dup=dup,
        packet_id=packet_id,
    )


def _decode_connack(buf: bytes, start: int, end: int) -> ConnAck:
    if end - start != 2:
        raise _fail("a CONNACK packet that is not 2 bytes long")
    if buf[start] & 0xFE:
        raise _fail("reserved CONNACK flags set")
    return ConnAck(session_present=bool(buf[start] & 1), return_code=buf[start + 1])


def _decode_suback(buf: bytes, start: int, end: int) -> SubAck:
    packet_id = _read_id(buf, start, end)
    codes = tuple(buf[start + 2 : end])
    if not codes:
        raise _fail("a SUBACK without return codes")
    if any(code not in _SUBACK_CODES for code in codes):
        raise _fail("a SUBACK return code other than 0, 1, 2 or 0x80")
    return SubAck(packet_id=packet_id, return_codes=codes)


def _decode_subscribe(buf: bytes, start: int, end: int) -> Subscribe:
    packet_id = _read_id(buf, start, end)
    pos = start + 2
    pairs: list[tuple[str, int]] = []
    while pos < end:
        topic_filter, pos = _read_string(buf, pos, end, "a SUBSCRIBE topic filter")
        if pos >= end:
            raise _fail("a SUBSCRIBE topic filter without its QoS")
        requested = buf[pos]
        if requested > 2:
            raise _fail("a SUBSCRIBE QoS byte other than 0, 1 or 2")
        pairs.append((topic_filter, requested))
        pos += 1
    if not pairs:
        raise _fail("a SUBSCRIBE without topic filters")
    return Subscribe(packet_id=packet_id, subscriptions=tuple(pairs))


def _decode_unsubscribe(buf: bytes, start: int, end: int) -> Unsubscribe:
    packet_id = _read_id(buf, start, end)
    pos = start + 2
    filters: list[str] = []
    while pos < end:
        topic_filter, pos = _read_string(buf, pos, end, "an UNSUBSCRIBE topic filter")
        filters.append(topic_filter)
    if not filters:
        raise _fail("an UNSUBSCRIBE without topic filters")
    return Unsubscribe(packet_id=packet_id, topic_filters=tuple(filters))


def _decode_connect(buf: bytes, start: int, end: int) -> Connect:
    name, pos = _read_string(buf, start, end, "the CONNECT protocol name")
    if pos + 4 > end:
        raise _fail("a CONNECT variable header runs past the end of its packet")
    level, flags = buf[pos], buf[pos + 1]
    keepalive = (buf[pos + 2] << 8) | buf[pos + 3]
    pos += 4
    if flags & 0x01:
        raise _fail("the reserved CONNECT flag set")
    will_qos = (flags >> 3) & 3
    if will_qos == 3 or (not flags & 0x04 and flags & 0x38):
        raise _fail("CONNECT will flags that do not fit together")
    if flags & 0x40 and not flags & 0x80:
        raise _fail("a CONNECT password without a user name")
    client_id, pos = _read_string(buf, pos, end, "the CONNECT client id")
    will_topic: str | None = None
    will_payload = b""
    if flags & 0x04:
        will_topic, pos = _read_string(buf, pos, end, "the CONNECT will topic")
        will_payload, pos = _read_bytes(buf, pos, end, "the CONNECT will message")
    username: str | None = None
    password: bytes | None = None
    if flags & 0x80:
        username, pos = _read_string(buf, pos, end, "the CONNECT user name")
    if flags & 0x40:
        password, pos = _read_bytes(buf, pos, end, "the CONNECT password")
    if pos != end:
        raise _fail("bytes after the end of a CONNECT payload")
    return Connect(
        client_id=client_id,
        keepalive=keepalive,
        clean_session=bool(flags & 0x02),
        username=username,
        password=password,
        protocol_name=name,
        protocol_level=level,
        will_topic=will_topic,
        will_payload=will_payload,
        will_qos=will_qos,
        will_retain=bool(flags & 0x20),
    )
