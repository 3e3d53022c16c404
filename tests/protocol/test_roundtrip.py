"""Every message and result survives encode → decode in both codecs unchanged."""

from __future__ import annotations

import msgspec
import pytest

from protocol import CODECS, COMMANDS, Codec, Ok, decode_stored_event, encode_event
from protocol.base import Command, Event, Message, Result
from protocol.messages import CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES
from tests.protocol.samples import CLIENT_SAMPLES, RESULT_SAMPLES, SERVER_SAMPLES

codecs = pytest.mark.parametrize("codec", list(CODECS.values()), ids=list(CODECS))


def _id(sample: object) -> str:
    return type(sample).__name__


def test_samples_cover_every_message_and_result_type() -> None:
    assert {type(s) for s in CLIENT_SAMPLES} == set(CLIENT_MESSAGE_TYPES)
    assert {type(s) for s in SERVER_SAMPLES} | {Ok} == set(SERVER_MESSAGE_TYPES)
    assert {type(s) for s in RESULT_SAMPLES} == {c.result_type for c in COMMANDS.values()}


@codecs
@pytest.mark.parametrize("sample", CLIENT_SAMPLES, ids=_id)
def test_client_message_roundtrip(codec: Codec, sample: Message) -> None:
    data = codec.encode(sample)
    assert codec.decode_client(data) == sample


@codecs
@pytest.mark.parametrize("sample", SERVER_SAMPLES, ids=_id)
def test_server_message_roundtrip(codec: Codec, sample: Message) -> None:
    data = codec.encode(sample)
    assert codec.decode_server(data) == sample


@codecs
@pytest.mark.parametrize("result", RESULT_SAMPLES, ids=_id)
def test_ok_result_roundtrip(codec: Codec, result: Result) -> None:
    ok = codec.decode_server(codec.encode(Ok(id="c1", result=result)))
    assert isinstance(ok, Ok)
    assert ok.id == "c1"
    assert isinstance(ok.result, msgspec.Raw)
    assert codec.decode_result(ok.result, type(result)) == result


def test_json_frames_are_utf8_text() -> None:
    from protocol import JSON, MSGPACK

    sample = CLIENT_SAMPLES[0]
    assert JSON.encode(sample).decode("utf-8").startswith('{"type":"hello"')
    assert JSON.decode_client(JSON.encode(sample).decode()) == sample
    assert not JSON.binary and MSGPACK.binary
    assert JSON.frame_kind_ok(is_binary=False) and not JSON.frame_kind_ok(is_binary=True)
    assert MSGPACK.frame_kind_ok(is_binary=True) and not MSGPACK.frame_kind_ok(is_binary=False)


def test_msgpack_sends_times_as_rfc3339_strings() -> None:
    from protocol import MSGPACK

    event = next(s for s in SERVER_SAMPLES if type(s).__name__ == "ChatMessageEvent")
    raw = msgspec.msgpack.decode(MSGPACK.encode(event))
    assert raw["message"]["created_at"] == "2026-11-26T10:00:00Z"


@pytest.mark.parametrize("event", [s for s in SERVER_SAMPLES if isinstance(s, Event)], ids=_id)
def test_encode_event_once_per_codec_and_restore_from_storage(event: Event) -> None:
    encoded = encode_event(event)
    assert set(encoded) == set(CODECS)
    for name, data in encoded.items():
        assert CODECS[name].decode_server(data) == event
    assert decode_stored_event(encoded["petspark.v1.json"]) == event


def test_every_command_declares_a_result_type() -> None:
    for tag, cls in COMMANDS.items():
        assert issubclass(cls, Command)
        assert cls.wire_type() == tag
        assert issubclass(cls.result_type, Result)
