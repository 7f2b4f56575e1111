"""Unit and property tests for the pure Engine.IO codec (``sockjet.codecs.engineio``).

Byte examples come from protocol-notes §3.2-3.9 (observed traffic / the engine.io spec).
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sockjet.codecs import engineio as eio
from sockjet.codecs.engineio import (
    CLOSE,
    MESSAGE,
    NOOP,
    OPEN,
    PING,
    PONG,
    UPGRADE,
    DecodeError,
)

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- packet types and single text packets (§3.2) ------------------------------------------------


def test_packet_type_ids():
    assert (OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP) == (0, 1, 2, 3, 4, 5, 6)
    assert [t.name.lower() for t in eio.EnginePacketType] == [
        "open", "close", "ping", "pong", "message", "upgrade", "noop"]
    assert [int(t) for t in eio.EnginePacketType] == list(range(7))
    assert eio.SEPARATOR == "\x1e"


def test_decode_error_is_value_error():
    assert issubclass(DecodeError, ValueError)


@pytest.mark.parametrize(
    ("ptype", "data", "text"),
    [
        (OPEN, '{"sid":"x"}', '0{"sid":"x"}'),
        (CLOSE, "", "1"),
        (PING, "probe", "2probe"),
        (PONG, "probe", "3probe"),
        (MESSAGE, "0", "40"),
        (MESSAGE, '2["msg","héllo"]', '42["msg","héllo"]'),
        (UPGRADE, "", "5"),
        (NOOP, "", "6"),
    ],
)
def test_encode_decode_text_packet(ptype, data, text):
    assert eio.encode_text(ptype, data) == text
    for protocol in (3, 4):
        assert eio.decode_text(text, protocol) == (ptype, data)


def test_encode_text_default_data_is_empty():
    assert eio.encode_text(PING) == "2"


@pytest.mark.parametrize("text", ["", "7", "9hello", "x", "-1", " 4", "\x00", "😀"])
def test_decode_text_bad_type(text):
    for protocol in (3, 4):
        with pytest.raises(DecodeError):
            eio.decode_text(text, protocol)


def test_encode_base64_v3_and_v4():
    assert eio.encode_base64(MESSAGE, b"\x01\x02\x03", 3) == "b4AQID"
    assert eio.encode_base64(MESSAGE, b"\x01\x02\x03", 4) == "bAQID"
    # v4 has no type char: binary always means message
    assert eio.encode_base64(PING, b"\x01\x02\x03", 4) == "bAQID"
    assert eio.encode_base64(PING, b"", 3) == "b2"
    assert eio.encode_base64(MESSAGE, b"", 4) == "b"
    # no newline ever added, even for long data
    long = bytes(range(256)) * 4
    assert "\n" not in eio.encode_base64(MESSAGE, long, 3)


def test_decode_base64_text_packets():
    assert eio.decode_text("b4AQID", 3) == (MESSAGE, b"\x01\x02\x03")
    assert eio.decode_text("b2AQID", 3) == (PING, b"\x01\x02\x03")
    assert eio.decode_text("bAQID", 4) == (MESSAGE, b"\x01\x02\x03")
    assert eio.decode_text("b4", 3) == (MESSAGE, b"")
    assert eio.decode_text("b", 4) == (MESSAGE, b"")


@pytest.mark.parametrize(
    ("text", "protocol"),
    [
        ("b", 3),  # truncated: no type char
        ("b7AQID", 3),  # bad type
        ("bxAQID", 3),  # bad type
        ("b4AQI", 3),  # bad padding
        ("b4AQ!D", 3),  # not base64
        ("b4AQID\n", 3),  # strict: no trailing junk
        ("b4é", 3),  # non-ASCII
        ("bAQI", 4),
        ("bAQ*D", 4),
        ("b😀", 4),
    ],
)
def test_decode_base64_invalid(text, protocol):
    with pytest.raises(DecodeError):
        eio.decode_text(text, protocol)


# -- utf16_len (§3.5) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("", 0),
        ("40", 2),
        ('42["msg","héllo"]', 17),
        ('42["e","😀"]', 12),
        ("4€", 2),
        ('432["é😀€"]', 11),
        ("\U0010ffff", 2),
    ],
)
def test_utf16_len(text, length):
    assert eio.utf16_len(text) == length


@pytest.mark.parametrize(
    ("data", "length"),
    [("", 0), ("ab", 2), (b"ab", 2), (b"\xff\xfe", 2), ("é", 2), ("4€", 4), ("😀", 4),
     ("\ud800", 3)],  # a lone surrogate (JSON may carry one) takes three bytes
)
def test_byte_length_counts_utf8_for_text(data, length):
    assert eio.byte_length(data) == length


def test_utf16_len_counts_lone_surrogate_as_one_unit():
    assert eio.utf16_len("a\ud800b") == 3


# -- v3 text payloads (§3.5, §3.6 base64 mode) --------------------------------------------------


@pytest.mark.parametrize(
    ("packets", "body"),
    [
        ([(MESSAGE, '2["msg","héllo"]')], '17:42["msg","héllo"]'),
        ([(MESSAGE, '2["e","😀"]')], '12:42["e","😀"]'),
        ([(MESSAGE, "€")], "2:4€"),
        ([(MESSAGE, '32["é😀€"]')], '11:432["é😀€"]'),
        ([(MESSAGE, "0"), (MESSAGE, "0/admin,")], "2:409:40/admin,"),
        ([(PING, "")], "1:2"),
        ([(PONG, "")], "1:3"),
        ([(NOOP, "")], "1:6"),
        ([], "0:"),
    ],
)
def test_v3_text_payload_examples(packets, body):
    for b64 in (False, True):
        assert eio.encode_payload(packets, 3, b64=b64) == body
    assert eio.decode_payload(body, 3) == packets


def test_v3_text_payload_utf8_byte_sizes():
    # the body travels as UTF-8; lengths are UTF-16 units, not bytes
    assert len('17:42["msg","héllo"]'.encode()) - len("17:") == 18
    assert len('12:42["e","😀"]'.encode()) - len("12:") == 14


def test_v3_base64_binary_in_text_payload():
    packets = [(MESSAGE, b"\x01\x02\x03")]
    assert eio.encode_payload(packets, 3, b64=True) == "6:b4AQID"
    assert eio.decode_payload("6:b4AQID", 3) == packets


def test_v3_base64_observed_round_trip():
    body = '42:451-["echo",{"_placeholder":true,"num":0}]6:b4AQID'
    packets = [(MESSAGE, '51-["echo",{"_placeholder":true,"num":0}]'), (MESSAGE, b"\x01\x02\x03")]
    assert eio.decode_payload(body, 3) == packets
    assert eio.encode_payload(packets, 3, b64=True) == body


def test_v3_base64_other_packet_types():
    assert eio.encode_payload([(PING, b"\xff")], 3, b64=True) == "6:b2/w=="
    assert eio.decode_payload("6:b2/w==", 3) == [(PING, b"\xff")]


def test_v3_text_payload_without_binary_stays_text_when_binary_supported():
    body = eio.encode_payload([(MESSAGE, "hi"), (PING, "")], 3, b64=False)
    assert body == "3:4hi1:2"
    assert isinstance(body, str)


def test_v3_zero_segment_is_skipped():
    assert eio.decode_payload("0:", 3) == []
    assert eio.decode_payload("0:2:40", 3) == [(MESSAGE, "0")]
    assert eio.decode_payload("2:400:", 3) == [(MESSAGE, "0")]
    assert eio.decode_payload("2:400:1:6", 3) == [(MESSAGE, "0"), (NOOP, "")]
    assert eio.decode_payload("0:2:4€", 3) == [(MESSAGE, "€")]


def test_v3_length_with_leading_zeros():
    assert eio.decode_payload("02:40", 3) == [(MESSAGE, "0")]


def test_v3_payload_with_colons_and_digits_in_data():
    packets = [(MESSAGE, "12:34"), (MESSAGE, "5:"), (MESSAGE, ":")]
    body = eio.encode_payload(packets, 3)
    assert body == "6:412:343:45:2:4:"
    assert eio.decode_payload(body, 3) == packets


@pytest.mark.parametrize(
    "body",
    [
        "",  # empty body
        "x:40",  # non-numeric length
        "2x:40",
        "-2:40",
        " 2:40",
        "\u0662:40",  # non-ASCII digit
        ":40",  # missing length
        "40",  # no colon at all
        "2:40 2",  # trailing junk without colon
        "2:402",  # trailing length without colon
        "3:40",  # length exceeds body
        '18:42["msg","héllo"]',  # length exceeds body (non-ASCII path)
        "3:4€",  # length exceeds body counted in UTF-16 units
        "2:4😀",  # length splits a surrogate pair
        "3:4😀😀",  # length splits the second surrogate pair
        "1:7",  # bad packet type
        "1:x",
        "3:b7A",  # bad base64 type
        "5:b4AQI",  # bad base64
        "99999999999999:4",  # absurdly long length
    ],
)
def test_v3_text_payload_decode_errors(body):
    with pytest.raises(DecodeError):
        eio.decode_payload(body, 3)


def test_v3_empty_base64_message_is_valid():
    assert eio.decode_payload("2:b4", 3) == [(MESSAGE, b"")]


def test_v3_lone_surrogate_in_body_is_a_decode_error():
    with pytest.raises(DecodeError):
        eio.decode_payload("2:4\ud800", 3)


@pytest.mark.parametrize(
    "body",
    [
        "x:40",
        "2x:40",
        "A:40",  # a letter, above the digits in ASCII
        ";:4helloworld",  # ";" - "0" == 11 would fit the body exactly
        "/2:40",  # just below "0"
        "\u0131:4",  # U+0131: low byte 0x31 ("1"), high byte 0x01 (non-ASCII path)
        "1\u0130:4€",
    ],
)
def test_v3_text_payload_length_must_be_ascii_digits(body):
    with pytest.raises(DecodeError, match="non-numeric payload length"):
        eio.decode_payload(body, 3)


def test_v3_text_payload_length_digit_limit():
    # up to 11 length digits (leading zeros included) are read, a 12th is refused
    assert eio.decode_payload("0" * 10 + "2:40", 3) == [(MESSAGE, "0")]
    assert eio.decode_payload("0" * 10 + "2:4€", 3) == [(MESSAGE, "€")]
    with pytest.raises(DecodeError, match="non-numeric payload length"):
        eio.decode_payload("0" * 11 + "2:40", 3)
    with pytest.raises(DecodeError, match="non-numeric payload length"):
        eio.decode_payload("0" * 11 + "2:4€", 3)


# -- v3 XHR2 binary payloads (§3.6) -------------------------------------------------------------


def test_v3_binary_payload_spec_example():
    packets = [(MESSAGE, "€"), (MESSAGE, b"\x01\x02\x03\x04")]
    expected = bytes.fromhex("00 04 ff 34 e2 82 ac 01 05 ff 04 01 02 03 04")
    assert eio.encode_binary_payload(packets) == expected
    assert eio.encode_payload(packets, 3) == expected
    assert eio.encode_payload(packets, 3, b64=False) == expected
    assert eio.decode_payload(expected, 3) == packets
    assert eio.decode_binary_payload(expected) == packets


def test_v3_binary_payload_observed_47_byte_string_plus_attachment():
    text = '451-["echo","é",{"_placeholder":true,"num":0}]'
    assert len(text.encode()) == 47
    body = bytes.fromhex("00 04 07 ff") + text.encode() + bytes.fromhex("01 04 ff 04 01 02 03")
    assert body[4:10] == bytes.fromhex("34 35 31 2d 5b 22")
    assert body[-9:] == bytes.fromhex("7d 5d 01 04 ff 04 01 02 03")
    packets = [(MESSAGE, text[1:]), (MESSAGE, b"\x01\x02\x03")]
    assert eio.decode_payload(body, 3) == packets
    assert eio.encode_payload(packets, 3) == body


def test_v3_binary_payload_accepts_bytearray_and_memoryview():
    body = bytes.fromhex("00 04 ff 34 e2 82 ac 01 05 ff 04 01 02 03 04")
    expected = [(MESSAGE, "€"), (MESSAGE, b"\x01\x02\x03\x04")]
    assert eio.decode_payload(bytearray(body), 3) == expected
    assert eio.decode_payload(memoryview(body), 3) == expected


def test_v3_binary_payload_other_types_and_empty_data():
    packets = [(PING, b""), (NOOP, ""), (CLOSE, b"\xff\x00")]
    body = eio.encode_payload(packets, 3)
    assert body == bytes.fromhex("01 01 ff 02  00 01 ff 36  01 03 ff 01 ff 00")
    assert eio.decode_payload(body, 3) == packets


def test_v3_binary_payload_multi_digit_length():
    data = bytes(range(256)) * 5  # 1280 bytes + 1 type byte = 1281
    body = eio.encode_binary_payload([(MESSAGE, data)])
    assert body[:6] == bytes([1, 1, 2, 8, 1, 0xFF])
    assert body[6] == MESSAGE
    assert eio.decode_binary_payload(body) == [(MESSAGE, data)]


def test_encode_payload_chooses_binary_only_with_binary_and_no_b64():
    with_binary = [(MESSAGE, "x"), (MESSAGE, b"\x01")]
    text_only = [(MESSAGE, "x"), (PING, "")]
    assert isinstance(eio.encode_payload(with_binary, 3), bytes)
    assert isinstance(eio.encode_payload(with_binary, 3, b64=True), str)
    assert eio.encode_payload(with_binary, 3, b64=True) == "2:4x6:b4AQ=="
    assert isinstance(eio.encode_payload(text_only, 3), str)
    assert isinstance(eio.encode_payload(text_only, 3, b64=True), str)
    assert eio.encode_payload([], 3) == "0:"
    # v4 never produces a binary body
    assert isinstance(eio.encode_payload(with_binary, 4), str)


def test_payload_has_binary():
    assert eio.payload_has_binary([(MESSAGE, b"")])
    assert eio.payload_has_binary([(MESSAGE, "a"), (MESSAGE, bytearray(b"a"))])
    assert not eio.payload_has_binary([(MESSAGE, "a"), (PING, "")])
    assert not eio.payload_has_binary([])


@pytest.mark.parametrize(
    "hexbody",
    [
        "",  # empty
        "02 01 ff 34",  # bad record kind
        "ff 01 ff 34",
        "00 01",  # truncated before ff
        "00",  # truncated after kind
        "00 ff 34",  # no length digits
        "00 00 ff",  # zero length
        "00 0a ff 34",  # length digit > 9
        "00 02 ff 34",  # length exceeds body
        "01 05 ff 04 01 02 03",  # binary length exceeds body
        "00 01 ff 37",  # string record with bad type char
        "00 01 ff 78",
        "00 02 ff c3 28",  # invalid UTF-8
        "00 01 ff 80",  # invalid UTF-8 (lone continuation byte)
        "01 01 ff 07",  # binary record with bad type byte
        "01 02 ff ff 01",
        "00 01 ff 34 05",  # trailing junk: bad kind
        "00 01 ff 34 00",  # trailing junk: truncated record
        "00 01 01 01 01 01 01 01 01 01 01 01 01 ff 34",  # too many length digits
    ],
)
def test_v3_binary_payload_decode_errors(hexbody):
    body = bytes.fromhex(hexbody)
    with pytest.raises(DecodeError):
        eio.decode_payload(body, 3)
    with pytest.raises(DecodeError):
        eio.decode_binary_payload(body)


@pytest.mark.parametrize("kind", [2, 3, 0xFE, 0xFF])
def test_v3_binary_payload_record_kind_is_0_or_1(kind):
    with pytest.raises(DecodeError, match="bad record kind in binary payload"):
        eio.decode_binary_payload(bytes([kind, 1, 0xFF, MESSAGE]))


def test_v3_binary_payload_length_digit_limit():
    # up to 11 length digits (leading zeros included) are read, a 12th is refused
    assert eio.decode_binary_payload(b"\x01" + bytes(10) + b"\x02\xff\x04x") == [(MESSAGE, b"x")]
    assert eio.decode_binary_payload(b"\x00" + bytes(10) + b"\x02\xff4x") == [(MESSAGE, "x")]
    for kind, record in ((b"\x01", b"\x04x"), (b"\x00", b"4x")):
        with pytest.raises(DecodeError, match="bad length in binary payload"):
            eio.decode_binary_payload(kind + bytes(11) + b"\x02\xff" + record)


@pytest.mark.parametrize("digit", [10, 11, 0x30, 0xFE])
def test_v3_binary_payload_length_digits_are_0_to_9(digit):
    # each record is exactly as long as the bad byte read as a digit would say
    with pytest.raises(DecodeError, match="bad length in binary payload"):
        eio.decode_binary_payload(bytes([0, digit, 0xFF]) + b"4" * digit)
    with pytest.raises(DecodeError, match="bad length in binary payload"):
        eio.decode_binary_payload(bytes([1, digit, 0xFF]) + b"\x04" * digit)


@pytest.mark.parametrize("hexbody", ["00 00 ff", "01 00 ff", "01 00 00 ff", "00 01 ff 34 01 00 ff"])
def test_v3_binary_payload_zero_length_record(hexbody):
    with pytest.raises(DecodeError, match="bad length in binary payload"):
        eio.decode_binary_payload(bytes.fromhex(hexbody))


def test_v3_binary_payload_string_record_with_v3_base64_packet():
    # a string record is a v3 text packet, so ``b<type><base64>`` (engine.io-parser decodePacket)
    body = b"\x00\x06\xffb4AQI=" + b"\x00\x06\xffb2/w==" + b"\x00\x02\xffb6"
    assert eio.decode_binary_payload(body) == [(MESSAGE, b"\x01\x02"), (PING, b"\xff"), (NOOP, b"")]


def test_binary_payload_rejected_in_v4():
    body = bytes.fromhex("00 04 ff 34 e2 82 ac")
    with pytest.raises(DecodeError):
        eio.decode_payload(body, 4)
    with pytest.raises(DecodeError):
        eio.decode_payload(bytearray(body), 4)


# -- v4 payloads (§3.5, §3.6) -------------------------------------------------------------------


def test_v4_payload_examples():
    packets = [(MESSAGE, "hello"), (PING, ""), (MESSAGE, "world")]
    assert eio.encode_payload(packets, 4) == "4hello\x1e2\x1e4world"
    assert eio.decode_payload("4hello\x1e2\x1e4world", 4) == packets

    acks = [(MESSAGE, '31["hi"]'), (MESSAGE, '32["é😀€"]')]
    assert eio.encode_payload(acks, 4) == '431["hi"]\x1e432["é😀€"]'
    assert eio.decode_payload('431["hi"]\x1e432["é😀€"]', 4) == acks


def test_v4_payload_binary_as_base64():
    text = '51-["echo",{"_placeholder":true,"num":0}]'
    packets = [(MESSAGE, text), (MESSAGE, b"\x01\x02\x03")]
    body = eio.encode_payload(packets, 4)
    assert body == "4" + text + "\x1ebAQID"
    assert eio.decode_payload(body, 4) == packets
    # b64 flag is irrelevant in v4
    assert eio.encode_payload(packets, 4, b64=True) == body


def test_v4_single_packet_and_no_lengths():
    assert eio.encode_payload([(MESSAGE, "€")], 4) == "4€"
    assert eio.decode_payload("4€", 4) == [(MESSAGE, "€")]
    assert eio.decode_payload("40", 4) == [(MESSAGE, "0")]


@pytest.mark.parametrize(
    "body",
    [
        "",  # empty body
        "4a\x1e",  # empty trailing packet
        "\x1e4a",  # empty leading packet
        "4a\x1e\x1e4b",
        "7",  # bad type
        "4a\x1ex",
        "bAQI",  # invalid base64 (padding)
        "bAQ#D",  # invalid base64 (alphabet)
        "4a\x1eb!!!!",
        "bé",  # non-ASCII base64
    ],
)
def test_v4_payload_decode_errors(body):
    with pytest.raises(DecodeError):
        eio.decode_payload(body, 4)


# -- WebSocket frames (§3.7, §3.8) --------------------------------------------------------------


def test_ws_text_frames_same_in_both_protocols():
    for protocol in (3, 4):
        for b64 in (False, True):
            assert eio.encode_frame(MESSAGE, "0", protocol, b64) == "40"
            assert eio.encode_frame(PING, "probe", protocol, b64) == "2probe"
        assert eio.decode_frame("40", protocol) == (MESSAGE, "0")
        assert eio.decode_frame("3probe", protocol) == (PONG, "probe")


def test_ws_binary_frames():
    data = b"\x01\x02\x03"
    assert eio.encode_frame(MESSAGE, data, 3) == bytes.fromhex("04 01 02 03")
    assert eio.encode_frame(MESSAGE, data, 4) == data
    assert eio.encode_frame(MESSAGE, data, 3, b64=True) == "b4AQID"
    assert eio.encode_frame(MESSAGE, data, 4, b64=True) == "bAQID"
    assert eio.encode_frame(PING, b"", 3) == b"\x02"
    frame = eio.encode_frame(MESSAGE, bytearray(data), 4)
    assert type(frame) is bytes
    assert frame == data

    assert eio.decode_frame(bytes.fromhex("04 01 02 03"), 3) == (MESSAGE, data)
    assert eio.decode_frame(data, 4) == (MESSAGE, data)
    assert eio.decode_frame("b4AQID", 3) == (MESSAGE, data)
    assert eio.decode_frame("bAQID", 4) == (MESSAGE, data)
    assert eio.decode_frame(b"\x02", 3) == (PING, b"")
    assert eio.decode_frame(b"", 4) == (MESSAGE, b"")
    decoded = eio.decode_frame(bytearray(b"\x04\x01"), 3)
    assert decoded == (MESSAGE, b"\x01")
    assert type(decoded[1]) is bytes


@pytest.mark.parametrize(
    ("frame", "protocol"),
    [
        (b"", 3),  # empty binary frame
        (b"\x07\x01", 3),  # bad binary type
        (b"\xff", 3),
        (b"4\x01", 3),  # ASCII '4' is not the raw type byte 4
        ("", 3),
        ("", 4),
        ("7", 3),
        ("x", 4),
        ("b4AQI", 3),
        ("b9AQID", 3),
        ("bAQI", 4),
    ],
)
def test_ws_frame_decode_errors(frame, protocol):
    with pytest.raises(DecodeError):
        eio.decode_frame(frame, protocol)


# -- JSONP (§3.9) -------------------------------------------------------------------------------


def test_jsonp_wrap_examples():
    assert eio.jsonp_wrap("0", "2:40") == '___eio[0]("2:40");'
    assert eio.jsonp_wrap("12", "1:6") == '___eio[12]("1:6");'
    handshake = '96:0{"sid":"abc","upgrades":[]}2:40'
    assert eio.jsonp_wrap("0", handshake) == (
        '___eio[0]("96:0{\\"sid\\":\\"abc\\",\\"upgrades\\":[]}2:40");'
    )


def test_jsonp_wrap_escaping():
    payload = 'a"b\\c\nd\te\x00\x1e\u2028\u2029é😀</script>'
    wrapped = eio.jsonp_wrap("3", payload)
    assert wrapped.startswith('___eio[3]("')
    assert wrapped.endswith('");')
    assert "\u2028" not in wrapped
    assert "\u2029" not in wrapped
    assert "\\u2028" in wrapped
    assert "\\u2029" in wrapped
    assert '\\"' in wrapped
    assert "\\\\c" in wrapped
    assert "\\n" in wrapped
    assert "\n" not in wrapped
    assert "\x00" not in wrapped
    assert "\x1e" not in wrapped
    assert eio.jsonp_unwrap(wrapped) == ("3", payload)


@pytest.mark.parametrize(
    "index", ["", "a", "-1", "1.5", " 1", "1 ", "0x1", "12345678901", "1\n", "\u0663", "\uff11"]
)
def test_jsonp_invalid_index(index):
    assert not eio.valid_jsonp_index(index)
    with pytest.raises(ValueError):
        eio.jsonp_wrap(index, "1:6")


@pytest.mark.parametrize("index", ["0", "7", "0012", "1234567890"])
def test_jsonp_valid_index(index):
    assert eio.valid_jsonp_index(index)
    assert eio.jsonp_unwrap(eio.jsonp_wrap(index, "x")) == (index, "x")


@pytest.mark.parametrize(
    "text",
    [
        "",
        '___eio[0]("x")',  # no ';'
        '___eio[]("x");',
        '___eio[a]("x");',
        '__eio[0]("x");',
        '___eio[0]("x);',  # unterminated string
        "___eio[0](1);",  # not a string
        "___eio[0](null);",
        '___eio[0](["x"]);',
        '___eio[0]("x"); ',
        '___eio[0]("\\u2028");\n',
    ],
)
def test_jsonp_unwrap_errors(text):
    with pytest.raises(DecodeError):
        eio.jsonp_unwrap(text)


def test_jsonp_unwrap_handles_escaped_separators():
    assert eio.jsonp_unwrap('___eio[1]("\\u2028\\u2029\\n\\"");') == ("1", '\u2028\u2029\n"')


def test_jsonp_unwrap_allows_whitespace_and_newlines_around_the_string():
    assert eio.jsonp_unwrap('___eio[3](\n"4hi"\n);') == ("3", "4hi")
    assert eio.jsonp_unwrap('___eio[3]( \r\n\t"4hi" );') == ("3", "4hi")
    # a raw newline inside the string literal is a bad string, not a bad response
    with pytest.raises(DecodeError, match="bad JSONP string"):
        eio.jsonp_unwrap('___eio[0]("a\nb");')


def test_jsonp_escape_and_unescape():
    # a real newline becomes backslash-n; a literal backslash-n becomes backslash-backslash-n
    assert eio.jsonp_escape("a\nb") == "a\\nb"
    assert eio.jsonp_escape("a\\nb") == "a\\\\nb"
    assert eio.jsonp_escape("x\n\\ny") == "x\\n\\\\ny"
    assert eio.jsonp_unescape("a\\nb") == "a\nb"
    assert eio.jsonp_unescape("a\\\\nb") == "a\\nb"
    assert eio.jsonp_unescape("x\\n\\\\ny") == "x\n\\ny"
    assert eio.jsonp_unescape("no escapes \\t here") == "no escapes \\t here"


def test_jsonp_escape_lossy_backslash_newline():
    # backslash followed by a real newline comes back as a literal backslash-n (protocol quirk)
    assert eio.jsonp_unescape(eio.jsonp_escape("a\\\nb")) == "a\\nb"


def test_decode_jsonp_form_with_newlines_and_literal_backslash_n():
    # one packet has a literal backslash-n (JSON escape), the other a real newline
    packets = [(MESSAGE, '2["m","line1\\nline2"]'), (MESSAGE, '2["m","a\nb"]')]
    payload = eio.encode_payload(packets, 3)
    assert payload == '22:42["m","line1\\nline2"]13:42["m","a\nb"]'
    escaped = eio.jsonp_escape(payload)
    assert "\n" not in escaped
    body = urlencode({"d": escaped}).encode("ascii")
    assert eio.decode_jsonp_form(body) == payload
    assert eio.decode_payload(eio.decode_jsonp_form(body), 3) == packets


def test_decode_jsonp_form_plain():
    assert eio.decode_jsonp_form(b"d=1%3A6") == "1:6"
    assert eio.decode_jsonp_form(b"d=2%3A4%E2%82%AC") == "2:4€"
    assert eio.decode_jsonp_form(b"d=4%3A4a+b") == "4:4a b"
    assert eio.decode_jsonp_form(b"x=1&d=1%3A2&d=ignored") == "1:2"
    assert eio.decode_jsonp_form(b"d=") == ""
    assert eio.decode_jsonp_form(("d=" + quote("3:4\\n")).encode()) == "3:4\n"


def test_decode_jsonp_form_tolerates_empty_and_valueless_fields():
    assert eio.decode_jsonp_form(b"d=1%3A6&") == "1:6"
    assert eio.decode_jsonp_form(b"&&d=1%3A6") == "1:6"
    assert eio.decode_jsonp_form(b"flag&d=1%3A6") == "1:6"
    assert eio.decode_jsonp_form(b"d") == ""


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"x=1",
        b"dd=1",
        "d=é".encode(),  # non-ASCII form body
        b"d=%C3%28",  # percent-encoded invalid UTF-8
        b"d=%FF",
    ],
)
def test_decode_jsonp_form_errors(body):
    with pytest.raises(DecodeError):
        eio.decode_jsonp_form(body)


# -- hypothesis strategies ----------------------------------------------------------------------

ASTRAL = ["😀", "€", "é", "\U0010ffff", "\U00010000", "\u2028", "\x1e", ":", "\n", "\\", "b"]

no_surrogates = st.characters(exclude_categories=("Cs",))
text_data = st.text(alphabet=st.one_of(no_surrogates, st.sampled_from(ASTRAL)), max_size=30)
binary_data = st.binary(max_size=40)
ptypes = st.integers(min_value=0, max_value=6)

any_packet = st.tuples(ptypes, st.one_of(text_data, binary_data))
text_packet = st.tuples(ptypes, text_data)

v4_text_packet = st.tuples(ptypes, text_data.filter(lambda s: eio.SEPARATOR not in s))
v4_binary_packet = st.tuples(st.just(MESSAGE), binary_data)
v4_packet = st.one_of(v4_text_packet, v4_binary_packet)


# -- property tests -----------------------------------------------------------------------------


@PROPS
@given(st.lists(any_packet, max_size=8), st.booleans())
def test_prop_v3_payload_round_trip(packets, b64):
    body = eio.encode_payload(packets, 3, b64=b64)
    if isinstance(body, bytes):
        assert not b64
        assert eio.payload_has_binary(packets)
    else:
        assert b64 or not eio.payload_has_binary(packets)
    assert eio.decode_payload(body, 3) == packets


@PROPS
@given(st.lists(any_packet, max_size=8))
def test_prop_v3_text_payload_over_utf8_round_trip(packets):
    # what actually travels: the text body encoded as UTF-8
    body = eio.encode_payload(packets, 3, b64=True)
    assert isinstance(body, str)
    assert eio.decode_payload(body.encode("utf-8").decode("utf-8"), 3) == packets


@PROPS
@given(st.lists(any_packet, min_size=1, max_size=8))
def test_prop_v3_binary_payload_round_trip(packets):
    body = eio.encode_binary_payload(packets)
    assert isinstance(body, bytes)
    assert eio.decode_binary_payload(body) == packets


@PROPS
@given(st.lists(text_packet, max_size=8))
def test_prop_v3_text_payload_lengths_are_utf16_units(packets):
    body = eio.encode_payload(packets, 3)
    assert isinstance(body, str)
    expected = "".join(f"{len((str(t) + d).encode('utf-16-le')) // 2}:{t}{d}" for t, d in packets)
    assert body == (expected or "0:")


@PROPS
@given(st.lists(v4_packet, min_size=1, max_size=8), st.booleans())
def test_prop_v4_payload_round_trip(packets, b64):
    body = eio.encode_payload(packets, 4, b64=b64)
    assert isinstance(body, str)
    assert body.count(eio.SEPARATOR) == len(packets) - 1
    assert eio.decode_payload(body, 4) == packets


@PROPS
@given(ptypes, st.one_of(text_data, binary_data), st.sampled_from([3, 4]), st.booleans())
def test_prop_frame_round_trip(ptype, data, protocol, b64):
    if protocol >= 4 and isinstance(data, bytes):
        ptype = MESSAGE  # v4 binary is implicitly a message
    frame = eio.encode_frame(ptype, data, protocol, b64)
    if isinstance(data, str) or b64:
        assert isinstance(frame, str)
    else:
        assert isinstance(frame, bytes)
    assert eio.decode_frame(frame, protocol) == (ptype, data)


@PROPS
@given(binary_data)
def test_prop_v4_binary_frame_is_raw(data):
    assert eio.encode_frame(MESSAGE, data, 4) == data
    assert eio.encode_frame(MESSAGE, data, 3) == b"\x04" + data
    assert eio.encode_base64(MESSAGE, data, 4) == "b" + base64.b64encode(data).decode()
    assert eio.encode_base64(MESSAGE, data, 3) == "b4" + base64.b64encode(data).decode()


@PROPS
@given(st.text(alphabet=st.one_of(no_surrogates, st.sampled_from(["\\", "\n", "n"]))))
def test_prop_jsonp_escape_round_trip(payload):
    assume("\\\n" not in payload)  # lossy in the protocol itself
    escaped = eio.jsonp_escape(payload)
    assert "\n" not in escaped
    assert eio.jsonp_unescape(escaped) == payload


@PROPS
@given(st.text(alphabet=st.one_of(no_surrogates, st.sampled_from(["\\", "\n", "n"]))))
def test_prop_jsonp_form_round_trip(payload):
    assume("\\\n" not in payload)
    body = urlencode({"d": eio.jsonp_escape(payload)}).encode("ascii")
    assert eio.decode_jsonp_form(body) == payload


@PROPS
@given(st.text(alphabet=st.one_of(no_surrogates, st.sampled_from(ASTRAL))), st.integers(0, 10**9))
def test_prop_jsonp_wrap_round_trip(payload, index):
    wrapped = eio.jsonp_wrap(str(index), payload)
    assert "\u2028" not in wrapped
    assert "\u2029" not in wrapped
    assert "\n" not in wrapped
    assert eio.jsonp_unwrap(wrapped) == (str(index), payload)


@PROPS
@given(st.text(alphabet=st.one_of(no_surrogates, st.sampled_from(ASTRAL))))
def test_prop_utf16_len(text):
    assert eio.utf16_len(text) == len(text.encode("utf-16-le")) // 2


# bodies built from the payload grammar's own characters reach deeper decoder paths
grammar_text = st.text(
    alphabet=st.sampled_from([*"0123456789:b4AQID=/+", "\x1e", "€", "😀", "\ud800", "é"]),
    max_size=40,
)
grammar_bytes = st.lists(
    st.sampled_from([0, 1, 2, 3, 4, 5, 9, 0x34, 0xFF, 0xC3, 0x80, 0xE2]), max_size=40
).map(bytes)
arbitrary_body = st.one_of(st.text(), st.binary(), grammar_text, grammar_bytes)


@PROPS
@given(arbitrary_body, st.sampled_from([3, 4]))
def test_prop_decode_payload_only_raises_decode_error(body, protocol):
    try:
        packets = eio.decode_payload(body, protocol)
    except DecodeError:
        return
    assert isinstance(packets, list)
    for ptype, data in packets:
        assert 0 <= ptype <= 6
        assert isinstance(data, str | bytes)


@PROPS
@given(st.lists(any_packet, min_size=1, max_size=4), st.data())
def test_prop_decode_mutated_payload_only_raises_decode_error(packets, data):
    protocol = data.draw(st.sampled_from([3, 4]))
    if protocol == 4:
        packets = [
            (MESSAGE, d) if isinstance(d, bytes) else (t, d.replace(eio.SEPARATOR, ""))
            for t, d in packets
        ]
    body = eio.encode_payload(packets, protocol, b64=data.draw(st.booleans()))
    cut = data.draw(st.integers(0, len(body)))
    junk = data.draw(st.binary(max_size=3) if isinstance(body, bytes) else st.text(max_size=3))
    mutated = body[:cut] + junk + body[cut + data.draw(st.integers(0, 3)) :]
    try:
        result = eio.decode_payload(mutated, protocol)
    except DecodeError:
        return
    assert isinstance(result, list)


@PROPS
@given(st.one_of(st.text(), st.binary(), grammar_text, grammar_bytes), st.sampled_from([3, 4]))
def test_prop_decode_frame_only_raises_decode_error(frame, protocol):
    try:
        ptype, data = eio.decode_frame(frame, protocol)
    except DecodeError:
        return
    assert 0 <= ptype <= 6
    assert isinstance(data, str | bytes)


@PROPS
@given(st.one_of(st.binary(), st.text().map(lambda s: ("d=" + s).encode("utf-8", "surrogatepass"))))
def test_prop_decode_jsonp_form_only_raises_decode_error(body):
    try:
        result = eio.decode_jsonp_form(body)
    except DecodeError:
        return
    assert isinstance(result, str)


@PROPS
@given(st.one_of(st.text(), st.text().map(lambda s: f"___eio[1]({s});")))
def test_prop_jsonp_unwrap_only_raises_decode_error(text):
    try:
        index, payload = eio.jsonp_unwrap(text)
    except DecodeError:
        return
    assert index.isdigit()
    assert isinstance(payload, str)
