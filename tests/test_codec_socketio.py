"""Unit and property tests for the pure Socket.IO packet codec (``sockjet.codecs.socketio``).

Wire examples come from protocol-notes §4.1-4.3 and §4.7 (observed traffic / socket.io-parser).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockjet.codecs.socketio import (
    ACK,
    BINARY_ACK,
    BINARY_EVENT,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    EVENT,
    MAX_ATTACHMENTS,
    RESERVED_EVENTS,
    DecodeError,
    Decoder,
    SocketIOPacket,
    decode_text,
    encode,
    encode_event,
    has_binary,
)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROTOCOLS = (4, 5)
both_protocols = pytest.mark.parametrize("protocol", PROTOCOLS)


def ph(num: Any) -> dict[str, Any]:
    return {"_placeholder": True, "num": num}


def ph_json(num: int) -> str:
    return f'{{"_placeholder":true,"num":{num}}}'


def feed_all(messages: list[str | bytes], protocol: int = 5) -> SocketIOPacket:
    """Feed a text message and its attachments: ``None`` until the last one, then a packet."""
    decoder = Decoder(protocol)
    *head, last = messages
    for message in head:
        assert decoder.feed(message) is None
    packet = decoder.feed(last)
    assert packet is not None
    return packet


def roundtrip(
    ptype: int, nsp: str = "/", data: Any = None, ack_id: int | None = None, protocol: int = 5
) -> SocketIOPacket:
    text, attachments = encode(ptype, nsp, data, ack_id)
    return feed_all([text, *attachments], protocol)


# -- constants (§4.1, §4.7) ---------------------------------------------------------------------


def test_packet_type_ids():
    assert (CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK) == tuple(
        range(7)
    )
    assert MAX_ATTACHMENTS == 10


def test_reserved_events_are_the_v5_list():
    assert RESERVED_EVENTS == {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    }
    assert "error" not in RESERVED_EVENTS  # only the v2 server guarded "error"


def test_decode_error_is_value_error():
    assert issubclass(DecodeError, ValueError)


def test_packet_defaults():
    assert SocketIOPacket(EVENT) == SocketIOPacket(EVENT, "/", None, None, None, 0)


# -- encoding text packets (§4.2) ---------------------------------------------------------------

TEXT_CASES = [
    # (type, nsp, data, ack id, wire text)
    (CONNECT, "/", None, None, "0"),
    (CONNECT, "/admin", None, None, "0/admin,"),
    (CONNECT, "/", {"token": "abc"}, None, '0{"token":"abc"}'),
    (CONNECT, "/admin", {"token": "abc"}, None, '0/admin,{"token":"abc"}'),
    (CONNECT, "/", {"sid": "JwZjJssRFDerX5b-AAAA"}, None, '0{"sid":"JwZjJssRFDerX5b-AAAA"}'),
    (DISCONNECT, "/", None, None, "1"),
    (DISCONNECT, "/admin", None, None, "1/admin,"),
    (EVENT, "/", ["hello", 1], None, '2["hello",1]'),
    (EVENT, "/admin", ["project:delete", 123], 456, '2/admin,456["project:delete",123]'),
    (EVENT, "/", ["x"], 0, '20["x"]'),
    (EVENT, "/", ["x", None, True, 1.5, {"a": [1, 2]}], 7, '27["x",null,true,1.5,{"a":[1,2]}]'),
    (EVENT, "/admin", ["x"], None, '2/admin,["x"]'),
    (EVENT, "/", [42, "numeric name"], None, '2[42,"numeric name"]'),
    (ACK, "/admin", [], 456, "3/admin,456[]"),
    (ACK, "/", ["ok", 2], 12, '312["ok",2]'),
    (ACK, "/", [], 0, "30[]"),
    (CONNECT_ERROR, "/", "Not authorized", None, '4"Not authorized"'),
    (CONNECT_ERROR, "/", {"code": 42}, None, '4{"code":42}'),
    (CONNECT_ERROR, "/admin", "admin denied", None, '4/admin,"admin denied"'),
    (CONNECT_ERROR, "/nope", "Invalid namespace", None, '4/nope,"Invalid namespace"'),
    (
        CONNECT_ERROR,
        "/nope",
        {"message": "Invalid namespace"},
        None,
        '4/nope,{"message":"Invalid namespace"}',
    ),
    (
        CONNECT_ERROR,
        "/",
        {"message": "not authorized", "data": {"reason": "bad token"}},
        None,
        '4{"message":"not authorized","data":{"reason":"bad token"}}',
    ),
]


@pytest.mark.parametrize(("ptype", "nsp", "data", "ack_id", "text"), TEXT_CASES)
def test_encode_text_packet(ptype, nsp, data, ack_id, text):
    assert encode(ptype, nsp, data, ack_id) == (text, [])


@both_protocols
@pytest.mark.parametrize(("ptype", "nsp", "data", "ack_id", "text"), TEXT_CASES)
def test_decode_text_packet(ptype, nsp, data, ack_id, text, protocol):
    expected = SocketIOPacket(ptype, nsp, data, ack_id)
    assert decode_text(text, protocol) == (expected, 0)
    assert Decoder(protocol).feed(text) == expected


def test_encode_defaults_to_root_namespace_without_data():
    assert encode(CONNECT) == ("0", [])
    assert encode(EVENT) == ("2", [])


def test_namespace_written_only_when_not_root_and_followed_by_comma():
    assert encode(EVENT, "/", ["a"])[0] == '2["a"]'
    assert encode(EVENT, "/a", ["a"])[0] == '2/a,["a"]'
    assert encode(EVENT, "/a-b/c", ["a"], 3)[0] == '2/a-b/c,3["a"]'
    # the comma also separates a numeric namespace from the ack id
    assert encode(ACK, "/123", [], 456)[0] == "3/123,456[]"
    assert encode(DISCONNECT, "/chat")[0] == "1/chat,"


def test_ack_id_without_payload():
    assert encode(ACK, "/", None, 3) == ("33", [])


@pytest.mark.parametrize(
    ("ptype", "expected_type"), [(EVENT, "2"), (BINARY_EVENT, "2"), (ACK, "3"), (BINARY_ACK, "3")]
)
def test_event_and_ack_without_binary_are_text_types(ptype, expected_type):
    text, attachments = encode(ptype, "/", ["a", {"b": [1, "c"]}], 5)
    assert text == expected_type + '5["a",{"b":[1,"c"]}]'
    assert attachments == []


def test_binary_type_without_data_downgrades():
    assert encode(BINARY_EVENT) == ("2", [])
    assert encode(BINARY_ACK, "/x", None, 1) == ("3/x,1", [])


def test_tuples_are_arrays():
    assert encode(EVENT, "/", ("a", (1, (2, 3)), [])) == ('2["a",[1,[2,3]],[]]', [])


def test_encode_event_helper():
    assert encode_event("/", "hello", (1,)) == ('2["hello",1]', [])
    assert encode_event("/", "ping", []) == ('2["ping"]', [])
    assert encode_event("/admin", "project:delete", [123], 456) == (
        '2/admin,456["project:delete",123]',
        [],
    )
    assert encode_event("/", "hello", (b"\x01",)) == (f'51-["hello",{ph_json(0)}]', [b"\x01"])


def test_compact_json_and_utf8_characters_kept():
    text, _ = encode(EVENT, "/", ["msg", {"a": 1, "b": [1, 2, {"c": None}]}, "x y"])
    assert text == '2["msg",{"a":1,"b":[1,2,{"c":null}]},"x y"]'
    text, _ = encode(EVENT, "/", ["héllo", "日本語", "😀", "Ωμέγα"])
    assert text == '2["héllo","日本語","😀","Ωμέγα"]'
    assert "\\u" not in text
    # JSON still escapes what it must
    text, _ = encode(EVENT, "/", ["a\nb", 'q"', "\\", "\x00"])
    assert text == r'2["a\nb","q\"","\\","\u0000"]'


def test_dict_key_order_is_preserved():
    assert encode(CONNECT, "/", {"z": 1, "a": 2, "m": 3})[0] == '0{"z":1,"a":2,"m":3}'


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (["a", {1, 2}], "set"),
        (["a", object()], "object"),
        (["a", 1 + 2j], "complex"),
        (["a", 2**64], "64-bit"),
        (["a", {1: "non-str key"}], "str"),
        (["a", "\ud800"], "surrogates"),
    ],
)
def test_non_json_data_raises_type_error(data, what):
    with pytest.raises(TypeError, match="cannot send list data as JSON") as info:
        encode(EVENT, "/", data)
    assert type(info.value) is TypeError
    assert what in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_non_json_top_level_data_names_its_type():
    with pytest.raises(TypeError, match="cannot send object data as JSON"):
        encode(CONNECT_ERROR, "/", object())
    with pytest.raises(TypeError, match="cannot send set data as JSON"):
        encode(EVENT, "/", {"a"})


def test_binary_only_allowed_in_events_and_acks():
    with pytest.raises(TypeError, match="cannot send dict data as JSON"):
        encode(CONNECT, "/", {"key": b"\x00"})
    with pytest.raises(TypeError, match="bytes"):
        encode(CONNECT_ERROR, "/", {"key": b"\x00"})


# -- encoding binary packets (§4.3) -------------------------------------------------------------


def test_binary_event_example():
    assert encode(EVENT, "/", ["hello", b"\x01\x02\x03"]) == (
        '51-["hello",{"_placeholder":true,"num":0}]',
        [b"\x01\x02\x03"],
    )


def test_binary_placeholders_depth_first_in_encounter_order():
    data = ["ev", b"A", {"x": b"B", "y": [b"C", {"z": b"D"}], "w": 1}, [[b"E"]], b"F"]
    text, attachments = encode(EVENT, "/", data)
    assert text == (
        f'56-["ev",{ph_json(0)},{{"x":{ph_json(1)},"y":[{ph_json(2)},{{"z":{ph_json(3)}}}],'
        f'"w":1}},[[{ph_json(4)}]],{ph_json(5)}]'
    )
    assert attachments == [b"A", b"B", b"C", b"D", b"E", b"F"]


def test_binary_placeholders_follow_dict_insertion_order_not_key_order():
    text, attachments = encode(EVENT, "/", ["ev", {"z": b"1", "a": b"2", "m": {"b": b"3"}}])
    assert text == f'53-["ev",{{"z":{ph_json(0)},"a":{ph_json(1)},"m":{{"b":{ph_json(2)}}}}}]'
    assert attachments == [b"1", b"2", b"3"]


def test_binary_ack_with_namespace_and_id():
    text, attachments = encode(ACK, "/admin", [b"\xff", "ok"], 7)
    assert text == f'61-/admin,7[{ph_json(0)},"ok"]'
    assert attachments == [b"\xff"]
    assert encode(BINARY_ACK, "/", [{"k": b""}], 0) == (f'61-0[{{"k":{ph_json(0)}}}]', [b""])


def test_binary_event_with_namespace_and_id():
    assert encode(BINARY_EVENT, "/admin", ["up", b"x", b"y"], 9) == (
        f'52-/admin,9["up",{ph_json(0)},{ph_json(1)}]',
        [b"x", b"y"],
    )


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_binary_input_types_become_bytes_attachments(wrap):
    text, attachments = encode(EVENT, "/", ["bin", wrap(b"\x00\x01"), {"n": [wrap(b"")]}])
    assert text == f'52-["bin",{ph_json(0)},{{"n":[{ph_json(1)}]}}]'
    assert attachments == [b"\x00\x01", b""]
    assert all(type(a) is bytes for a in attachments)


def test_same_buffer_twice_is_sent_twice():
    blob = b"same"
    text, attachments = encode(EVENT, "/", ["e", blob, [blob]])
    assert text == f'52-["e",{ph_json(0)},[{ph_json(1)}]]'
    assert attachments == [blob, blob]


def test_encode_does_not_mutate_input():
    inner = {"b": b"x", "n": 1}
    data = ["e", inner, [b"y"]]
    encode(EVENT, "/", data)
    assert data == ["e", {"b": b"x", "n": 1}, [b"y"]]
    assert data[1] is inner


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", True),
        (bytearray(b"a"), True),
        (memoryview(b"a"), True),
        (["a", 1, None], False),
        (["a", [{"b": [b"x"]}]], True),
        (("a", (b"x",)), True),
        ({"k": {"k": bytearray()}}, True),
        ({b"key-only": 1}, False),  # only values are walked
        ("bytes", False),
        (None, False),
        (12, False),
    ],
)
def test_has_binary(data, expected):
    assert has_binary(data) is expected


# -- decoding text packets ----------------------------------------------------------------------


@both_protocols
def test_decode_examples(protocol):
    assert Decoder(protocol).feed('2["hello",1]') == SocketIOPacket(EVENT, "/", ["hello", 1])
    assert Decoder(protocol).feed('2/admin,456["project:delete",123]') == SocketIOPacket(
        EVENT, "/admin", ["project:delete", 123], 456
    )
    assert Decoder(protocol).feed("3/admin,456[]") == SocketIOPacket(ACK, "/admin", [], 456)


@both_protocols
@pytest.mark.parametrize(
    ("text", "nsp", "query", "data"),
    [
        ("0/admin?token=abc&x=1,", "/admin", "token=abc&x=1", None),
        ("0/admin?token=abc,", "/admin", "token=abc", None),
        ("0/admin?token=abc", "/admin", "token=abc", None),  # no trailing comma
        ('0/admin?token=abc,{"a":1}', "/admin", "token=abc", {"a": 1}),
        ("0/?x=1,", "/", "x=1", None),
        ("0/admin?,", "/admin", "", None),
        ("0/admin?a=b?c,", "/admin", "a=b?c", None),
        ("0/admin,", "/admin", None, None),
        ("0/admin", "/admin", None, None),
        ("0", "/", None, None),
        ('0{"token":"abc"}', "/", None, {"token": "abc"}),
        ('0/admin,{"token":"abc"}', "/admin", None, {"token": "abc"}),
        ("0{}", "/", None, {}),
    ],
)
def test_decode_connect(text, nsp, query, data, protocol):
    assert Decoder(protocol).feed(text) == SocketIOPacket(CONNECT, nsp, data, None, query)


@both_protocols
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", SocketIOPacket(DISCONNECT)),
        ("1/admin,", SocketIOPacket(DISCONNECT, "/admin")),
        ("1/admin", SocketIOPacket(DISCONNECT, "/admin")),  # namespace without trailing comma
        ("1/", SocketIOPacket(DISCONNECT)),
        ('2/,["a"]', SocketIOPacket(EVENT, "/", ["a"])),  # explicit root
        ('2/chat,["a"]', SocketIOPacket(EVENT, "/chat", ["a"])),
        ("4/admin", None),  # CONNECT_ERROR needs a payload
    ],
)
def test_decode_namespaces(text, expected, protocol):
    if expected is None:
        with pytest.raises(DecodeError):
            Decoder(protocol).feed(text)
    else:
        assert Decoder(protocol).feed(text) == expected


@both_protocols
@pytest.mark.parametrize(
    ("text", "ack_id"),
    [
        ('20["x"]', 0),
        ('2123["x"]', 123),
        ('2/a,9["x"]', 9),
        ("3007[]", 7),  # leading zeros
        ("3" + "9" * 16 + "[]", 9_999_999_999_999_999),  # the longest accepted id
        ("31[1,2]", 1),
    ],
)
def test_decode_ack_ids(text, ack_id, protocol):
    assert Decoder(protocol).feed(text).id == ack_id


@both_protocols
def test_decode_event_names_may_be_numbers(protocol):
    assert Decoder(protocol).feed("2[1,2]") == SocketIOPacket(EVENT, "/", [1, 2])
    assert Decoder(protocol).feed("2/x,[1.5]") == SocketIOPacket(EVENT, "/x", [1.5])
    assert Decoder(protocol).feed('2[-3,"a"]').data == [-3, "a"]


@both_protocols
def test_decode_keeps_utf8(protocol):
    assert Decoder(protocol).feed('2["héllo","日本😀"]').data == ["héllo", "日本😀"]
    assert Decoder(protocol).feed('2["\\u00e9"]').data == ["é"]


def test_placeholder_in_a_text_event_is_plain_data():
    text = f'2["a",{ph_json(0)}]'
    assert Decoder().feed(text) == SocketIOPacket(EVENT, "/", ["a", ph(0)])


def test_decode_text_reports_attachment_count():
    text = f'52-/admin,3["a",{ph_json(0)},{ph_json(1)}]'
    assert decode_text(text) == (
        SocketIOPacket(BINARY_EVENT, "/admin", ["a", ph(0), ph(1)], 3, None, 2), 2)
    assert decode_text('5010-["a"]')[1] == 10  # three digits, value 10


def test_decoder_default_protocol_is_5():
    assert Decoder().socketio_protocol == 5
    with pytest.raises(DecodeError, match="reserved"):
        Decoder().feed('2["connect"]')


# -- binary reassembly --------------------------------------------------------------------------


@both_protocols
def test_binary_event_reassembly_across_feeds(protocol):
    decoder = Decoder(protocol)
    assert decoder.feed(f'52-["a",{ph_json(0)},{{"k":{ph_json(1)}}}]') is None
    assert decoder.feed(b"first") is None
    packet = decoder.feed(b"second")
    assert packet == SocketIOPacket(BINARY_EVENT, "/", ["a", b"first", {"k": b"second"}], None,
                                    None, 2)
    # the decoder is ready for the next packet
    assert decoder.feed('2["next"]') == SocketIOPacket(EVENT, "/", ["next"])


@both_protocols
def test_binary_ack_reassembly(protocol):
    packet = feed_all([f'61-/admin,7[{ph_json(0)},"ok"]', b"\xff\x00"], protocol)
    assert packet == SocketIOPacket(BINARY_ACK, "/admin", [b"\xff\x00", "ok"], 7, None, 1)


def test_binary_example_from_notes():
    packet = feed_all(['51-["hello",{"_placeholder":true,"num":0}]', b"\x01\x02\x03"])
    assert packet == SocketIOPacket(BINARY_EVENT, "/", ["hello", b"\x01\x02\x03"], None, None, 1)


def test_placeholders_resolve_by_num_not_by_position():
    packet = feed_all([f'52-["a",{ph_json(1)},{ph_json(0)}]', b"zero", b"one"])
    assert packet.data == ["a", b"one", b"zero"]


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_attachments_of_any_buffer_type_become_bytes(wrap):
    packet = feed_all([f'51-["a",{ph_json(0)}]', wrap(b"\x00\x01")])
    assert packet.data == ["a", b"\x00\x01"]
    assert type(packet.data[1]) is bytes


def test_max_attachments_accepted():
    placeholders = ",".join(ph_json(i) for i in range(MAX_ATTACHMENTS))
    buffers = [bytes([i]) for i in range(MAX_ATTACHMENTS)]
    packet = feed_all([f'510-["many",{placeholders}]', *buffers])
    assert packet.data == ["many", *buffers]


def test_zero_attachments_allowed_with_protocol_5_only():
    assert Decoder(5).feed('50-["a"]') == SocketIOPacket(BINARY_EVENT, "/", ["a"])
    assert Decoder(5).feed("60-1[]") == SocketIOPacket(BINARY_ACK, "/", [], 1)
    for text in ('50-["a"]', "60-1[]"):
        with pytest.raises(DecodeError, match="illegal attachments"):
            Decoder(4).feed(text)


def test_non_true_placeholder_flag_is_plain_data():
    objects = [
        '{"_placeholder":1,"num":0}',
        '{"_placeholder":"true","num":0}',
        '{"_placeholder":false,"num":0}',
        '{"num":0}',
    ]
    packet = feed_all([f'51-["a",{ph_json(0)},{",".join(objects)}]', b"x"])
    assert packet.data == ["a", b"x", *(json.loads(o) for o in objects)]


def test_binary_roundtrip_roots_and_nesting():
    data = ["ev", {"a": [b"1", {"b": bytearray(b"2")}]}, memoryview(b"3"), [], {}]
    packet = roundtrip(EVENT, "/ns", data, 4)
    assert packet == SocketIOPacket(
        BINARY_EVENT, "/ns", ["ev", {"a": [b"1", {"b": b"2"}]}, b"3", [], {}], 4, None, 3
    )


# -- strict validation --------------------------------------------------------------------------

BAD_PACKETS = [
    # (text, message regex)
    ("", "empty"),
    ("7", "unknown packet type"),
    ("9[]", "unknown packet type"),
    ("x", "unknown packet type"),
    ("/", "unknown packet type"),
    (" 2[]", "unknown packet type"),
    ("-1", "unknown packet type"),
    ("😀", "unknown packet type"),
    # invalid JSON
    ('2["a"', "invalid JSON"),
    ("2[hello]", "invalid JSON"),
    ("0{", "invalid JSON"),
    ('2/admin,["a",]', "invalid JSON"),
    ("3/admin,1{", "invalid JSON"),
    ('2["a"]x', "invalid JSON"),
    ('2["a",NaN]', "invalid JSON"),
    ('2["a",1e400]', "invalid JSON"),
    ('2"\ud800"', "invalid JSON"),
    ("0/admin?a=1,b=2,", "invalid JSON"),
    # only ASCII digits make an ack id: what follows them is the JSON
    ('2٣["a"]', "invalid JSON"),  # a non-ASCII decimal digit
    ('2²["a"]', "invalid JSON"),  # str.isdigit() but not a decimal
    ("31A", "invalid JSON"),
    ('2/admin,1:["a"]', "invalid JSON"),
    # event payloads
    ('2{"a":1}', "non-empty array"),
    ('2"hello"', "non-empty array"),
    ('21"x"', "non-empty array"),
    ("2/admin,{}", "non-empty array"),
    ("2/admin,", "non-empty array"),
    ("2", "non-empty array"),
    ("25", "non-empty array"),
    ("2[]", "non-empty array"),
    ("2/admin,[]", "non-empty array"),
    ("27[]", "non-empty array"),
    (f"51-{ph_json(0)}", "non-empty array"),
    ("51-[]", "non-empty array"),
    ("2[null]", "string or a number"),
    ("2[true]", "string or a number"),
    ("2[false,1]", "string or a number"),
    ("2[[1]]", "string or a number"),
    ('2[{"a":1}]', "string or a number"),
    ("2/admin,1[true]", "string or a number"),
    (f"51-[{ph_json(0)}]", "string or a number"),
    # ACK
    ("3[]", "ACK without id"),
    ("3/admin,[]", "ACK without id"),
    ("3", "ACK without id"),
    (f"61-[{ph_json(0)}]", "ACK without id"),
    ('31{"a":1}', "must be an array"),
    ('31"x"', "must be an array"),
    ("31", "must be an array"),
    ("3/admin,2", "must be an array"),
    # DISCONNECT / CONNECT / CONNECT_ERROR
    ("1{}", "no payload"),
    ('1/admin,{"a":1}', "no payload"),
    ('1"x"', "no payload"),
    ("1[]", "no payload"),
    ("0[]", "must be an object"),
    ('0"token"', "must be an object"),
    ("0/admin,[1]", "must be an object"),
    ("0true", "must be an object"),
    ("4", "string or an object"),
    ("4[]", "string or an object"),
    ('4/admin,["x"]', "string or an object"),
    ("4true", "string or an object"),
    # a present `null` payload is valid for no type
    ("0null", "null"),
    ("0/admin,null", "null"),
    ("1null", "null"),
    ("1/admin,null", "null"),
    ("4null", "null"),
    ("2null", "null"),
    ("31null", "null"),
    # attachments header
    ('5["a"]', "illegal attachments"),
    ('5-["a"]', "illegal attachments"),
    ('5a-["a"]', "illegal attachments"),
    ('5+1-["a"]', "illegal attachments"),
    ('5 1-["a"]', "illegal attachments"),
    ('5-1-["a"]', "illegal attachments"),
    ('5²-["a"]', "illegal attachments"),  # str.isdigit() but not a decimal
    ('5٣-["a"]', "illegal attachments"),  # a non-ASCII decimal digit
    ('511-["a"]', "illegal attachments"),
    ('5999-["a"]', "illegal attachments"),
    ('51000-["a"]', "illegal attachments"),
    ('50001-["a"]', "illegal attachments"),  # more than three digits, even with leading zeros
    ("521", "illegal attachments"),  # digits but no dash: no count
    ("5", "illegal attachments"),
    ("6/admin,1[]", "illegal attachments"),
    ("61", "illegal attachments"),
    # ack id length
    ("3" + "1" * 17 + "[]", "ack id too long"),
    ("2" + "1" * 17 + '["a"]', "ack id too long"),
    ("3" + "1" * 5000 + "[]", "ack id too long"),  # beyond int()'s digit limit
]


@both_protocols
@pytest.mark.parametrize(("text", "match"), BAD_PACKETS)
def test_decode_rejects(text, match, protocol):
    with pytest.raises(DecodeError, match=match):
        decode_text(text, protocol)
    with pytest.raises(DecodeError, match=match):
        Decoder(protocol).feed(text)


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
def test_reserved_event_names_rejected_with_protocol_5_only(name):
    texts = [
        f'2["{name}"]',
        f'2/admin,["{name}",1]',
        f'23["{name}"]',
        f'51-["{name}",{ph_json(0)}]',
    ]
    for text in texts:
        with pytest.raises(DecodeError, match="reserved event name"):
            Decoder(5).feed(text)
    # socket.io 2.x accepted them silently (§4.7)
    assert Decoder(4).feed(texts[0]) == SocketIOPacket(EVENT, "/", [name])
    assert Decoder(4).feed(texts[1]) == SocketIOPacket(EVENT, "/admin", [name, 1])
    assert feed_all([texts[3], b"x"], 4).data == [name, b"x"]


def test_reserved_names_only_as_event_name():
    assert Decoder(5).feed('2["message","connect"]').data == ["message", "connect"]
    assert Decoder(5).feed('2["error"]').data == ["error"]
    assert Decoder(5).feed('2["Connect"]').data == ["Connect"]
    assert Decoder(5).feed('31["connect"]').data == ["connect"]  # ACK payloads are free


@both_protocols
@pytest.mark.parametrize(
    "placeholder",
    [
        ph_json(1),
        ph_json(2),
        '{"_placeholder":true,"num":-1}',
        '{"_placeholder":true,"num":"0"}',
        '{"_placeholder":true,"num":0.0}',
        '{"_placeholder":true,"num":true}',
        '{"_placeholder":true,"num":false}',
        '{"_placeholder":true,"num":null}',
        '{"_placeholder":true,"num":[0]}',
        '{"_placeholder":true}',
    ],
)
def test_bad_placeholder_num(placeholder, protocol):
    decoder = Decoder(protocol)
    assert decoder.feed(f'51-["a",{{"deep":[{placeholder}]}}]') is None
    with pytest.raises(DecodeError, match="illegal attachments"):
        decoder.feed(b"x")
    # the decoder is not left waiting for attachments
    assert decoder.feed('2["ok"]') == SocketIOPacket(EVENT, "/", ["ok"])


@both_protocols
def test_text_while_attachments_pending(protocol):
    decoder = Decoder(protocol)
    assert decoder.feed(f'52-["a",{ph_json(0)},{ph_json(1)}]') is None
    assert decoder.feed(b"one") is None
    with pytest.raises(DecodeError, match="binary attachments were expected"):
        decoder.feed('2["b"]')


@both_protocols
def test_binary_with_nothing_pending(protocol):
    with pytest.raises(DecodeError, match="unexpected binary message"):
        Decoder(protocol).feed(b"\x00")
    decoder = Decoder(protocol)
    assert decoder.feed('2["a"]') is not None
    with pytest.raises(DecodeError, match="unexpected binary message"):
        decoder.feed(bytearray(b"x"))
    decoder = Decoder(protocol)
    assert decoder.feed(f'51-["a",{ph_json(0)}]') is None
    assert decoder.feed(b"x") is not None
    with pytest.raises(DecodeError, match="unexpected binary message"):
        decoder.feed(b"one too many")


def test_deeply_nested_binary_payload_never_escapes_recursion_error():
    # orjson accepts ~1023 levels; walking them must not leak RecursionError
    for depth in (100, 1000):
        text = f'51-["a",{"[" * depth}{ph_json(0)}{"]" * depth}]'
        decoder = Decoder()
        assert decoder.feed(text) is None
        try:
            packet = decoder.feed(b"x")
        except DecodeError:
            assert depth == 1000
        else:
            inner = packet.data[1]
            for _ in range(depth):
                inner = inner[0]
            assert inner == b"x"


def test_overly_deep_json_is_a_decode_error():
    with pytest.raises(DecodeError, match="invalid JSON"):
        Decoder().feed('2["a",' + "[" * 2000 + "]" * 2000 + "]")


# -- property tests -----------------------------------------------------------------------------

STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
namespaces = st.from_regex(r"/[a-z0-9-]*", fullmatch=True)
ack_ids = st.none() | st.integers(min_value=0, max_value=10**16 - 1)
keys = st.text(max_size=8).filter(lambda key: key != "_placeholder")
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
buffers = (
    st.binary(max_size=12)
    | st.binary(max_size=6).map(bytearray)
    | st.binary(max_size=6).map(memoryview)
)
json_trees = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=15,
)
trees = st.recursive(
    scalars | buffers,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=15,
)
event_names = st.text(max_size=12).filter(lambda name: name not in RESERVED_EVENTS) | st.integers(
    min_value=-(2**53), max_value=2**53
)


def normalise(data: Any) -> Any:
    """What a peer receives: buffers as bytes, tuples as lists."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, list | tuple):
        return [normalise(item) for item in data]
    if isinstance(data, dict):
        return {key: normalise(value) for key, value in data.items()}
    return data


