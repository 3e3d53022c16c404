"""Both Storage backends through the same calls; URLs are used the way clients use them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import aiohttp
import pytest

from server.resources.storage import MIN_PART_BYTES, LocalStorage, Part, Storage, StorageError
from server.state import RUNTIME
from tests.support.auth import register
from tests.support.waiting import past
from tests.uploads.conftest import S3_KEY_ID, S3_SECRET, fetch, form


async def storage_of(make_client: Callable[..., Any], **overrides: Any) -> tuple[Any, Storage]:
    client = await make_client(**overrides)
    return client, client.server.app[RUNTIME].deps.storage


async def read_all(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key)])


async def test_put_open_head_delete_and_download_url(
    make_client: Callable[..., Any], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    client, storage = await storage_of(make_client)
    data = os.urandom(700_000)  # several chunks
    src = tmp_path / "blob"
    src.write_bytes(data)
    await storage.put_file("uploads/x/image.jpg", src, "image/jpeg")
    assert await storage.head("uploads/x/image.jpg") == len(data)
    assert await read_all(storage, "uploads/x/image.jpg") == data

    url = await storage.download_url("uploads/x/image.jpg", 60)
    status, body, headers = await fetch(client, http, "GET", url)
    assert status == 200 and body == data
    assert headers["Content-Type"] == "image/jpeg"

    await storage.delete("uploads/x/image.jpg", "uploads/never/existed.jpg")
    assert await storage.head("uploads/x/image.jpg") is None
    await client.server.app[RUNTIME].deps.storage.check()


async def test_presigned_post_stores_one_object_within_its_size(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client, storage = await storage_of(make_client)
    # Keys of uploads that await their object (the local endpoint refuses any other).
    user = await register(client)
    keys = []
    for size in (1000, 10):
        resp = await client.post("/api/v1/uploads/presign", headers=user.bearer, json={
            "content_type": "image/png", "size": size, "purpose": "pet_photo"})
        keys.append(f"incoming/{(await resp.json())['upload_id']}")
    post = await storage.presigned_post(keys[0], "image/png", max_size=1000, expires_s=60)
    assert post.expires_at.timestamp() > time.time() + 50
    status, body, _ = await fetch(client, http, "POST", post.url,
                                  data=form(post.fields, b"x" * 1000, content_type="image/png"))
    assert status in (200, 201, 204), body
    assert await storage.head(keys[0]) == 1000

    too_big = await storage.presigned_post(keys[1], "image/png", max_size=10, expires_s=60)
    if isinstance(storage, LocalStorage):
        status, _, _ = await fetch(client, http, "POST", too_big.url,
                                   data=form(too_big.fields, b"x" * 11, content_type="image/png"))
        assert status == 413
        assert await storage.head(keys[1]) is None
    else:
        # moto does not enforce POST policies: check the policy against what S3 documents.
        check_s3_policy(too_big.fields, key=keys[1], max_size=10, content_type="image/png")


def check_s3_policy(fields: dict[str, str], *, key: str, max_size: int, content_type: str) -> None:
    """The SigV4 POST policy: conditions, a short expiry and a signature S3 would accept."""
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, max_size] in conditions
    assert {"Content-Type": content_type} in conditions
    assert {"key": key} in conditions and fields["key"] == key
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 0 < (expires - datetime.now(UTC)).total_seconds() <= 61
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    key_id, date, region, service, terminator = fields["x-amz-credential"].split("/")
    assert (key_id, region, service, terminator) == (S3_KEY_ID, "us-east-1", "s3", "aws4_request")

    def sign(k: bytes, msg: str) -> bytes:
        return hmac.new(k, msg.encode(), "sha256").digest()

    signing_key = sign(sign(sign(sign(("AWS4" + S3_SECRET).encode(), date), region), service),
                       terminator)
    expected = hmac.new(signing_key, fields["policy"].encode(), "sha256").hexdigest()
    assert fields["x-amz-signature"] == expected


async def test_multipart_parts_are_joined_in_order(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client, storage = await storage_of(make_client)
    first, last = os.urandom(MIN_PART_BYTES), os.urandom(1234)
    mp = await storage.create_multipart("incoming/mp", "image/jpeg")
    parts = []
    for number, chunk in ((1, first), (2, last)):
        url = await storage.part_url("incoming/mp", mp, number, len(chunk), 60)
        status, body, headers = await fetch(client, http, "PUT", url, data=chunk)
        assert status == 200, body
        assert headers["ETag"].strip('"') == hashlib.md5(chunk).hexdigest()
        parts.append(Part(number, headers["ETag"]))
    await storage.complete_multipart("incoming/mp", mp, parts)
    assert await read_all(storage, "incoming/mp") == first + last


async def test_multipart_refuses_a_wrong_etag_and_abort_forgets(
    make_client: Callable[..., Any], http: aiohttp.ClientSession
) -> None:
    client, storage = await storage_of(make_client)
    mp = await storage.create_multipart("incoming/mp2", "image/jpeg")
    url = await storage.part_url("incoming/mp2", mp, 1, 10, 60)
    status, _, _ = await fetch(client, http, "PUT", url, data=b"0123456789")
    assert status == 200
    try:
        await storage.complete_multipart("incoming/mp2", mp, [Part(1, '"' + "0" * 32 + '"')])
    except StorageError:
        pass
    else:
        raise AssertionError("a wrong ETag was accepted")
    await storage.abort_multipart("incoming/mp2", mp)
    await storage.abort_multipart("incoming/mp2", mp)  # twice is fine
    assert await storage.head("incoming/mp2") is None


# ---------------------------------------------------------------- local signatures

local_only = pytest.mark.parametrize("backend", ["local"], indirect=True)


def tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


async def local_storage(
    make_client: Callable[..., Any], tmp_path: Path
) -> tuple[Any, LocalStorage]:
    client = await make_client()
    storage = client.server.app[RUNTIME].deps.storage
    assert isinstance(storage, LocalStorage)
    src = tmp_path / "blob"
    src.write_bytes(b"secret pixels")
    await storage.put_file("uploads/y/image.png", src, "image/png")
    await storage.put_file("uploads/z/image.png", src, "image/png")
    return client, storage


@local_only
async def test_local_download_url_tampering_is_refused(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    client, storage = await local_storage(make_client, tmp_path)
    url = await storage.download_url("uploads/y/image.png", 60)
    assert (await client.get(url)).status == 200
    # another key with the same signature, a later expiry, a forged signature, none at all
    for bad in (
        url.replace("uploads/y/", "uploads/z/"),
        tamper(url, exp=str(int(time.time()) + 10_000)),
        tamper(url, sig="0" * 64),
        url.split("?")[0],
    ):
        resp = await client.get(bad)
        assert resp.status == 403, bad
        assert (await resp.json())["error"]["code"] == "forbidden"
    traversal = await client.get("/api/v1/files/../../etc/passwd?exp=1&sig=x")
    assert traversal.status in (403, 404)


@local_only
async def test_local_download_url_expires(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    client, storage = await local_storage(make_client, tmp_path)
    url = await storage.download_url("uploads/y/image.png", 1)
    assert (await client.get(url)).status == 200
    await past(int(parse_qs(urlsplit(url).query)["exp"][0]))
    resp = await client.get(url)
    assert resp.status == 403
    assert "expired" in (await resp.json())["error"]["message"]


@local_only
async def test_local_post_policy_is_checked(
    make_client: Callable[..., Any], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    client, storage = await local_storage(make_client, tmp_path)
    post = await storage.presigned_post("incoming/p", "image/png", max_size=100, expires_s=60)
    other_key = {**post.fields, "key": "incoming/elsewhere"}
    resp = await client.post(post.url, data=form(other_key, b"x"))
    assert resp.status == 403
    forged = {**post.fields, "signature": "f" * 64}
    resp = await client.post(post.url, data=form(forged, b"x"))
    assert resp.status == 403

    short = await storage.presigned_post("incoming/q", "image/png", max_size=100, expires_s=1)
    await past(short.expires_at.timestamp())
    resp = await client.post(short.url, data=form(short.fields, b"x"))
    assert resp.status == 403
    assert await storage.head("incoming/q") is None


@local_only
async def test_local_part_of_the_wrong_size_is_refused(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    client, storage = await local_storage(make_client, tmp_path)
    mp = await storage.create_multipart("incoming/r", "image/jpeg")
    url = await storage.part_url("incoming/r", mp, 1, 10, 60)
    assert (await client.put(url, data=b"x" * 11)).status == 400
    assert (await client.put(tamper(url, size="11"), data=b"x" * 11)).status == 403
    assert (await client.put(url, data=b"x" * 10)).status == 200
