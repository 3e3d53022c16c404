"""Invalid frames raise DecodeError naming the field, with the id when readable."""

from __future__ import annotations

import msgspec
import pytest

from protocol import CODECS, JSON, MSGPACK, Codec, DecodeError, ErrorCode
from protocol.messages import NOT_YET_IMPLEMENTED

codecs = pytest.mark.parametrize("codec", list(CODECS.values()), ids=list(CODECS))


def frame(codec: Codec, obj: object) -> bytes:
    """Encode an arbitrary object in the codec's format."""
    return msgspec.msgpack.encode(obj) if codec.binary else msgspec.json.encode(obj)


def decode_error(codec: Codec, data: bytes | str) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec.decode_client(data)
    return info.value


def test_invalid_json() -> None:
    error = decode_error(JSON, b'{"type": "hello"')
    assert (error.message, error.id, error.code) == ("invalid JSON", None, ErrorCode.BAD_REQUEST)


def test_invalid_msgpack() -> None:
    error = decode_error(MSGPACK, b"\xc1\x00")
    assert (error.message, error.id) == ("invalid MessagePack", None)


def test_text_on_msgpack_codec() -> None:
    assert decode_error(MSGPACK, '{"type": "pong"}').id is None


@codecs
def test_unknown_type(codec: Codec) -> None:
    error = decode_error(codec, frame(codec, {"type": "foo", "id": "c1"}))
    assert (error.message, error.id) == ("unknown type 'foo'", "c1")


@codecs
def test_server_only_type_is_unknown_to_server(codec: Codec) -> None:
    error = decode_error(codec, frame(codec, {"type": "welcome"}))
    assert error.message == "unknown type 'welcome'"


@codecs
def test_unknown_type_keeps_the_id(codec: Codec) -> None:
    assert not NOT_YET_IMPLEMENTED  # every command of the contract has a type now
    error = decode_error(codec, frame(codec, {"type": "pets.adopt", "id": "a1"}))
    assert (error.message, error.id, error.code) == (
        "unknown type 'pets.adopt'",
        "a1",
        ErrorCode.BAD_REQUEST,
    )


@codecs
def test_missing_type(codec: Codec) -> None:
    error = decode_error(codec, frame(codec, {"id": "c1"}))
    assert (error.message, error.id) == ("type: required", "c1")


@codecs
def test_command_without_id(codec: Codec) -> None:
    error = decode_error(codec, frame(codec, {"type": "chat.typing", "conversation_id": "c"}))
    assert (error.message, error.id) == ("id: required", None)


@codecs
def test_mistyped_field_is_named(codec: Codec) -> None:
    msg = {
        "type": "chat.send",
        "id": "c17",
        "conversation_id": "c",
        "client_msg_id": "u",
        "body": 5,
    }
    error = decode_error(codec, frame(codec, msg))
    assert (error.message, error.id, error.code) == (
        "body: expected str, got int",
        "c17",
        ErrorCode.BAD_REQUEST,
    )


@codecs
def test_out_of_range_latitude_names_nested_path(codec: Codec) -> None:
    msg = {"type": "lost.nearby", "id": "c9", "location": {"lat": 91.0, "lng": 0}, "radius_m": 500}
    error = decode_error(codec, frame(codec, msg))
    assert (error.message, error.id) == ("location.lat: expected ≤ 90", "c9")


@codecs
def test_too_long_body_is_too_large(codec: Codec) -> None:
    msg = {
        "type": "chat.send",
        "id": "c17",
        "conversation_id": "c",
        "client_msg_id": "u",
        "body": "x" * 4001,
    }
    error = decode_error(codec, frame(codec, msg))
    assert (error.message, error.id, error.code) == (
        "body: at most 4000 characters",
        "c17",
        ErrorCode.TOO_LARGE,
    )


@codecs
def test_list_bounds_and_array_paths(codec: Codec) -> None:
    too_many = {"type": "presence.query", "id": "p", "user_ids": [f"u{i}" for i in range(101)]}
    error = decode_error(codec, frame(codec, too_many))
    assert (error.message, error.code) == ("user_ids: at most 100 items", ErrorCode.TOO_LARGE)
    bad_item = {"type": "presence.query", "id": "p", "user_ids": ["u1", ""]}
    assert (
        decode_error(codec, frame(codec, bad_item)).message == "user_ids[1]: at least 1 character"
    )