def buffers_in_order(data: Any) -> list[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        return [bytes(data)]
    if isinstance(data, list | tuple):
        return [b for item in data for b in buffers_in_order(item)]
    if isinstance(data, dict):
        return [b for value in data.values() for b in buffers_in_order(value)]
    return []


def assert_exact_bytes(data: Any) -> None:
    if isinstance(data, list):
        for item in data:
            assert_exact_bytes(item)
    elif isinstance(data, dict):
        for item in data.values():
            assert_exact_bytes(item)
    else:
        assert not isinstance(data, bytearray | memoryview | tuple)


def check_roundtrip(ptype: int, nsp: str, data: Any, ack_id: int | None, protocol: int) -> None:
    expected_buffers = buffers_in_order(data)
    count = len(expected_buffers)
    text, attachments = encode(ptype, nsp, data, ack_id)
    assert attachments == expected_buffers
    assert all(type(a) is bytes for a in attachments)
    base = EVENT if ptype in (EVENT, BINARY_EVENT) else ACK
    wire_type = (base + 3) if count else base
    assert text.startswith(f"{wire_type}{count}-" if count else str(wire_type))
    if count > MAX_ATTACHMENTS:
        with pytest.raises(DecodeError, match="illegal attachments"):
            Decoder(protocol).feed(text)
        return
    packet = feed_all([text, *attachments], protocol)
    assert packet == SocketIOPacket(wire_type, nsp, normalise(data), ack_id, None, count)
    assert_exact_bytes(packet.data)


@PROPS
@given(st.sampled_from(PROTOCOLS), namespaces, event_names, st.lists(trees, max_size=4), ack_ids)
def test_event_roundtrip(protocol, nsp, name, args, ack_id):
    check_roundtrip(EVENT, nsp, [name, *args], ack_id, protocol)


@PROPS
@given(
    st.sampled_from(PROTOCOLS),
    namespaces,
    st.lists(trees, max_size=5),
    st.integers(min_value=0, max_value=10**16 - 1),
    st.booleans(),
)
def test_ack_roundtrip(protocol, nsp, args, ack_id, as_tuple):
    check_roundtrip(ACK, nsp, tuple(args) if as_tuple else args, ack_id, protocol)


@PROPS
@given(st.sampled_from(PROTOCOLS), namespaces, st.lists(trees, max_size=4), ack_ids)
def test_encode_event_matches_encode(protocol, nsp, args, ack_id):
    assert encode_event(nsp, "ev", args, ack_id) == encode(EVENT, nsp, ["ev", *args], ack_id)


@PROPS
@given(
    st.sampled_from(PROTOCOLS),
    namespaces,
    st.one_of(
        st.tuples(st.just(CONNECT), st.none() | st.dictionaries(keys, json_trees, max_size=4)),
        st.tuples(st.just(DISCONNECT), st.none()),
        st.tuples(st.just(CONNECT_ERROR), st.text(max_size=20) | st.dictionaries(keys, json_trees)),
    ),
)
def test_control_packet_roundtrip(protocol, nsp, ptype_and_data):
    ptype, data = ptype_and_data
    text, attachments = encode(ptype, nsp, data)
    assert attachments == []
    assert text.startswith(str(ptype) if nsp == "/" else f"{ptype}{nsp},")
    assert Decoder(protocol).feed(text) == SocketIOPacket(ptype, nsp, data)


@PROPS
@given(trees)
def test_placeholders_numbered_depth_first(tree):
    text, attachments = encode(ACK, "/", [tree], 1)
    expected = buffers_in_order(tree)
    assert attachments == expected
    assert text.startswith(f"6{len(expected)}-1[" if expected else "31[")
    payload = json.loads(text[text.index("[") :])
    seen: list[int] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("_placeholder") is True and set(node) == {"_placeholder", "num"}:
                seen.append(node["num"])
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload)
    assert seen == list(range(len(expected)))


