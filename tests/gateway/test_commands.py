"""Commands, replies, bad frames and limits (PROTOCOL §1, §4, §6)."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from protocol.base import Empty
from protocol.codec import MSGPACK
from protocol.codes import CloseCode
from protocol.objects import Species
from protocol.pets import PetsCreate, PetsMine, PetsUpdate
from server.commands import Caller
from server.errors import BadRequest, NotFound
from tests.gateway.conftest import AppClient
from tests.support.auth import register
from tests.support.ws import ProtocolSocket, open_session


async def session(app_client: AppClient, **overrides: object) -> ProtocolSocket:
    client = await app_client(**overrides)
    user = await register(client)
    return await open_session(client, user.access_token)


@pytest.mark.parametrize(
    ("frame", "expected_id", "fragment"),
    [
        ("{not json", None, "invalid JSON"),
        ('{"type": "no.such", "id": "a1"}', "a1", "unknown type"),
        ('{"id": "a2"}', "a2", "type"),
        ('{"type": "chat.send", "id": "a3", "conversation_id": "c"}', "a3", "client_msg_id"),
        ('{"type": "chat.send", "id": "a4", "conversation_id": "c", "client_msg_id": "m",'
         ' "body": 5}', "a4", "body"),
        ('{"type": "lost.nearby", "id": "a5", "location": {"lat": 91, "lng": 0},'
         ' "radius_m": 10}', "a5", "location.lat"),
        ('{"type": "pets.mine"}', None, "id"),
        ("[1, 2, 3]", None, ""),
    ],
)
async def test_bad_frames_get_bad_request_and_connection_stays(
    app_client: AppClient, frame: str, expected_id: str | None, fragment: str
) -> None:
    sock = await session(app_client)
    await sock.send_raw(frame)
    error = await sock.expect("error")
    assert error.code == "bad_request"
    assert error.id == expected_id
    assert fragment in error.message
    # still open and serving
    await sock.send_raw('{"type": "pong"}')
    await sock.send_raw('{"type": "ack", "seq": 0}')
    await sock.expect_nothing(0.1)


async def test_wrong_frame_kind_is_bad_request(app_client: AppClient) -> None:
    sock = await session(app_client)
    await sock.send_raw(b"\x81\xa4type\xa4pong")
    error = await sock.expect("error")
    assert error.code == "bad_request" and "text" in error.message


async def test_bad_msgpack_is_bad_request(app_client: AppClient) -> None:
    client = await app_client()
    user = await register(client)
    sock = await open_session(client, user.access_token, codec=MSGPACK.name)
    await sock.send_raw(b"\xc1\xc1")
    error = await sock.expect("error")
    assert error.code == "bad_request"
    await sock.send_raw(msgspec.msgpack.encode({"type": "chat.send", "id": "m1"}))
    error = await sock.expect("error")
    assert error.id == "m1" and "conversation_id" in error.message
    await sock.send_raw("text on a binary protocol")
    error = await sock.expect("error")
    assert "binary" in error.message


async def test_oversized_frame_closes_1009(app_client: AppClient) -> None:
    sock = await session(app_client, ws_max_message_bytes=2048)
    await sock.send_raw(json.dumps({"type": "pong", "pad": "x" * 4096}))
    await sock.expect_close(CloseCode.TOO_LARGE)


async def test_command_without_a_handler_is_answered(app_client: AppClient) -> None:
    # Every v1 command has a handler now; a server missing one must still answer.
    client = await app_client(handlers={PetsMine: None})
    user = await register(client)
    sock = await open_session(client, user.access_token)
    reply = await sock.request(PetsMine(id="p1"))
    assert reply.wire_type() == "error" and reply.code == "bad_request"
    assert reply.id == "p1" and "not supported" in reply.message


async def test_handler_errors_map_to_codes_and_crashes_to_internal(app_client: AppClient) -> None:
    calls: list[str] = []

    async def handler(caller: Caller, command: PetsMine) -> Empty:
        calls.append(command.id)
        if command.id == "missing":
            raise NotFound("pet: not found")
        if command.id == "boom":
            raise RuntimeError("unexpected")
        return Empty()

    client = await app_client(handlers={PetsMine: handler})
    user = await register(client)
    sock = await open_session(client, user.access_token)
    reply = await sock.request(PetsMine(id="missing"))
    assert (reply.code, reply.message) == ("not_found", "pet: not found")
    reply = await sock.request(PetsMine(id="boom"))
    assert (reply.code, reply.message) == ("internal", "internal error")
    reply = await sock.request(PetsMine(id="fine"))
    assert reply.wire_type() == "ok"
    assert json.loads(bytes(reply.result)) == {}
    assert calls == ["missing", "boom", "fine"]


async def test_errors_name_the_field_at_fault_for_programs(app_client: AppClient) -> None:
    """``error.field`` is the path the message starts with, when it is a field of the
    command: from the decoder, from a service's ``"name: …"`` error, or given explicitly;
    never a word that is not one of the command's fields."""

    async def handler(caller: Caller, command: PetsMine) -> Empty:
        if command.id == "explicit":
            raise BadRequest("that cursor is stale", field="cursor")
        raise NotFound("pet: not found")  # "pet" is no field of pets.mine

    client = await app_client(handlers={PetsMine: handler})
    user = await register(client)
    sock = await open_session(client, user.access_token)
    await sock.send_raw('{"type": "lost.nearby", "id": "d1", "location": {"lat": 91, "lng": 0},'
                        ' "radius_m": 10}')
    error = await sock.expect("error")
    assert (error.id, error.field) == ("d1", "location.lat")
    await sock.send_raw("{not json")
    error = await sock.expect("error")
    assert (error.id, error.field) == (None, None)

    reply = await sock.request(PetsCreate(id="c1", name="   ", species=Species.DOG))
    assert (reply.code, reply.field) == ("bad_request", "name")
    assert reply.message.startswith("name: ")
    reply = await sock.request(PetsUpdate(id="u1", pet_id="00000000-0000-0000-0000-000000000000",
                                          name="Rex"))
    assert (reply.code, reply.field) == ("not_found", "pet_id")
    reply = await sock.request(PetsMine(id="m1"))
    assert (reply.code, reply.message, reply.field) == ("not_found", "pet: not found", None)
    reply = await sock.request(PetsMine(id="explicit"))
    assert (reply.code, reply.field) == ("bad_request", "cursor")
    # On the wire the key is left out when there is no field.
    await sock.send_raw('{"type": "pets.mine", "id": "m2"}')
    raw = await sock.ws.receive()
    assert json.loads(raw.data) == {"type": "error", "id": "m2", "code": "not_found",
                                    "message": "pet: not found"}