@codecs
def test_cross_field_rules(codec: Codec) -> None:
    neither = {"type": "notifications.read", "id": "n1"}
    assert decode_error(codec, frame(codec, neither)).message == "ids: give either ids or all: true"
    ages = {"type": "preferences.update", "id": "p1", "min_age_years": 9, "max_age_years": 2}
    error = decode_error(codec, frame(codec, ages))
    assert (error.message, error.id) == ("min_age_years: must not exceed max_age_years", "p1")


@codecs
def test_id_recovered_only_when_it_is_a_valid_id(codec: Codec) -> None:
    for bad_id in (17, "", "x" * 65, None, ["c1"]):
        error = decode_error(codec, frame(codec, {"type": "chat.typing", "id": bad_id}))
        assert error.id is None, bad_id


@codecs
def test_non_object_frame(codec: Codec) -> None:
    error = decode_error(codec, frame(codec, ["hello"]))
    assert (error.message, error.id) == ("expected object, got array", None)


def test_naive_timestamp_rejected_by_server_decode() -> None:
    welcome = (
        b'{"type":"welcome","session_id":"s","user_id":"u","last_seq":0,"heartbeat_s":25,'
        b'"resumed":false,"server_time":"2026-11-26T10:00:00"}'
    )
    with pytest.raises(DecodeError) as info:
        JSON.decode_server(welcome)
    assert info.value.message.startswith("server_time: expected datetime with a timezone")


def test_result_that_does_not_fit_raises_decode_error() -> None:
    from protocol.pets import PetResult

    with pytest.raises(DecodeError) as info:
        JSON.decode_result(msgspec.Raw(b'{"pet": 1}'), PetResult)
    assert info.value.message == "pet: expected object, got int"


@codecs
def test_deep_nesting_is_a_decode_error(codec: Codec) -> None:
    deep = (b'{"a":' * 50_000) if not codec.binary else (b"\x81\xa1a" * 50_000)
    error = decode_error(codec, deep)
    assert (error.message, error.id) == ("nested too deeply", None)
    deep_array = b"[" * 100_000 if not codec.binary else b"\x91" * 100_000
    assert decode_error(codec, deep_array).id is None


def test_invalid_utf8_in_json_string() -> None:
    error = decode_error(JSON, b'{"type":"chat.typing","id":"c1","conversation_id":"\xff"}')
    assert (error.message, error.id) == ("invalid JSON", None)


def test_lone_surrogate_in_text_frame() -> None:
    assert decode_error(JSON, '{"type":"pong","x":"\ud800"}').message == "invalid JSON"


def test_non_string_keys_in_msgpack() -> None:
    error = decode_error(MSGPACK, msgspec.msgpack.encode({1: 2}))
    assert error.message == "object keys must be strings"
    nested = {"type": "lost.nearby", "id": "c1", "location": {1: 2}, "radius_m": 5}
    error = decode_error(MSGPACK, msgspec.msgpack.encode(nested))
    assert (error.message, error.id) == ("location: object keys must be strings", "c1")


def test_msgpack_extension_values_are_rejected_by_type() -> None:
    frame_ = msgspec.msgpack.encode({"type": "ack", "seq": msgspec.msgpack.Ext(1, b"x")})
    assert decode_error(MSGPACK, frame_).message == "seq: expected int, got ext"


@codecs
@pytest.mark.parametrize(
    ("obj", "message", "field"),
    [
        ({"type": "chat.send", "id": "c", "conversation_id": "x", "client_msg_id": "m",
          "body": 5}, "body: expected str, got int", "body"),
        ({"type": "presence.query", "id": "c", "user_ids": ["a", ""]},
         "user_ids[1]: at least 1 character", "user_ids[1]"),
        ({"type": "lost.nearby", "id": "c", "location": {"lng": 0}, "radius_m": 5},
         "location.lat: required", "location.lat"),
        ({"type": "lost.nearby", "id": "c", "location": {"lat": 91, "lng": 0}, "radius_m": 5},
         "location.lat: expected ≤ 90", "location.lat"),
        ({"type": "notifications.read", "id": "c"}, "ids: give either ids or all: true", "ids"),
        ({"type": "nope", "id": "c"}, "unknown type 'nope'", "type"),
        ({"type": "pets.mine"}, "id: required", "id"),
        ([1, 2], "expected object, got array", None),
    ],
)
def test_the_field_at_fault_is_machine_readable(
    codec: Codec, obj: object, message: str, field: str | None
) -> None:
    error = decode_error(codec, frame(codec, obj))
    assert (error.message, error.field) == (message, field)


def test_a_malformed_frame_names_no_field() -> None:
    assert decode_error(JSON, b"{nope").field is None