def strings_in(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, list):
        return [s for item in data for s in strings_in(item)]
    if isinstance(data, dict):
        return [s for key, value in data.items() for s in (key, *strings_in(value))]
    return []


@PROPS
@given(st.lists(json_trees, max_size=4))
def test_json_is_compact_and_keeps_characters(args):
    text, _ = encode(EVENT, "/", ["e", *args])
    assert json.loads(text[1:]) == ["e", *args]
    # no whitespace outside string literals
    assert not re.search(r"\s", STRING_LITERAL.sub("", text))
    # every string is spelled as JSON with ensure_ascii=False (non-ASCII kept as characters)
    for string in strings_in(args):
        assert json.dumps(string, ensure_ascii=False) in text


# arbitrary (mostly malformed) input: only packets, None or DecodeError may come out

fragments = st.sampled_from(
    [
        "",
        "[",
        "]",
        "{",
        "}",
        ",",
        "-",
        "/",
        "?",
        '"',
        "null",
        "true",
        "1",
        "0",
        "[]",
        "{}",
        '"connect"',
        '"a"',
        "1.5",
        "-1",
        ":",
        "NaN",
        "\ud800",
        "²",
        "٣",
        " ",
    ]
)
placeholder_json = st.builds(
    lambda flag, num: json.dumps({"_placeholder": flag, "num": num}),
    st.sampled_from([True, False, 1, "true"]),
    st.integers(min_value=-2, max_value=12)
    | st.booleans()
    | st.none()
    | st.floats()
    | st.text(max_size=2),
)
json_fragment = st.one_of(
    json_trees.map(json.dumps),
    st.lists(json_trees | placeholder_json.map(json.loads), max_size=4).map(json.dumps),
    st.lists(st.one_of(fragments, placeholder_json), max_size=6).map("".join),
    st.builds(
        lambda name, rest: "[" + ",".join([json.dumps(name), *rest]) + "]",
        st.text(max_size=8) | st.integers() | st.booleans() | st.none(),
        st.lists(placeholder_json, max_size=3),
    ),
)
structured_text = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from([*"0123456789x/", ""]),
    st.sampled_from(["", "1-", "0-", "2-", "3-", "10-", "11-", "a-", "-", "²-", "010-"]),
    st.sampled_from(["", "/", "/admin,", "/a?x=1,", "/b", "/?,", "/a,b,"]),
    st.text(alphabet="0123456789", max_size=20),
    json_fragment,
)
messages = st.one_of(
    structured_text,
    st.text(max_size=30),
    st.binary(max_size=8),
    st.binary(max_size=4).map(bytearray),
)


