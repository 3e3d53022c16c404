"""Encoded shapes match the literal examples of PROTOCOL.md."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from protocol import JSON, MSGPACK, Error, ErrorCode, Hello, Ok, Welcome
from protocol.chat import ChatMessageEvent, ChatSend, MessageResult
from protocol.matching import SwipeResult
from protocol.objects import Pet, Species
from protocol.pets import PetsUpdate
from tests.protocol.samples import MESSAGE, T0


def wire(msg: msgspec.Struct) -> Any:
    return json.loads(JSON.encode(msg))


def test_hello() -> None:
    hello = Hello(token="…optional…", resume_from=41, client="petspark-web/2.3.0")
    assert wire(hello) == {
        "type": "hello",
        "token": "…optional…",
        "resume_from": 41,
        "client": "petspark-web/2.3.0",
    }
    assert wire(Hello()) == {"type": "hello"}


def test_welcome() -> None:
    welcome = Welcome(
        session_id="…", user_id="…", last_seq=57, heartbeat_s=25, resumed=True, server_time=T0
    )
    assert JSON.encode(welcome) == (
        b'{"type":"welcome","session_id":"\xe2\x80\xa6","user_id":"\xe2\x80\xa6","last_seq":57,'
        b'"heartbeat_s":25,"resumed":true,"server_time":"2026-11-26T10:00:00Z"}'
    )


def test_chat_send_ok_and_error() -> None:
    send = ChatSend(id="c17", conversation_id="…", client_msg_id="uuid", body="hi")
    assert wire(send) == {
        "type": "chat.send",
        "id": "c17",
        "conversation_id": "…",
        "client_msg_id": "uuid",
        "body": "hi",
    }
    ok = wire(Ok(id="c17", result=MessageResult(message=MESSAGE)))
    assert ok["type"] == "ok" and ok["id"] == "c17"
    assert ok["result"]["message"]["id"] == MESSAGE.id
    error = Error(id="c17", code=ErrorCode.TOO_LARGE, message="body: at most 4000 characters")
    assert wire(error) == {
        "type": "error",
        "id": "c17",
        "code": "too_large",
        "message": "body: at most 4000 characters",
    }


def test_error_id_null_is_present() -> None:
    error = Error(id=None, code=ErrorCode.BAD_REQUEST, message="invalid JSON")
    assert wire(error) == {
        "type": "error",
        "id": None,
        "code": "bad_request",
        "message": "invalid JSON",
    }
    assert msgspec.msgpack.decode(MSGPACK.encode(error))["id"] is None


def test_swipe_match_null_is_present() -> None:
    assert wire(Ok(id="c6", result=SwipeResult(match=None))) == {
        "type": "ok",
        "id": "c6",
        "result": {"match": None},
    }


def test_empty_result_is_an_object() -> None:
    from protocol import Empty

    assert wire(Ok(id="c8", result=Empty())) == {"type": "ok", "id": "c8", "result": {}}


def test_durable_event_is_flat_with_seq() -> None:
    assert wire(ChatMessageEvent(seq=12, message=MESSAGE)) == {
        "type": "chat.message",
        "seq": 12,
        "message": {
            "id": "msg1",
            "conversation_id": "c1",
            "sender_id": "u1",
            "client_msg_id": "6f1c",
            "body": "hi",
            "attachment_ids": [],
            "created_at": "2026-11-26T10:00:00Z",
        },
    }


def test_optional_object_fields_are_omitted_required_lists_kept() -> None:
    pet = Pet(id="p", owner_id="u", name="Tom", species=Species.CAT, photo_ids=[])
    assert wire(pet) == {
        "id": "p",
        "owner_id": "u",
        "name": "Tom",
        "species": "cat",
        "photo_ids": [],
    }


def test_update_distinguishes_absent_from_null() -> None:
    update = PetsUpdate(id="c", pet_id="p", breed=None)
    assert wire(update) == {"type": "pets.update", "id": "c", "pet_id": "p", "breed": None}
    decoded = JSON.decode_client(b'{"type":"pets.update","id":"c","pet_id":"p","breed":null}')
    assert isinstance(decoded, PetsUpdate)
    assert decoded.breed is None and decoded.bio is msgspec.UNSET


def test_unknown_fields_are_ignored() -> None:
    msg = JSON.decode_client(b'{"type":"pong","future":1}')
    assert type(msg).__name__ == "Pong"