async def test_rate_limit_replies_then_closes_4029(app_client: AppClient) -> None:
    sock = await session(app_client, ws_rate_per_s=1.0, ws_rate_burst=3, ws_abuse_s=0.3)
    for i in range(5):
        await sock.send_raw(json.dumps({"type": "nope", "id": f"r{i}"}))
    codes = [(await sock.expect("error")).code for _ in range(5)]
    assert codes[:3] == ["bad_request"] * 3
    assert codes[3:] == ["rate_limited"] * 2
    # Keep going over the limit: once that has lasted WS_ABUSE_S, the socket is closed.
    async def keep_flooding() -> None:
        i = 0
        while not sock.ws.closed:
            await sock.send_raw(json.dumps({"type": "nope", "id": f"s{i}"}))
            i += 1
            await asyncio.sleep(0.02)

    flood = asyncio.create_task(keep_flooding())
    try:
        await sock.expect_close(CloseCode.RATE_LIMIT_ABUSE, timeout=3)
    finally:
        flood.cancel()


async def test_rate_limited_reply_carries_retry_after(app_client: AppClient) -> None:
    sock = await session(app_client, ws_rate_per_s=2.0, ws_rate_burst=1)
    await sock.send_raw('{"type": "nope", "id": "a"}')
    await sock.send_raw('{"type": "nope", "id": "b"}')
    await sock.expect("error")
    limited = await sock.expect("error")
    assert limited.code == "rate_limited" and limited.id == "b"
    assert 0 < limited.retry_after_s <= 0.5