def check_packet_invariants(packet: SocketIOPacket, protocol: int) -> None:
    assert isinstance(packet, SocketIOPacket)
    assert 0 <= packet.type <= 6
    assert packet.nsp.startswith("/")
    assert packet.id is None or packet.id >= 0
    if packet.type in (EVENT, BINARY_EVENT):
        assert isinstance(packet.data, list) and packet.data
        name = packet.data[0]
        assert isinstance(name, str | int | float) and not isinstance(name, bool)
        if protocol >= 5:
            assert name not in RESERVED_EVENTS
    elif packet.type in (ACK, BINARY_ACK):
        assert packet.id is not None and isinstance(packet.data, list)
    elif packet.type == CONNECT:
        assert packet.data is None or isinstance(packet.data, dict)
    elif packet.type == DISCONNECT:
        assert packet.data is None
    else:
        assert isinstance(packet.data, str | dict)
    assert 0 <= packet.attachments <= MAX_ATTACHMENTS


@PROPS
@given(st.sampled_from(PROTOCOLS), st.lists(messages, min_size=1, max_size=8))
def test_decoder_only_raises_decode_error(protocol, sequence):
    decoder = Decoder(protocol)
    for message in sequence:
        try:
            packet = decoder.feed(message)
        except DecodeError:
            continue
        if packet is not None:
            check_packet_invariants(packet, protocol)


