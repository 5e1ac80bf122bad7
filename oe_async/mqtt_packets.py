"""MQTT 3.1.1 packets, messages and topic rules: the types the codec reads and writes. No I/O.

:class:`MQTTMessage` is an application message (a PUBLISH); the other classes are the control
packets. Topic names and filters follow section 4.7 of the specification
(:func:`validate_topic`, :func:`validate_topic_filter`, :func:`topic_matches`).

Topics may hold a printer's serial number (Bambu Lab: ``device/<serial>/report``), which
the printer side treats as a secret: reprs and messages show a topic through
:func:`redact_topic`, which hides every level between the first and the last.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs

from .errors import InvalidArgumentError, OctoEverywhereError, UnexpectedResponseError

__all__ = [
    "DISCONNECT",
    "MAX_STRING",
    "PINGREQ",
    "PINGRESP",
    "PROTOCOL_LEVEL_311",
    "SUBACK_FAILURE",
    "ConnAck",
    "Connect",
    "Disconnect",
    "MQTTError",
    "MQTTMessage",
    "MQTTProtocolError",
    "Packet",
    "PacketType",
    "Payload",
    "PingReq",
    "PingResp",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "SubAck",
    "Subscribe",
    "SubscribeResult",
    "UnsubAck",
    "Unsubscribe",
    "check_string",
    "payload_bytes",
    "redact_topic",
    "topic_matches",
    "validate_topic",
    "validate_topic_filter",
]

PROTOCOL_LEVEL_311: Final = 4
SUBACK_FAILURE: Final = 0x80
#: The longest string or binary field (bytes).
MAX_STRING: Final = 65_535
PINGREQ: Final = b"\xc0\x00"
PINGRESP: Final = b"\xd0\x00"
DISCONNECT: Final = b"\xe0\x00"

#: What ``publish()`` sends: bytes as they are, text as UTF-8, a dict or list as JSON.
Payload = bytes | bytearray | memoryview | str | Mapping[str, Any] | list[Any]


class MQTTError(OctoEverywhereError):
    """Base class of the MQTT-specific errors (refused connections, subscriptions, framing)."""

    default_message = "The printer's MQTT connection reported a problem."


class MQTTProtocolError(MQTTError, UnexpectedResponseError):
    """The peer broke the MQTT 3.1.1 protocol (a malformed or unexpected packet).

    The connection cannot be used after it; it is closed. Not temporary: a peer that sends
    this will most likely send it again.
    """

    default_message = "The printer's MQTT connection sent something that is not valid MQTT."


class PacketType(enum.IntEnum):
    """MQTT control packet types (the high nibble of the first byte)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


def redact_topic(topic: str) -> str:
    """``topic`` with every level between the first and the last shown as ``***``.

    ``device/01S00C123/report`` reads ``device/***/report``: the Bambu Lab and Elegoo topics
    carry the printer's serial number there. Topics of one or two levels are unchanged.
    """
    first, sep, rest = topic.partition("/")
    if not sep or "/" not in rest:
        return topic
    return f"{first}/***/{rest.rpartition('/')[2]}"


@attrs.frozen(kw_only=True)
class MQTTMessage:
    """An application message: a PUBLISH packet, received or to be sent.

    Attributes:
        topic: the topic name (shown redacted in the repr, see :func:`redact_topic`).
        payload: the message body, bytes as sent (the repr shows only its size).
        qos: 0 (at most once) or 1 (at least once); 2 is decoded but never requested.
        retain: the retain flag (True for a retained message replayed on subscribe).
        dup: True when the sender says this may be a re-delivery of an earlier attempt.
        packet_id: the packet identifier of a QoS 1/2 message (None for QoS 0).

    """

    topic: str = attrs.field(repr=lambda topic: repr(redact_topic(topic)))
    payload: bytes = attrs.field(repr=lambda payload: f"<{len(payload)} bytes>")
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None

    def text(self) -> str:
        """The payload decoded as UTF-8.

        Raises:
            UnexpectedResponseError: the payload is not UTF-8.

        """
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError:
            raise UnexpectedResponseError(
                f"MQTT message on {redact_topic(self.topic)}: the payload is not UTF-8 text"
            ) from None

    def json(self) -> Any:
        """The payload decoded as JSON.

        Raises:
            UnexpectedResponseError: the payload is not JSON (or nests too deeply).

        """
        try:
            return json.loads(self.payload)
        except ValueError:
            what = "is not JSON"
        except RecursionError:
            what = "is JSON nested too deeply"
        raise UnexpectedResponseError(
            f"MQTT message on {redact_topic(self.topic)}: the payload {what}"
        )


@attrs.frozen(kw_only=True)
class SubscribeResult:
    """What the broker granted for one topic filter of a SUBSCRIBE.

    Attributes:
        topic_filter: the filter (shown redacted in the repr).
        granted_qos: the QoS the broker granted (0, 1 or 2), or None when it refused the
            filter (SUBACK return code 0x80).

    """

    topic_filter: str = attrs.field(repr=lambda topic: repr(redact_topic(topic)))
    granted_qos: int | None

    @property
    def ok(self) -> bool:
        """True when the broker accepted the filter."""
        return self.granted_qos is not None


@attrs.frozen(kw_only=True)
class Connect:
    """CONNECT: the first packet of a session (the password is never shown)."""

    type: ClassVar[PacketType] = PacketType.CONNECT
    client_id: str
    keepalive: int = 60
    clean_session: bool = True
    username: str | None = attrs.field(default=None, repr=False)
    password: bytes | None = attrs.field(default=None, repr=False)
    protocol_name: str = "MQTT"
    protocol_level: int = PROTOCOL_LEVEL_311
    will_topic: str | None = attrs.field(default=None, repr=False)
    will_payload: bytes = attrs.field(default=b"", repr=False)
    will_qos: int = 0
    will_retain: bool = False


