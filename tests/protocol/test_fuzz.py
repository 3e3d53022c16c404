"""Whatever a client sends, decode_client returns a ClientMessage or raises DecodeError."""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import CODECS, COMMANDS, Codec, DecodeError
from protocol.messages import CLIENT_MESSAGE_TYPES, ClientMessage

codecs = pytest.mark.parametrize("codec", list(CODECS.values()), ids=list(CODECS))
CLIENT_CLASSES = tuple(get_args(ClientMessage))
TAGS = [cls.wire_type() for cls in CLIENT_MESSAGE_TYPES] + ["foo", "ok", "welcome", ""]
FIELDS = sorted(
    {name for cls in CLIENT_MESSAGE_TYPES for name in cls.__struct_fields__}
    | {"type", "lat", "lng"}
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=80)
    | st.sampled_from(["c1", "2026-11-26T10:00:00Z", "dog", "like", "fcm"])
)
json_ish: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=25,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(TAGS)},
    optional={"id": json_ish},
).flatmap(
    lambda base: st.dictionaries(st.sampled_from(FIELDS), json_ish, max_size=6).map(
        lambda extra: {**extra, **base}
    )
)


def check(codec: Codec, data: bytes | str) -> None:
    try:
        msg = codec.decode_client(data)
    except DecodeError as error:
        assert isinstance(error.message, str) and error.message
        assert error.id is None or (isinstance(error.id, str) and 1 <= len(error.id) <= 64)
    else:
        assert isinstance(msg, CLIENT_CLASSES)


@codecs
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200))
@example(data=b'{"a":' * 20_000)
@example(data=b"\x81\xa1a" * 20_000)
@example(data=b'{"type":"hello","token":"\xff"}')
def test_random_bytes(codec: Codec, data: bytes) -> None:
    check(codec, data)


@codecs
@settings(max_examples=400)
@given(obj=json_ish)
def test_random_json_ish_values(codec: Codec, obj: Any) -> None:
    encoded = msgspec.msgpack.encode(obj) if codec.binary else msgspec.json.encode(obj)
    check(codec, encoded)


@codecs
@settings(max_examples=600)
@given(obj=message_like)
def test_random_message_like_objects(codec: Codec, obj: dict[str, Any]) -> None:
    encoded = msgspec.msgpack.encode(obj) if codec.binary else msgspec.json.encode(obj)
    check(codec, encoded)


@settings(max_examples=200)
@given(text=st.text(max_size=200))
@example(text='{"type":"pong","x":"\ud800"}')
def test_random_text_frames_on_json(text: str) -> None:
    check(CODECS["petspark.v1.json"], text)


def test_fuzz_reaches_valid_commands() -> None:
    # Guard against a strategy that can only ever produce errors.
    codec = CODECS["petspark.v1.json"]
    msg = codec.decode_client(msgspec.json.encode({"type": "pets.mine", "id": "c1"}))
    assert isinstance(msg, COMMANDS["pets.mine"])
