"""Object storage: S3-compatible (aiobotocore) or local disk under DATA_DIR.

One interface, ``Storage``, two backends that give clients the same flows:

- ``put_file`` / ``open`` / ``head`` / ``delete``: server-side object access,
  always streamed (never a whole object in memory).
- ``download_url``: a signed GET URL that stops working after ``expires_s``.
- ``presigned_post``: a form (``url`` + ``fields``; the client adds ``file``
  last) that lets a client upload ONE object straight to the store, only under
  the given key, only with a size in ``[1, max_size]`` and only before the
  expiry.
- ``create_multipart`` / ``part_url`` / ``complete_multipart`` /
  ``abort_multipart``: resumable uploads in parts of at least
  ``MIN_PART_BYTES`` (but the last); each part is a presigned ``PUT`` whose
  response carries an ``ETag`` the client reports back.

``S3Storage`` signs with SigV4 through the process's one aiobotocore client.
``LocalStorage`` signs its own URLs with an HMAC key derived from SECRET_KEY;
``server/http/files.py`` serves them (``/api/v1/files``), so the embedded
default supports exactly the same client flows as S3.

Keys are made by the server (``incoming/<id>``, ``uploads/<id>/…``); both
backends still refuse any key outside ``KEY_PATTERN``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import mimetypes
import os
import re
import secrets
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from server.settings import Settings

CHUNK_BYTES = 256 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")


class StorageError(Exception):
    """The store refused or failed an operation."""


class ObjectNotFound(StorageError):
    """No object under that key."""


class BadSignature(StorageError):
    """A local signed URL or form was tampered with, is malformed or has expired."""


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class Part:
    number: int
    etag: str


def check_key(key: str) -> str:
    if len(key) > 512 or not KEY_PATTERN.match(key):
        raise StorageError(f"invalid object key {key!r}")
    return key


def _expiry(expires_s: int) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=expires_s)).replace(microsecond=0)


class Storage(ABC):
    name: str

    @abstractmethod
    async def check(self) -> None:
        """Raise if the store cannot be used (readiness)."""

    @abstractmethod
    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at ``path`` under ``key`` (replacing any object there)."""

    @abstractmethod
    def open(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; raises ``ObjectNotFound`` on first iteration."""

    @abstractmethod
    async def head(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none."""

    @abstractmethod
    async def delete(self, *keys: str) -> None:
        """Delete objects; missing keys are not an error."""

    @abstractmethod
    async def download_url(self, key: str, expires_s: int) -> str:
        """A URL anyone holding it may GET for ``expires_s`` seconds."""

    @abstractmethod
    async def presigned_post(
        self, key: str, content_type: str, max_size: int, expires_s: int
    ) -> PresignedPost:
        """A one-object upload form, size 1..max_size, valid for ``expires_s`` seconds."""

    @abstractmethod
    async def create_multipart(self, key: str, content_type: str) -> str:
        """Start a multipart upload; returns its id."""

    @abstractmethod
    async def part_url(
        self, key: str, multipart_id: str, number: int, size: int, expires_s: int
    ) -> str:
        """A presigned PUT URL for part ``number`` (1-based) of exactly ``size`` bytes."""

    @abstractmethod
    async def complete_multipart(self, key: str, multipart_id: str, parts: Sequence[Part]) -> None:
        """Join the parts (in number order) into the object; StorageError if they don't match."""

    @abstractmethod
    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        """Drop a multipart upload and its parts; unknown ids are not an error."""


# --------------------------------------------------------------------------- local disk


class LocalStorage(Storage):
    """Objects as files under ``root``; URLs signed with ``signing_key`` and served by the app.

    ``url_base`` is what precedes ``/api/v1/files`` in the URLs handed to clients:
    empty gives root-relative URLs, which clients resolve against the API's base.
    """

    name = "local"
    route = "/api/v1/files"

    def __init__(self, root: Path, signing_key: bytes, url_base: str = "") -> None:
        self.root = root
        self.key = signing_key
        self.url_base = url_base.rstrip("/")
        root.mkdir(parents=True, exist_ok=True)
        (root / ".tmp").mkdir(exist_ok=True)
        (root / ".multipart").mkdir(exist_ok=True)

    @staticmethod
    def derive_key(secret_key: str) -> bytes:
        """The HMAC key for local URLs: derived, so a leaked URL key is not SECRET_KEY."""
        return hmac.new(secret_key.encode(), b"petspark local-storage v1", "sha256").digest()

    # -- paths
    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _mp_dir(self, multipart_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}", multipart_id):
            raise StorageError("invalid multipart id")
        return self.root / ".multipart" / multipart_id

    # -- signing
    def _sign(self, *parts: str) -> str:
        msg = "\n".join(parts).encode()
        return hmac.new(self.key, msg, "sha256").hexdigest()

    def _verify(self, sig: str, exp: str, *parts: str) -> None:
        try:
            expires = int(exp)
        except ValueError:
            raise BadSignature("malformed expiry") from None
        if not hmac.compare_digest(self._sign(*parts, exp), sig):
            raise BadSignature("bad signature")
        if expires < time.time():
            raise BadSignature("expired")

    def verify_download(self, key: str, exp: str, sig: str) -> Path:
        self._verify(sig, exp, "GET", check_key(key))
        return self.path(key)

    def verify_part(
        self, key: str, multipart_id: str, number: str, size: str, exp: str, sig: str
    ) -> tuple[int, int]:
        """Check a part URL; returns (part number, exact size in bytes)."""
        self._verify(sig, exp, "PUT", check_key(key), multipart_id, number, size)
        return int(number), int(size)

    def verify_post_policy(self, policy: str, signature: str) -> dict[str, Any]:
        """Check a form's policy; returns it (``key``, ``content_type``, ``max_size``, ``exp``)."""
        if not hmac.compare_digest(self._sign("POST", policy), signature):
            raise BadSignature("bad signature")
        try:
            decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(policy.encode()))
        except ValueError:
            raise BadSignature("malformed policy") from None
        if decoded.get("exp", 0) < time.time():
            raise BadSignature("expired")
        check_key(decoded["key"])
        return decoded

    def _url(self, key: str, query: dict[str, str]) -> str:
        return f"{self.url_base}{self.route}/{quote(key)}?{urlencode(query)}"

    # -- Storage
    async def check(self) -> None:
        probe = self.root / ".ready"
        await asyncio.to_thread(probe.write_bytes, b"ok")

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        target = self.path(key)
        tmp = self.root / ".tmp" / secrets.token_hex(16)

        def copy() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)

        try:
            await asyncio.to_thread(copy)
        finally:
            tmp.unlink(missing_ok=True)

    async def write_object(self, key: str, chunks: AsyncIterator[bytes], max_size: int) -> int:
        """Store a stream under ``key`` atomically; StorageError past ``max_size`` bytes.

        The receiving end of the local presigned POST form.
        """
        return await self._write(self.path(key), chunks, max_size)

    async def _write(self, target: Path, chunks: AsyncIterator[bytes], max_size: int) -> int:
        tmp = self.root / ".tmp" / secrets.token_hex(16)
        size = 0
        f = await asyncio.to_thread(tmp.open, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_size:
                    raise StorageError("object larger than allowed")
                await asyncio.to_thread(f.write, chunk)
            await asyncio.to_thread(f.close)
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(os.replace, tmp, target)
        finally:
            f.close()
            tmp.unlink(missing_ok=True)
        return size

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            f = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        try:
            while chunk := await asyncio.to_thread(f.read, CHUNK_BYTES):
                yield chunk
        finally:
            f.close()

    async def head(self, key: str) -> int | None:
        try:
            st = await asyncio.to_thread(self.path(key).stat)
        except FileNotFoundError:
            return None
        return st.st_size

    async def delete(self, *keys: str) -> None:
        paths = [self.path(k) for k in keys]

        def remove() -> None:
            for p in paths:
                p.unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    async def download_url(self, key: str, expires_s: int) -> str:
        exp = str(int(time.time()) + expires_s)
        return self._url(key, {"exp": exp, "sig": self._sign("GET", check_key(key), exp)})

    async def presigned_post(
        self, key: str, content_type: str, max_size: int, expires_s: int
    ) -> PresignedPost:
        expires_at = _expiry(expires_s)
        policy = {
            "key": check_key(key),
            "content_type": content_type,
            "max_size": max_size,
            "exp": int(expires_at.timestamp()),
        }
        encoded = base64.urlsafe_b64encode(json.dumps(policy).encode()).decode()
        fields = {"key": key, "policy": encoded, "signature": self._sign("POST", encoded)}
        return PresignedPost(f"{self.url_base}{self.route}", fields, expires_at)

    async def create_multipart(self, key: str, content_type: str) -> str:
        check_key(key)
        multipart_id = secrets.token_hex(16)
        await asyncio.to_thread(self._mp_dir(multipart_id).mkdir)
        return multipart_id

    async def part_url(
        self, key: str, multipart_id: str, number: int, size: int, expires_s: int
    ) -> str:
        if not 1 <= number <= MAX_PARTS:
            raise StorageError("part number out of range")
        exp = str(int(time.time()) + expires_s)
        sig = self._sign("PUT", check_key(key), multipart_id, str(number), str(size), exp)
        query = {"upload_id": multipart_id, "part": str(number), "size": str(size), "exp": exp,
                 "sig": sig}
        return self._url(key, query)

    async def write_part(
        self, multipart_id: str, number: int, chunks: AsyncIterator[bytes], size: int
    ) -> str:
        """Store one part of exactly ``size`` bytes; returns its ETag (quoted MD5, as S3)."""
        directory = self._mp_dir(multipart_id)
        if not await asyncio.to_thread(directory.is_dir):
            raise ObjectNotFound("no such multipart upload")
        digest = hashlib.md5(usedforsecurity=False)

        async def hashed() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                digest.update(chunk)
                yield chunk

        target = directory / f"{number:05d}"
        written = await self._write(target, hashed(), size)
        if written != size:
            await asyncio.to_thread(target.unlink, True)
            raise StorageError(f"part {number}: expected {size} bytes, got {written}")
        etag = f'"{digest.hexdigest()}"'
        await asyncio.to_thread(directory.joinpath(f"{number:05d}.etag").write_text, etag)
        return etag

    async def complete_multipart(self, key: str, multipart_id: str, parts: Sequence[Part]) -> None:
        directory = self._mp_dir(multipart_id)
        target = self.path(key)
        tmp = self.root / ".tmp" / secrets.token_hex(16)
        numbers = [p.number for p in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise StorageError("parts must be listed once each, in ascending order")

        def join() -> None:
            if not directory.is_dir():
                raise ObjectNotFound("no such multipart upload")
            files = []
            for i, part in enumerate(parts):
                data = directory / f"{part.number:05d}"
                etag_file = directory / f"{part.number:05d}.etag"
                if not etag_file.exists() or etag_file.read_text() != _quoted(part.etag):
                    raise StorageError(f"part {part.number}: missing or ETag differs")
                if i < len(parts) - 1 and data.stat().st_size < MIN_PART_BYTES:
                    raise StorageError(f"part {part.number}: smaller than the 5 MiB minimum")
                files.append(data)
            with tmp.open("wb") as out:
                for data in files:
                    with data.open("rb") as src:
                        shutil.copyfileobj(src, out, CHUNK_BYTES)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
            shutil.rmtree(directory, ignore_errors=True)

        try:
            await asyncio.to_thread(join)
        finally:
            tmp.unlink(missing_ok=True)

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._mp_dir(multipart_id), True)

    def content_type_of(self, key: str) -> str:
        return mimetypes.guess_type(key)[0] or "application/octet-stream"


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


# --------------------------------------------------------------------------- S3


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


class S3Storage(Storage):
    """Through the process's one aiobotocore client (SigV4, see ``server.app.storage_ctx``)."""

    name = "s3"

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    async def check(self) -> None:
        await self.client.head_bucket(Bucket=self.bucket)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        f = await asyncio.to_thread(path.open, "rb")
        try:
            await self.client.put_object(
                Bucket=self.bucket, Key=check_key(key), Body=f, ContentType=content_type
            )
        finally:
            f.close()

    async def open(self, key: str) -> AsyncIterator[bytes]:
        try:
            resp = await self.client.get_object(Bucket=self.bucket, Key=check_key(key))
        except Exception as exc:
            if _is_missing(exc):
                raise ObjectNotFound(key) from None
            raise
        async with resp["Body"] as body:
            async for chunk in body.iter_chunks(CHUNK_BYTES):
                yield chunk

    async def head(self, key: str) -> int | None:
        try:
            resp = await self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise
        return int(resp["ContentLength"])

    async def delete(self, *keys: str) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": check_key(k)} for k in keys[start : start + 1000]]
            if batch:
                await self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )

    async def download_url(self, key: str, expires_s: int) -> str:
        url: str = await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": check_key(key)},
            ExpiresIn=expires_s,
        )
        return url

    async def presigned_post(
        self, key: str, content_type: str, max_size: int, expires_s: int
    ) -> PresignedPost:
        expires_at = _expiry(expires_s)
        post = await self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=check_key(key),
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_size]],
            ExpiresIn=expires_s,
        )
        fields = {str(k): str(v) for k, v in post["fields"].items()}
        return PresignedPost(str(post["url"]), fields, expires_at)

    async def create_multipart(self, key: str, content_type: str) -> str:
        resp = await self.client.create_multipart_upload(
            Bucket=self.bucket, Key=check_key(key), ContentType=content_type
        )
        return str(resp["UploadId"])

    async def part_url(
        self, key: str, multipart_id: str, number: int, size: int, expires_s: int
    ) -> str:
        # ContentLength becomes a signed header: S3 refuses a part of any other size.
        url: str = await self.client.generate_presigned_url(
            "upload_part",
            Params={"Bucket": self.bucket, "Key": check_key(key), "UploadId": multipart_id,
                    "PartNumber": number, "ContentLength": size},
            ExpiresIn=expires_s,
        )
        return url

    async def complete_multipart(self, key: str, multipart_id: str, parts: Sequence[Part]) -> None:
        from botocore.exceptions import ClientError

        try:
            await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=check_key(key), UploadId=multipart_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": _quoted(p.etag)}
                                           for p in parts]},
            )
        except ClientError as exc:
            if _is_missing(exc):
                raise ObjectNotFound("no such multipart upload") from None
            code = exc.response.get("Error", {}).get("Code", "")
            raise StorageError(f"multipart upload refused by the store ({code})") from None

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=check_key(key), UploadId=multipart_id
            )
        except Exception as exc:
            if not _is_missing(exc):
                raise


@contextlib.asynccontextmanager
async def open_storage(settings: Settings, secret_key: str) -> AsyncIterator[tuple[Storage, str]]:
    """Yield (storage, what it is): S3 when ``S3_BUCKET`` is set, else local disk under
    ``DATA_DIR/uploads`` with URLs signed by a key derived from ``secret_key``."""
    if settings.s3_bucket:
        from aiobotocore.session import get_session
        from botocore.config import Config

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
        )
        async with get_session().create_client(
            "s3",
            region_name=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        ) as client:
            yield S3Storage(client, settings.s3_bucket), f"s3 ({settings.s3_bucket})"
        return
    root = settings.data_path / "uploads"
    storage = LocalStorage(root, LocalStorage.derive_key(secret_key), url_base=settings.public_url)
    yield storage, f"local ({root})"