@attrs.frozen(kw_only=True)
class ConnAck:
    """CONNACK: the broker's answer to CONNECT (return code 0 = accepted)."""

    type: ClassVar[PacketType] = PacketType.CONNACK
    session_present: bool = False
    return_code: int = 0


@attrs.frozen
class _PacketIdOnly:
    """A packet that carries only its packet identifier.

    PUBACK, PUBREC, PUBREL, PUBCOMP and UNSUBACK: each subclass names its ``type``.
    """

    type: ClassVar[PacketType]
    packet_id: int


@attrs.frozen
class PubAck(_PacketIdOnly):
    """PUBACK: the receiver has a QoS 1 message."""

    type = PacketType.PUBACK


@attrs.frozen
class PubRec(_PacketIdOnly):
    """PUBREC: QoS 2, step 1 (decoded for completeness; oe_async never asks for QoS 2)."""

    type = PacketType.PUBREC


@attrs.frozen
class PubRel(_PacketIdOnly):
    """PUBREL: QoS 2, step 2."""

    type = PacketType.PUBREL


@attrs.frozen
class PubComp(_PacketIdOnly):
    """PUBCOMP: QoS 2, step 3."""

    type = PacketType.PUBCOMP


@attrs.frozen(kw_only=True)
class Subscribe:
    """SUBSCRIBE: ``(topic filter, requested QoS)`` pairs."""

    type: ClassVar[PacketType] = PacketType.SUBSCRIBE
    packet_id: int
    subscriptions: tuple[tuple[str, int], ...] = attrs.field(
        repr=lambda subs: repr(tuple((redact_topic(f), q) for f, q in subs))
    )


@attrs.frozen(kw_only=True)
class SubAck:
    """SUBACK: one return code per filter (0, 1, 2 granted; 0x80 refused)."""

    type: ClassVar[PacketType] = PacketType.SUBACK
    packet_id: int
    return_codes: tuple[int, ...]


@attrs.frozen(kw_only=True)
class Unsubscribe:
    """UNSUBSCRIBE: topic filters to remove."""

    type: ClassVar[PacketType] = PacketType.UNSUBSCRIBE
    packet_id: int
    topic_filters: tuple[str, ...] = attrs.field(
        repr=lambda filters: repr(tuple(redact_topic(f) for f in filters))
    )


@attrs.frozen
class UnsubAck(_PacketIdOnly):
    """UNSUBACK."""

    type = PacketType.UNSUBACK


@attrs.frozen
class PingReq:
    """PINGREQ: the client's keepalive."""

    type: ClassVar[PacketType] = PacketType.PINGREQ


@attrs.frozen
class PingResp:
    """PINGRESP: the broker's answer to PINGREQ."""

    type: ClassVar[PacketType] = PacketType.PINGRESP


@attrs.frozen
class Disconnect:
    """DISCONNECT: the client ends the session cleanly."""

    type: ClassVar[PacketType] = PacketType.DISCONNECT


Packet = (
    Connect
    | ConnAck
    | MQTTMessage
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)


# ---------------------------------------------------------------------------- topic rules


def validate_topic(topic: str) -> None:
    """Check a topic name for PUBLISH: 1-65,535 UTF-8 bytes, no ``+``/``#``, no U+0000.

    Raises:
        InvalidArgumentError: naming the rule broken (never quoting the topic).

    """
    check_string(topic, "an MQTT topic")
    if "+" in topic or "#" in topic:
        raise InvalidArgumentError("an MQTT topic to publish to cannot contain '+' or '#'")


def validate_topic_filter(topic_filter: str) -> None:
    """Check a topic filter for SUBSCRIBE/UNSUBSCRIBE (MQTT 3.1.1 section 4.7).

    ``+`` must fill a whole level; ``#`` must fill the last level.

    Raises:
        InvalidArgumentError: naming the rule broken (never quoting the filter).

    """
    check_string(topic_filter, "an MQTT topic filter")
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise InvalidArgumentError(
                "'#' in an MQTT topic filter must be a whole level, and the last one"
            )
        if "+" in level and level != "+":
            raise InvalidArgumentError("'+' in an MQTT topic filter must be a whole level")


def check_string(value: object, what: str) -> bytes:
    """``value`` as UTF-8 if it is a non-empty MQTT string (InvalidArgumentError if not)."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a str")
    if not value:
        raise InvalidArgumentError(f"{what} cannot be empty")
    if "\x00" in value:
        raise InvalidArgumentError(f"{what} cannot contain U+0000")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{what} must be valid Unicode (no lone surrogate)") from None
    if len(encoded) > MAX_STRING:
        raise InvalidArgumentError(f"{what} is longer than 65,535 bytes in UTF-8")
    return encoded


def topic_matches(topic_filter: str, topic: str) -> bool:
    """True when ``topic`` matches ``topic_filter`` (``+`` one level, ``#`` the rest).

    A filter starting with a wildcard does not match a topic starting with ``$``.
    """
    if topic_filter == topic:
        return True
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


def payload_bytes(payload: Payload) -> bytes:
    """A payload as the bytes sent: bytes unchanged, str as UTF-8, a dict or list as JSON.

    Raises:
        InvalidArgumentError: another type, or a dict/list that is not JSON-able.

    """
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, Mapping | list):
        try:
            return json.dumps(payload, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as err:
            raise InvalidArgumentError(f"the MQTT payload is not JSON-able ({err})") from None
    raise InvalidArgumentError("an MQTT payload must be bytes, str, a dict or a list")
