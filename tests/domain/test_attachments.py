"""Photo and attachment ids go through ``check_owned_uploads`` (uploads table, migration 0004).

Upload rows are inserted directly (the HTTP upload flow is the uploads suite's
concern). The tests skip, saying why, on a schema without the uploads table.
"""

from __future__ import annotations

import asyncpg
import pytest

from protocol.chat import ChatSend
from protocol.objects import Species
from protocol.pets import PetsCreate, PetsUpdate
from tests.domain.conftest import AppClient, cid, make_match, new_user


async def add_upload(database_url: str, owner_id: str, status: str = "pending",
                     purpose: str = "pet_photo") -> str | None:
    """Insert an upload row directly; None when the uploads table is not there yet."""
    conn = await asyncpg.connect(database_url)
    try:
        if await conn.fetchval("SELECT to_regclass('uploads')") is None:
            return None
        upload_id: str = await conn.fetchval(
            """INSERT INTO uploads (owner_id, purpose, status, flow, content_type, size,
                                    received_bytes, object_key, expires_at)
               VALUES ($1, $2, $3, 'direct', 'image/jpeg', 10, 10, 'k', now() + interval '1h')
               RETURNING id::text""",
            owner_id, purpose, status)
        return upload_id
    finally:
        await conn.close()


async def test_pet_photos_must_be_the_users_uploads(app_client: AppClient,
                                                    database_url: str) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    mine = await add_upload(database_url, alice.id)
    if mine is None:
        pytest.skip("uploads table (migration 0004, uploads branch) not merged yet")
    theirs = await add_upload(database_url, bob.id)
    rejected = await add_upload(database_url, alice.id, status="rejected")
    pet = (await alice.cmd(PetsCreate(id=cid(), name="Rex", species=Species.DOG,
                                      photo_ids=[mine]))).pet
    assert pet.photo_ids == [mine]
    conn = await asyncpg.connect(database_url)
    try:  # a pet profile is public: its photos become visible to others once approved
        assert await conn.fetchval("SELECT public FROM uploads WHERE id = $1", mine) is True
    finally:
        await conn.close()
    for bad in (theirs, rejected):
        assert bad is not None
        error = await alice.error(PetsUpdate(id=cid(), pet_id=pet.id, photo_ids=[mine, bad]))
        assert error.code == "not_found" and "photo_ids[1]" in error.message


async def test_chat_attachments_must_be_the_senders_uploads(app_client: AppClient,
                                                            database_url: str) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    mine = await add_upload(database_url, alice.id, purpose="chat_attachment")
    if mine is None:
        pytest.skip("uploads table (migration 0004, uploads branch) not merged yet")
    theirs = await add_upload(database_url, bob.id, purpose="chat_attachment")
    assert theirs is not None
    match = await make_match(alice, await alice.pet(), bob, await bob.pet())
    sent = await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                    client_msg_id="a1", body="look", attachment_ids=[mine]))
    assert sent.message.attachment_ids == [mine]
    error = await alice.error(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                       client_msg_id="a2", body="x", attachment_ids=[theirs]))
    assert error.code == "not_found" and "attachment_ids[0]" in error.message
