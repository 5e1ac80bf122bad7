"""The sans-I/O MQTT 3.1.1 codec: round trips, every framing rule, fuzzing.

Properties: every packet the encoders make decodes to itself, however the bytes are split
into WebSocket messages; arbitrary bytes either decode or raise MQTTProtocolError (nothing
else, no hang, never a message quoting the input). ``make fuzz`` profiles apply.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oe_async import (
    InvalidArgumentError,
    MQTTMessage,
    MQTTProtocolError,
    UnexpectedResponseError,
)
from oe_async.mqtt_codec import (
    MQTTDecoder,
    encode,
    encode_connack,
    encode_connect,
    encode_puback,
    encode_publish,
    encode_suback,
    encode_subscribe,
    encode_unsubscribe,
)
from oe_async.mqtt_packets import (
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    SubscribeResult,
    UnsubAck,
    Unsubscribe,
    payload_bytes,
    redact_topic,
    topic_matches,
    validate_topic,
    validate_topic_filter,
)

MARKER = "zz-secret-zz"
QUICK = settings(
    max_examples=60 if settings.default.max_examples < 1000 else settings.default.max_examples,
    suppress_health_check=[HealthCheck.too_slow],
)

# ---------------------------------------------------------------------------- strategies

_level = st.text(
    alphabet=st.characters(blacklist_characters="/+#\x00", blacklist_categories=("Cs",)),
    max_size=8,
)
topics = st.lists(_level, min_size=1, max_size=5).map("/".join).filter(lambda t: t != "")
filters = (
    st.lists(st.one_of(_level, st.just("+")), min_size=1, max_size=5)
    .flatmap(lambda levels: st.sampled_from(["/".join(levels), "/".join([*levels, "#"])]))
    .filter(lambda f: f != "")
)
packet_ids = st.integers(1, 65_535)


@st.composite
def messages(draw: st.DrawFn) -> MQTTMessage:
    qos = draw(st.integers(0, 2))
    return MQTTMessage(
        topic=draw(topics),
        payload=draw(st.binary(max_size=300)),
        qos=qos,
        retain=draw(st.booleans()),
        dup=draw(st.booleans()) if qos else False,
        packet_id=draw(packet_ids) if qos else None,
    )


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    username = draw(st.one_of(st.none(), st.text(max_size=20).filter(lambda s: "\x00" not in s)))
    return Connect(
        client_id=draw(st.text(max_size=23).filter(lambda s: "\x00" not in s)),
        keepalive=draw(st.integers(0, 65_535)),
        clean_session=draw(st.booleans()),
        username=username,
        password=None if username is None else draw(st.one_of(st.none(), st.binary())),
    )


packets: st.SearchStrategy[Packet] = st.one_of(
    messages(),
    connects(),
    st.builds(ConnAck, session_present=st.booleans(), return_code=st.integers(0, 255)),
    st.builds(PubAck, packet_ids),
    st.builds(PubRec, packet_ids),
    st.builds(PubRel, packet_ids),
    st.builds(PubComp, packet_ids),
    st.builds(UnsubAck, packet_ids),
    st.builds(
        Subscribe,
        packet_id=packet_ids,
        subscriptions=st.lists(st.tuples(filters, st.integers(0, 2)), min_size=1, max_size=4).map(
            tuple
        ),
    ),
    st.builds(
        SubAck,
        packet_id=packet_ids,
        return_codes=st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=5).map(tuple),
    ),
    st.builds(
        Unsubscribe,
        packet_id=packet_ids,
        topic_filters=st.lists(filters, min_size=1, max_size=4).map(tuple),
    ),
    st.just(PingReq()),
    st.just(PingResp()),
    st.just(Disconnect()),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


# ---------------------------------------------------------------------------- properties


@QUICK
@given(st.lists(packets, min_size=1, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_every_packet_round_trips_however_the_stream_is_split(
    sent: list[Packet], cuts: list[int]
) -> None:
    data = b"".join(encode(packet) for packet in sent)
    decoder = MQTTDecoder()
    received: list[Packet] = []
    for piece in _split(data, cuts):
        received += decoder.feed(piece)
    assert received == sent
    assert decoder.buffered == 0


@pytest.mark.fuzz
@QUICK
@given(st.binary(max_size=600), st.lists(st.integers(0, 1000), max_size=4))
def test_arbitrary_bytes_decode_or_raise_the_protocol_error(data: bytes, cuts: list[int]) -> None:
    decoder = MQTTDecoder(max_packet_size=512)
    failure = ""
    try:
        for piece in _split(data, cuts):
            decoder.feed(piece)
    except MQTTProtocolError as err:
        failure = str(err)
    assert not failure or failure.startswith("MQTT protocol error: ")
    assert decoder.buffered <= 512 + 5


@pytest.mark.fuzz
@QUICK
@given(st.binary(min_size=1, max_size=60))
def test_a_bad_topic_is_never_quoted_in_the_error(junk: bytes) -> None:
    topic = (MARKER + "/a+b").encode() + junk
    data = bytes((0x30, len(topic) + 2)) + len(topic).to_bytes(2, "big") + topic
    with pytest.raises(MQTTProtocolError) as caught:
        MQTTDecoder().feed(data)
    assert MARKER not in str(caught.value)


# ---------------------------------------------------------------------------- framing rules


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"\x30\x80\x80\x80\x80\x01", "longer than four bytes"),
        (b"\x00\x00", "unknown packet type"),
        (b"\xf0\x00", "unknown packet type"),
        (b"\x41\x02\x00\x01", "reserved flags"),
        (b"\x80\x02\x00\x01", "reserved flags"),  # SUBSCRIBE must carry 0b0010
        (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
        (b"\x38\x03\x00\x01a", "DUP"),
        (b"\x32\x05\x00\x01a\x00\x00", "packet id of 0"),
        (b"\x30\x05\x00\x03a/#", "wildcard"),
        (b"\x30\x02\x00\x00", "wildcard"),  # empty topic
        (b"\x30\x04\x00\x02\xc3\x28", "UTF-8"),
        (b"\x30\x04\x00\x02a\x00", r"U\+0000"),
        (b"\x30\x04\x00\x09ab", "past the end"),
        (b"\x40\x03\x00\x01\x00", "2 bytes long"),
        (b"\x20\x03\x00\x00\x00", "2 bytes long"),
        (b"\x20\x02\x02\x00", "reserved CONNACK flags"),
        (b"\x90\x02\x00\x01", "without return codes"),
        (b"\x90\x03\x00\x01\x03", "return code other than"),
        (b"\xc0\x01\x00", "with a body"),
        (b"\x82\x02\x00\x01", "without topic filters"),
        (b"\x82\x06\x00\x01\x00\x01a\x03", "QoS byte"),
        (b"\xa2\x02\x00\x01", "without topic filters"),
        (b"\x10\x0c\x00\x04MQTT\x04\x01\x00\x3c\x00\x00", "reserved CONNECT flag"),
        (b"\x10\x0c\x00\x04MQTT\x04\x42\x00\x3c\x00\x00", "password without a user name"),
        (b"\x10\x0c\x00\x04MQTT\x04\x18\x00\x3c\x00\x00", "will flags"),
        (b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\x00", "after the end"),
    ],
)
def test_each_protocol_rule_is_enforced(data: bytes, rule: str) -> None:
    with pytest.raises(MQTTProtocolError, match=rule):
        MQTTDecoder().feed(data)


def test_a_packet_over_the_limit_is_refused_before_its_body_arrives() -> None:
    decoder = MQTTDecoder(max_packet_size=1000)
    with pytest.raises(MQTTProtocolError, match="larger than the limit"):
        decoder.feed(b"\x30\xe9\x07")  # 1001, the body not sent at all
    with pytest.raises(MQTTProtocolError, match="larger than the limit"):
        MQTTDecoder(max_packet_size=1000).feed(b"\x30\xff\xff")  # incomplete, already > limit


def test_an_incomplete_packet_waits_for_the_rest() -> None:
    data = encode_publish("a/b", b"x" * 200, qos=1, packet_id=7)
    decoder = MQTTDecoder()
    assert decoder.feed(data[:2]) == []  # half of a two-byte length
    assert decoder.buffered == 2
    assert decoder.feed(data[2:-1]) == []
    (message,) = decoder.feed(data[-1:])
    assert message == MQTTMessage(topic="a/b", payload=b"x" * 200, qos=1, packet_id=7)


def test_several_packets_in_one_message() -> None:
    data = encode_connack(0) + encode_publish("t", b"1") + PINGRESP + encode_puback(3)
    assert MQTTDecoder().feed(bytearray(data)) == [
        ConnAck(return_code=0),
        MQTTMessage(topic="t", payload=b"1"),
        PingResp(),
        PubAck(3),
    ]


def test_a_mqtt_3_1_connect_is_decoded_so_a_server_can_refuse_it() -> None:
    data = encode_connect("c", protocol_level=3, protocol_name="MQIsdp")
    (packet,) = MQTTDecoder().feed(data)
    assert isinstance(packet, Connect)
    assert (packet.protocol_name, packet.protocol_level) == ("MQIsdp", 3)


def test_constants_are_the_encoded_packets() -> None:
    assert encode(PingReq()) == PINGREQ
    assert encode(PingResp()) == PINGRESP
    assert encode(Disconnect()) == DISCONNECT


def test_connect_carries_the_credentials_but_the_repr_does_not() -> None:
    data = encode_connect("cid", keepalive=5, username="bblp", password=MARKER)
    (packet,) = MQTTDecoder().feed(data)
    assert isinstance(packet, Connect)
    assert packet.password == MARKER.encode()
    assert MARKER not in repr(packet)
    assert "bblp" not in repr(packet)


# ---------------------------------------------------------------------------- what the app sends


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: encode_publish("a/+", b""), "'\\+' or '#'"),
        (lambda: encode_publish("", b""), "cannot be empty"),
        (lambda: encode_publish("a\x00", b""), "U\\+0000"),
        (lambda: encode_publish("a\ud800", b""), "surrogate"),
        (lambda: encode_publish("x" * 65_536, b""), "65,535"),
        (lambda: encode_publish("a", b"", qos=3, packet_id=1), "QoS"),
        (lambda: encode_publish("a", b"", qos=True), "QoS"),
        (lambda: encode_publish("a", b"", qos=1), "packet id"),
        (lambda: encode_publish("a", b"", qos=1, packet_id=0), "packet id"),
        (lambda: encode_publish("a", b"", qos=1, packet_id=65_536), "packet id"),
        (lambda: encode_publish("a", b"", packet_id=1), "QoS 0"),
        (lambda: encode_publish("a", "text"), "bytes"),  # type: ignore[arg-type]
        (lambda: encode_subscribe(1, []), "at least one"),
        (lambda: encode_subscribe(1, [("a/#/b", 0)]), "last one"),
        (lambda: encode_subscribe(1, [("a+", 0)]), "whole level"),
        (lambda: encode_subscribe(1, [("a", 3)]), "QoS"),
        (lambda: encode_unsubscribe(1, []), "at least one"),
        (lambda: encode_suback(1, [3]), "0x80"),
        (lambda: encode_connect("c", keepalive=70_000), "keepalive"),
        (lambda: encode_connect("c", password="p"), "user name"),
        (lambda: encode_connack(256), "0 to 255"),
    ],
)
def test_bad_input_names_the_problem(call: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        call()  # type: ignore[operator]


def test_large_packets_use_a_multi_byte_length() -> None:
    payload = b"p" * 20_000
    data = encode_publish("big", payload)
    assert data[1] & 0x80  # three length bytes
    assert data[2] & 0x80
    assert not data[3] & 0x80
    assert MQTTDecoder().feed(data) == [MQTTMessage(topic="big", payload=payload)]


# ---------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("device/+/report", "device/S1/report", True),
        ("device/+/report", "device/S1/request", False),
        ("device/#", "device", True),
        ("device/#", "device/a/b/c", True),
        ("#", "a/b", True),
        ("+", "a/b", False),
        ("+/+", "/a", True),
        ("a/+", "a/", True),
        ("a/b", "a/b/c", False),
        ("#", "$SYS/uptime", False),
        ("+/uptime", "$SYS/uptime", False),
        ("$SYS/#", "$SYS/uptime", True),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, matches: bool) -> None:
    validate_topic_filter(topic_filter)
    validate_topic(topic)
    assert topic_matches(topic_filter, topic) is matches


def test_topics_are_redacted_in_reprs() -> None:
    assert redact_topic("device/01S00C123/report") == "device/***/report"
    assert redact_topic("elegoo/SN/client/api_response") == "elegoo/***/api_response"
    assert redact_topic("a/b") == "a/b"
    message = MQTTMessage(topic=f"device/{MARKER}/report", payload=MARKER.encode())
    assert MARKER not in repr(message)
    assert "<12 bytes>" in repr(message)
    result = SubscribeResult(topic_filter=f"device/{MARKER}/report", granted_qos=None)
    assert MARKER not in repr(result)
    assert not result.ok
    assert MARKER not in repr(Subscribe(packet_id=1, subscriptions=((f"a/{MARKER}/b", 0),)))


def test_payloads_and_message_decoding() -> None:
    assert payload_bytes({"a": [1, 2]}) == b'{"a":[1,2]}'
    assert payload_bytes("é") == "é".encode()
    assert payload_bytes(bytearray(b"x")) == b"x"
    with pytest.raises(InvalidArgumentError, match="JSON-able"):
        payload_bytes({"a": object()})
    with pytest.raises(InvalidArgumentError, match="bytes, str"):
        payload_bytes(3)  # type: ignore[arg-type]
    message = MQTTMessage(topic=f"device/{MARKER}/report", payload=b'{"print": {}}')
    assert message.json() == {"print": {}}
    assert message.text() == '{"print": {}}'
    bad = MQTTMessage(topic=f"device/{MARKER}/report", payload=b"\xff[")
    with pytest.raises(UnexpectedResponseError, match="not JSON") as caught:
        bad.json()
    assert MARKER not in str(caught.value)
    with pytest.raises(UnexpectedResponseError, match="not UTF-8"):
        bad.text()
    deep = MQTTMessage(topic="t", payload=b"[" * 100_000)
    with pytest.raises(UnexpectedResponseError, match=r"nested too deeply|not JSON"):
        deep.json()
