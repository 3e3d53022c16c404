"""The upload routes end to end, on both backends (moto's S3 server and local disk)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from server.domain.uploads.attachments import mark_public
from server.domain.uploads.moderation import ImageInfo, Moderator, Verdict, moderate_upload
from server.resources.storage import LocalStorage
from server.state import RUNTIME
from tests.support.auth import Registered, register
from tests.support.waiting import past
from tests.support.ws import open_session
from tests.uploads import images
from tests.uploads.conftest import fetch, form

Client = TestClient[Any, Any]


def upload_form(data: bytes, purpose: str = "pet_photo", filename: str = "photo.jpg",
                content_type: str = "image/jpeg") -> aiohttp.FormData:
    fd = aiohttp.FormData()
    fd.add_field("purpose", purpose)
    fd.add_field("file", data, filename=filename, content_type=content_type)
    return fd


async def direct(
    client: Client, user: Registered, data: bytes, **kw: Any
) -> aiohttp.ClientResponse:
    return await client.post("/api/v1/uploads", data=upload_form(data, **kw), headers=user.bearer)


async def error_code(resp: aiohttp.ClientResponse) -> str:
    body = await resp.json()
    return str(body["error"]["code"])


async def row_count(client: Client) -> int:
    pool: asyncpg.Pool = client.server.app[RUNTIME].deps.db
    return int(await pool.fetchval("SELECT count(*) FROM uploads"))


async def stored_object(client: Client, key: str) -> bytes:
    storage = client.server.app[RUNTIME].deps.storage
    return b"".join([c async for c in storage.open(key)])


async def presign_and_post(
    client: Client, http: aiohttp.ClientSession, user: Registered, data: bytes,
    declared: int | None = None, content_type: str = "image/jpeg",
) -> tuple[str, int]:
    resp = await client.post("/api/v1/uploads/presign", headers=user.bearer, json={
        "content_type": content_type, "size": declared or len(data), "purpose": "pet_photo"})
    body = await resp.json()
    assert resp.status == 201, body
    status, _, _ = await fetch(client, http, "POST", body["url"],
                                  data=form(body["fields"], data, content_type=content_type))
    return body["upload_id"], status


# ------------------------------------------------------------------ direct flow


async def test_direct_upload_strips_gps_applies_orientation_and_stores_a_thumbnail(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client = await make_client()
    user = await register(client)
    raw = images.jpeg_with_gps((64, 32), orientation=6)
    resp = await direct(client, user, raw)
    body = await resp.json()
    assert resp.status == 201, body
    upload = body["upload"]
    assert upload["status"] == "pending" and upload["owner_id"] == user.user_id
    assert upload["purpose"] == "pet_photo" and upload["content_type"] == "image/jpeg"

    status, stored, _ = await fetch(client, http, "GET", upload["url"])
    assert status == 200 and upload["size"] == len(stored)
    assert b"Exif" not in stored and b"PetCam" not in stored
    with Image.open(io.BytesIO(stored)) as im:
        assert not im.getexif() and im.size == (32, 64)  # orientation 6 applied

    resp = await client.get(f"/api/v1/uploads/{upload['id']}?variant=thumbnail",
                            headers=user.bearer)
    thumb_url = (await resp.json())["upload"]["url"]
    status, thumb, _ = await fetch(client, http, "GET", thumb_url)
    with Image.open(io.BytesIO(thumb)) as im:
        assert status == 200 and im.format == "WEBP" and max(im.size) <= 320


async def test_png_webp_and_heic_are_accepted(make_client: Callable[..., Any]) -> None:
    client = await make_client()
    user = await register(client)
    for data, expected in ((images.png(), "image/png"), (images.webp(), "image/webp"),
                           (images.heic(), "image/jpeg")):
        resp = await direct(client, user, data, filename="x.bin",
                            content_type="application/octet-stream")
        body = await resp.json()
        assert resp.status == 201, body
        assert body["upload"]["content_type"] == expected


async def test_over_the_cap_is_413_and_nothing_is_kept(make_client: Callable[..., Any]) -> None:
    client = await make_client(upload_max_bytes=4096)
    user = await register(client)
    resp = await direct(client, user, images.noise_jpeg(200, 200))
    assert resp.status == 413 and await error_code(resp) == "too_large"
    assert await row_count(client) == 0


async def test_avatar_has_its_own_cap(make_client: Callable[..., Any]) -> None:
    client = await make_client(upload_avatar_max_bytes=4096)
    user = await register(client)
    data = images.noise_jpeg(200, 200)
    assert (await direct(client, user, data, purpose="avatar")).status == 413
    assert (await direct(client, user, data, purpose="pet_photo")).status == 201


async def test_text_named_jpg_is_415(make_client: Callable[..., Any]) -> None:
    client = await make_client()
    user = await register(client)
    resp = await direct(client, user, b"definitely not a picture\n" * 20, filename="cat.jpg")
    assert resp.status == 415 and await error_code(resp) == "unsupported_media_type"
    assert await row_count(client) == 0


async def test_decompression_bomb_is_413(make_client: Callable[..., Any]) -> None:
    client = await make_client()
    user = await register(client)
    resp = await direct(client, user, images.bomb_png(20_000), content_type="image/png")
    assert resp.status == 413 and await error_code(resp) == "too_large"
    assert "pixels" in (await resp.json())["error"]["message"]
    assert await row_count(client) == 0


async def test_bad_forms_are_400(make_client: Callable[..., Any]) -> None:
    client = await make_client()
    user = await register(client)
    assert (await direct(client, user, images.png(), purpose="selfie")).status == 400
    fd = aiohttp.FormData()
    fd.add_field("purpose", "pet_photo")
    assert (await client.post("/api/v1/uploads", data=fd, headers=user.bearer)).status in (
        400, 415)
    resp = await client.post("/api/v1/uploads", json={"file": "x"}, headers=user.bearer)
    assert resp.status == 415


async def test_routes_need_a_credential(make_client: Callable[..., Any]) -> None:
    client = await make_client()
    assert (await client.post("/api/v1/uploads", data=upload_form(images.png()))).status == 401
    assert (await client.get("/api/v1/uploads/00000000-0000-0000-0000-000000000000")).status == 401


# ------------------------------------------------------------------ visibility


async def test_other_users_unknown_and_malformed_ids_are_404(
    make_client: Callable[..., Any],
) -> None:
    client = await make_client()
    owner, other = await register(client), await register(client)
    upload = (await (await direct(client, owner, images.png())).json())["upload"]
    for user, upload_id in ((other, upload["id"]),
                            (owner, "6f1c3a52-0000-4000-8000-000000000000"),
                            (owner, "not-a-uuid"), (owner, "1' OR '1'='1")):
        resp = await client.get(f"/api/v1/uploads/{upload_id}", headers=user.bearer)
        assert resp.status == 404 and await error_code(resp) == "not_found"
        resp = await client.post(f"/api/v1/uploads/{upload_id}/complete", headers=user.bearer)
        assert resp.status == 404
    assert (await client.get(f"/api/v1/uploads/{upload['id']}", headers=owner.bearer)).status == 200


async def test_approved_and_public_is_visible_to_others_and_moderation_event_is_durable(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client = await make_client()
    owner, other = await register(client), await register(client)
    upload = (await (await direct(client, owner, images.png())).json())["upload"]
    app = client.server.app
    async with app[RUNTIME].deps.stream.transaction() as tx:
        assert await mark_public(tx.conn, owner.user_id, [upload["id"]]) == [upload["id"]]
    path = f"/api/v1/uploads/{upload['id']}"
    assert (await client.get(path, headers=other.bearer)).status == 404  # public, not approved

    sock = await open_session(client, owner.access_token)
    async with app[RUNTIME].deps.stream.transaction() as tx:
        assert await moderate_upload(tx, upload["id"], "approved", None) is not None
    event = await sock.expect("upload.moderated")
    assert (event.upload_id, event.status, event.seq) == (upload["id"], "approved", 1)
    await sock.close()
    async with app[RUNTIME].deps.stream.transaction() as tx:  # no change, no second event
        assert await moderate_upload(tx, upload["id"], "approved", None) is None

    resp = await client.get(path, headers=other.bearer)
    body = await resp.json()
    assert resp.status == 200 and body["upload"]["status"] == "approved"
    status, _, _ = await fetch(client, http, "GET", body["upload"]["url"])
    assert status == 200


class RejectEverything(Moderator):
    async def check(self, image: ImageInfo) -> Verdict:
        assert image.path.exists() and image.width > 0
        return Verdict(status="rejected", reason="test rule")


async def test_automatic_rejection_tells_the_uploader_over_the_socket(
    make_client: Callable[..., Any],
) -> None:
    client = await make_client(moderator=RejectEverything())
    user = await register(client)
    sock = await open_session(client, user.access_token)
    resp = await direct(client, user, images.png())
    body = await resp.json()
    assert resp.status == 201 and body["upload"]["status"] == "rejected"
    assert "url" not in body["upload"]  # rejected images are not served
    event = await sock.expect("upload.moderated")
    assert (event.upload_id, event.status) == (body["upload"]["id"], "rejected")
    await sock.close()


# ------------------------------------------------------------------ presigned flow


async def test_presigned_flow_moves_the_clean_image_and_deletes_the_raw_one(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client = await make_client()
    user = await register(client)
    upload_id, status = await presign_and_post(client, http, user, images.jpeg_with_gps())
    assert status in (200, 201, 204)
    resp = await client.post(f"/api/v1/uploads/{upload_id}/complete", headers=user.bearer)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["upload"]["status"] == "pending" and body["upload"]["id"] == upload_id
    storage = client.server.app[RUNTIME].deps.storage
    assert await storage.head(f"incoming/{upload_id}") is None
    stored = await stored_object(client, f"uploads/{upload_id}/image.jpg")
    assert b"Exif" not in stored and b"PetCam" not in stored
    assert await storage.head(f"uploads/{upload_id}/thumb.webp")
    # completing again answers the same upload
    again = await client.post(f"/api/v1/uploads/{upload_id}/complete", headers=user.bearer)
    assert again.status == 200 and (await again.json())["upload"]["id"] == upload_id


async def test_complete_before_the_upload_is_409_and_can_be_retried(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client = await make_client()
    user = await register(client)
    data = images.png()
    resp = await client.post("/api/v1/uploads/presign", headers=user.bearer, json={
        "content_type": "image/png", "size": len(data), "purpose": "lost_poster"})
    body = await resp.json()
    path = f"/api/v1/uploads/{body['upload_id']}/complete"
    early = await client.post(path, headers=user.bearer)
    assert early.status == 409 and await error_code(early) == "conflict"
    status, _, _ = await fetch(client, http, "POST", body["url"],
                               data=form(body["fields"], data, content_type="image/png"))
    assert status in (200, 201, 204)
    assert (await client.post(path, headers=user.bearer)).status == 200


async def test_wrong_size_on_complete_is_400(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client = await make_client()
    user = await register(client)
    data = images.jpeg_with_gps()
    upload_id, status = await presign_and_post(client, http, user, data[:-100],
                                               declared=len(data))
    assert status in (200, 201, 204)
    resp = await client.post(f"/api/v1/uploads/{upload_id}/complete", headers=user.bearer)
    assert resp.status == 400 and "size" in (await resp.json())["error"]["message"]
    assert await row_count(client) == 0
    assert await client.server.app[RUNTIME].deps.storage.head(f"incoming/{upload_id}") is None


async def test_presigned_text_file_is_415_on_complete(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client = await make_client()
    user = await register(client)
    upload_id, _ = await presign_and_post(client, http, user, b"<script>alert(1)</script>" * 4)
    resp = await client.post(f"/api/v1/uploads/{upload_id}/complete", headers=user.bearer)
    assert resp.status == 415
    assert await row_count(client) == 0


async def test_presign_refuses_what_it_can_tell_up_front(make_client: Callable[..., Any]) -> None:
    client = await make_client(upload_large_max_bytes=1_000_000)
    user = await register(client)

    async def presign(**body: Any) -> aiohttp.ClientResponse:
        full = {"content_type": "image/jpeg", "size": 1000, "purpose": "pet_photo", **body}
        return await client.post("/api/v1/uploads/presign", headers=user.bearer, json=full)

    assert (await presign(size=1_000_001)).status == 413
    assert (await presign(content_type="text/html")).status == 415
    assert (await presign(purpose="selfie")).status == 400
    assert (await presign(size=0)).status == 400


async def test_expired_presign_is_refused(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client = await make_client(upload_presign_ttl_s=1, upload_abandon_grace_s=0)
    user = await register(client)
    data = images.png()
    resp = await client.post("/api/v1/uploads/presign", headers=user.bearer, json={
        "content_type": "image/png", "size": len(data), "purpose": "pet_photo"})
    body = await resp.json()
    # Past both the form's expiry and the upload's own deadline (grace 0).
    deadline = await client.server.app[RUNTIME].deps.db.fetchval(
        "SELECT expires_at FROM uploads WHERE id = $1", body["upload_id"])
    await past(max(deadline.timestamp(), datetime.fromisoformat(body["expires_at"]).timestamp()))
    status, _, _ = await fetch(client, http, "POST", body["url"],
                               data=form(body["fields"], data, content_type="image/png"))
    if isinstance(client.server.app[RUNTIME].deps.storage, LocalStorage):
        assert status == 403  # the store refuses an expired form (S3 does too; moto does not)
    resp = await client.post(f"/api/v1/uploads/{body['upload_id']}/complete",
                             headers=user.bearer)
    assert resp.status == 409 and "expired" in (await resp.json())["error"]["message"]


async def test_sweeper_deletes_abandoned_uploads_and_their_objects(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client = await make_client(upload_presign_ttl_s=1, upload_abandon_grace_s=0)
    user = await register(client)
    upload_id, _ = await presign_and_post(client, http, user, images.png(),
                                          content_type="image/png")
    resp = await client.post("/api/v1/uploads/multipart", headers=user.bearer, json={
        "content_type": "image/png", "size": 6_000_000, "purpose": "pet_photo"})
    assert resp.status == 201
    kept = (await (await direct(client, user, images.png())).json())["upload"]
    storage = client.server.app[RUNTIME].deps.storage
    assert await storage.head(f"incoming/{upload_id}") is not None
    # Past every unfinished upload's deadline (grace 0): both are abandoned then.
    deadline = await client.server.app[RUNTIME].deps.db.fetchval(
        "SELECT max(expires_at) FROM uploads WHERE status = 'awaiting_upload'")
    await past(deadline.timestamp())
    service = client.server.app[RUNTIME].uploads
    two = await asyncio.gather(service.sweep_abandoned(), service.sweep_abandoned())
    # Concurrent sweepers split the rows between them (SKIP LOCKED) but never take one
    # twice: either may get both, or each one.
    assert sum(two) == 2 and sorted(two) in ([0, 2], [1, 1])
    assert await storage.head(f"incoming/{upload_id}") is None
    assert await row_count(client) == 1
    assert (await client.get(f"/api/v1/uploads/{kept['id']}", headers=user.bearer)).status == 200


# ------------------------------------------------------------------ multipart (resumable)


async def test_multipart_upload_with_a_retried_part(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client = await make_client(upload_part_bytes=5 * 1024 * 1024)
    user = await register(client)
    data = images.noise_png(6 * 1024 * 1024)
    resp = await client.post("/api/v1/uploads/multipart", headers=user.bearer, json={
        "content_type": "image/png", "size": len(data), "purpose": "adoption_photo"})
    body = await resp.json()
    assert resp.status == 201, body
    assert [p["part_number"] for p in body["parts"]] == [1, 2]
    done = []
    offset = 0
    for part in body["parts"]:
        chunk = data[offset : offset + part["size"]]
        offset += part["size"]
        status, _, headers = await fetch(client, http, "PUT", part["url"], data=chunk)
        if part["part_number"] == 1:  # a retry of the same part replaces it
            status, _, headers = await fetch(client, http, "PUT", part["url"], data=chunk)
        assert status == 200
        done.append({"part_number": part["part_number"], "etag": headers["ETag"]})
    assert offset == len(data)
    path = f"/api/v1/uploads/{body['upload_id']}/complete"
    missing = await client.post(path, headers=user.bearer, json={})
    assert missing.status == 400  # parts are required; the upload is still there
    resp = await client.post(path, headers=user.bearer, json={"parts": done})
    result = await resp.json()
    assert resp.status == 200, result
    assert result["upload"]["status"] == "pending"
    assert result["upload"]["content_type"] == "image/png"


# ------------------------------------------------------------------ quotas


async def test_uploads_per_hour_is_429_with_retry_after(make_client: Callable[..., Any]) -> None:
    client = await make_client(upload_per_hour=2)
    user = await register(client)
    assert (await direct(client, user, images.png())).status == 201
    resp = await client.post("/api/v1/uploads/presign", headers=user.bearer, json={
        "content_type": "image/png", "size": 100, "purpose": "pet_photo"})
    assert resp.status == 201
    resp = await direct(client, user, images.png())
    assert resp.status == 429 and await error_code(resp) == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1


async def test_bytes_per_day_is_429_with_retry_after(make_client: Callable[..., Any]) -> None:
    client = await make_client(upload_bytes_per_day=5000)
    user, other = await register(client), await register(client)
    resp = await client.post("/api/v1/uploads/presign", headers=user.bearer, json={
        "content_type": "image/png", "size": 4000, "purpose": "pet_photo"})
    assert resp.status == 201
    resp = await client.post("/api/v1/uploads/presign", headers=user.bearer, json={
        "content_type": "image/png", "size": 1001, "purpose": "pet_photo"})
    assert resp.status == 429
    assert 80_000 <= int(resp.headers["Retry-After"]) <= 86_400
    resp = await client.post("/api/v1/uploads/presign", headers=other.bearer, json={
        "content_type": "image/png", "size": 4000, "purpose": "pet_photo"})
    assert resp.status == 201  # per user


@pytest.mark.parametrize("backend", ["local"], indirect=True)
async def test_concurrent_uploads_share_the_process_pool_without_blocking(
    make_client: Callable[..., Any],
) -> None:
    """While an image is being decoded (the one decode slot is taken), the event loop
    still answers /healthz. Were the decode run on the loop, no other request could
    finish while the slot is held: nothing else is awaited inside it."""
    client = await make_client(upload_process_concurrency=1)
    user = await register(client)
    data = images.noise_jpeg(1200, 900)
    decoding = client.server.app[RUNTIME].uploads.cpu
    uploads = asyncio.gather(*(direct(client, user, data) for _ in range(4)))
    answered_while_decoding = 0
    for _ in range(2000):  # bounded: each round is one /healthz request
        if uploads.done():
            break
        assert (await client.get("/healthz")).status == 200
        answered_while_decoding += decoding.locked()
    results = await uploads
    assert [r.status for r in results] == [201] * 4
    assert answered_while_decoding > 0