@PROPS
@given(st.sampled_from(PROTOCOLS), st.one_of(structured_text, st.text(max_size=40)))
def test_decode_text_only_raises_decode_error(protocol, text):
    try:
        packet, count = decode_text(text, protocol)
    except DecodeError:
        return
    assert count == packet.attachments
    if count == 0:
        check_packet_invariants(packet, protocol)
    else:
        assert packet.type in (BINARY_EVENT, BINARY_ACK)


@PROPS
@given(
    st.sampled_from(PROTOCOLS),
    st.sampled_from([BINARY_EVENT, BINARY_ACK]),
    st.integers(min_value=1, max_value=MAX_ATTACHMENTS),
    st.data(),
)
def test_binary_packet_completes_after_exactly_its_attachments(protocol, ptype, count, data):
    nums = data.draw(st.permutations(range(count)))
    body = ",".join(ph_json(n) for n in nums)
    text = f'{ptype}{count}-1["e",{body}]'
    blobs = data.draw(st.lists(st.binary(max_size=4), min_size=count, max_size=count))
    decoder = Decoder(protocol)
    assert decoder.feed(text) is None
    for blob in blobs[:-1]:
        assert decoder.feed(blob) is None
    packet = decoder.feed(blobs[-1])
    assert packet is not None and packet.attachments == count
    assert packet.data == ["e", *(blobs[n] for n in nums)]
