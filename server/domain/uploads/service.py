"""Upload rules: caps, quotas, the three flows, processing, visibility, cleanup.

Flows (PROTOCOL §9; client guide in README "Uploads"):

- direct: the app receives the file (``POST /api/v1/uploads``), spools it to a
  temporary file with the purpose's cap, and processes it at once.
- presigned: ``presign`` reserves an id and returns a form for the store; the
  client uploads there; ``complete`` verifies and processes the object.
- multipart (resumable): ``start_multipart`` returns one presigned PUT URL per
  part; the client uploads (and retries) parts, then ``complete`` with the
  parts' ETags.

Processing (``_process``) runs the image pipeline in a worker thread under a
per-process semaphore (``UPLOAD_PROCESS_CONCURRENCY``), stores the clean image
and its thumbnail under ``uploads/<id>/``, runs the automatic moderation check
and records the result. Raw bytes never stay in the store: a presigned
object under ``incoming/<id>`` is deleted once processed or refused.

Refusals are final (the row and its objects are deleted: the client starts
again); "not uploaded yet" and storage hiccups are not (the upload goes back
to ``awaiting_upload`` and ``complete`` may be called again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from protocol.objects import Upload, UploadPurpose, UploadStatus
from server.deps import Deps
from server.domain.uploads import image, store
from server.domain.uploads.moderation import ImageInfo, Moderator, Verdict, moderate_upload
from server.domain.uploads.store import UploadRow
from server.errors import (
    AppError,
    BadRequest,
    Conflict,
    NotFound,
    RateLimited,
    TooLarge,
    UnsupportedMediaType,
)
from server.ids import parse_id
from server.resources.storage import (
    MAX_PARTS,
    ObjectNotFound,
    Part,
    PresignedPost,
    StorageError,
)
from server.settings import Settings

log = logging.getLogger(__name__)

THUMB_TYPE = "image/webp"


@dataclass(frozen=True)
class PartTarget:
    part_number: int
    size: int
    url: str


@dataclass(frozen=True)
class MultipartStart:
    row: UploadRow
    part_size: int
    parts: list[PartTarget]


def size_cap(settings: Settings, purpose: str, *, large: bool) -> int:
    """The most bytes one upload of ``purpose`` may have; ``large`` for the store-direct flows."""
    if purpose == UploadPurpose.AVATAR:
        return settings.upload_avatar_max_bytes
    return settings.upload_large_max_bytes if large else settings.upload_max_bytes


def _upload_id(value: str) -> str:
    """An id that cannot be one of ours is an upload that does not exist (404)."""
    parsed = parse_id(value)
    if parsed is None:
        raise NotFound("upload: not found")
    return parsed


def _refusal(exc: image.ImageRefused) -> AppError:
    if isinstance(exc, image.UnsupportedImage):
        return UnsupportedMediaType(f"file: {exc.message}")
    if isinstance(exc, image.ImageTooLarge):
        return TooLarge(f"file: {exc.message}")
    return BadRequest(f"file: {exc.message}")


async def spool(
    chunks: AsyncIterator[bytes],
    dest: Path,
    limit: int,
    too_large: Callable[[], AppError],
    *,
    sniff: bool = False,
) -> int:
    """Write a byte stream to ``dest``; raise ``too_large()`` the moment ``limit`` is crossed.

    With ``sniff``, the first bytes must look like a supported image (415 at
    once otherwise, before the rest is read). Memory use is one chunk,
    whatever the stream's length.
    """
    size = 0
    head = b""
    f = await asyncio.to_thread(dest.open, "wb")
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large()
            if sniff and len(head) < image.SNIFF_BYTES:
                head += chunk[: image.SNIFF_BYTES - len(head)]
                if len(head) >= image.SNIFF_BYTES and image.sniff(head) is None:
                    raise UnsupportedMediaType(f"file: {image.unsupported_message()}")
            await asyncio.to_thread(f.write, chunk)
    finally:
        await asyncio.to_thread(f.close)
    if sniff and image.sniff(head) is None:
        raise UnsupportedMediaType(f"file: {image.unsupported_message()}")
    return size


class UploadService:
    """The upload flows, processing, visibility and the abandoned-upload sweeper.

    ``moderator`` is the automatic check (``NoModerator`` by default: a human decides)."""

    def __init__(self, deps: Deps, moderator: Moderator) -> None:
        settings = deps.settings
        self.pool = deps.db
        self.storage = deps.storage
        self.stream = deps.stream
        self.limiter = deps.limiter
        self.settings = settings
        self.moderator = moderator
        self.tmp_root = settings.data_path / "tmp" / "uploads"
        self.cpu = asyncio.Semaphore(settings.upload_process_concurrency)
        self._sweeper: asyncio.Task[None] | None = None
        image.release_freed_pixels()
        self.tmp_root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the periodic sweep of abandoned uploads (on every node; jittered)."""
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="upload-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        every_s = self.settings.upload_cleanup_interval_s
        while True:
            await asyncio.sleep(every_s * random.uniform(0.5, 1.0))
            try:
                deleted = await self.sweep_abandoned()
                if deleted:
                    log.info("abandoned uploads deleted", extra={"deleted": deleted})
                await self.sweep_stray_uploads()
            except Exception:  # a failed sweep is retried at the next interval
                log.warning("sweeping abandoned uploads failed", exc_info=True)

    # ------------------------------------------------------------------ creation limits

    async def count_creation(self, owner_id: str) -> None:
        """One more upload started (direct, presign or multipart): ``UPLOAD_PER_HOUR``."""
        limit = self.settings.upload_per_hour
        await self.limiter.take(f"uploads:{owner_id}", limit, 3600.0,
                                f"uploads: at most {limit} per hour")

    def workdir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="upload-", dir=self.tmp_root))

    # ------------------------------------------------------------------ quotas

    async def check_daily_bytes(self, owner_id: str, incoming: int = 1) -> None:
        """RateLimited when ``incoming`` more bytes would exceed the owner's 24-hour quota."""
        async with self.pool.acquire() as conn:
            used, oldest = await store.select_bytes_last_day(conn, owner_id)
        self._raise_if_over(used, oldest, incoming)

    def _raise_if_over(self, used: int, oldest: datetime | None, incoming: int) -> None:
        quota = self.settings.upload_bytes_per_day
        if used + incoming <= quota:
            return
        retry = 3600.0
        if oldest is not None:
            retry = max(1.0, (oldest + timedelta(days=1) - datetime.now(UTC)).total_seconds())
        raise RateLimited(
            f"uploads: at most {quota} bytes per 24 hours ({used} used)", retry_after_s=retry
        )

    async def _insert_within_quota(self, owner_id: str, nbytes: int, **values: object) -> UploadRow:
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_owner(conn, owner_id)
            used, oldest = await store.select_bytes_last_day(conn, owner_id)
            self._raise_if_over(used, oldest, nbytes)
            return await store.insert_upload(conn, owner_id=owner_id, received_bytes=nbytes,
                                             **values)

    def _deadline(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.settings.upload_presign_ttl_s)

    # ------------------------------------------------------------------ direct flow

    async def create_from_file(
        self, owner_id: str, purpose: UploadPurpose, path: Path, size: int
    ) -> UploadRow:
        """Process a file the app received itself (already capped and sniffed by ``spool``)."""
        if size > size_cap(self.settings, purpose, large=False):
            raise TooLarge(f"file: at most {size_cap(self.settings, purpose, large=False)} bytes")
        kind = image.sniff(await asyncio.to_thread(_read_head, path))
        if kind is None:
            raise UnsupportedMediaType(f"file: {image.unsupported_message()}")
        row = await self._insert_within_quota(
            owner_id, size, id=str(uuid.uuid4()), purpose=str(purpose), status="processing",
            flow="direct", content_type=kind.content_type, size=size,
            expires_at=self._deadline(),
        )
        try:
            return await self._process(row, path)
        except BaseException:
            await self._discard(row)
            raise

    # ------------------------------------------------------------------ presigned flows

    def _check_declared(self, content_type: str, size: int, purpose: UploadPurpose) -> None:
        if content_type.lower() not in image.SUPPORTED_TYPES:
            raise UnsupportedMediaType(f"content_type: {image.unsupported_message()}")
        cap = size_cap(self.settings, purpose, large=True)
        if size > cap:
            raise TooLarge(f"size: at most {cap} bytes for {purpose}")

    async def presign(
        self, owner_id: str, content_type: str, size: int, purpose: UploadPurpose
    ) -> tuple[UploadRow, PresignedPost]:
        self._check_declared(content_type, size, purpose)
        upload_id = str(uuid.uuid4())
        key = f"incoming/{upload_id}"
        row = await self._insert_within_quota(
            owner_id, size, id=upload_id, purpose=str(purpose), status="awaiting_upload",
            flow="presigned", content_type=content_type.lower(), size=size, incoming_key=key,
            expires_at=self._deadline(),
        )
        post = await self.storage.presigned_post(
            key, content_type.lower(), max_size=size, expires_s=self.settings.upload_presign_ttl_s
        )
        return row, post

    async def start_multipart(
        self, owner_id: str, content_type: str, size: int, purpose: UploadPurpose
    ) -> MultipartStart:
        self._check_declared(content_type, size, purpose)
        part_size = self.settings.upload_part_bytes
        count = math.ceil(size / part_size)
        if count > MAX_PARTS:
            raise TooLarge(f"size: at most {MAX_PARTS} parts of {part_size} bytes")
        upload_id = str(uuid.uuid4())
        key = f"incoming/{upload_id}"
        ttl = self.settings.upload_presign_ttl_s
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_owner(conn, owner_id)
            used, oldest = await store.select_bytes_last_day(conn, owner_id)
            self._raise_if_over(used, oldest, size)
            multipart_id = await self.storage.create_multipart(key, content_type.lower())
            row = await store.insert_upload(
                conn, id=upload_id, owner_id=owner_id, purpose=str(purpose),
                status="awaiting_upload", flow="multipart", content_type=content_type.lower(),
                size=size, received_bytes=size, incoming_key=key, multipart_id=multipart_id,
                part_size=part_size, expires_at=self._deadline(),
            )
        parts = []
        for number in range(1, count + 1):
            length = min(part_size, size - (number - 1) * part_size)
            url = await self.storage.part_url(key, multipart_id, number, length, ttl)
            parts.append(PartTarget(number, length, url))
        return MultipartStart(row, part_size, parts)

    async def complete(
        self, owner_id: str, upload_id: str, parts: list[Part] | None = None
    ) -> UploadRow:
        """Verify and process a presigned upload. Completing a finished upload returns it."""
        upload_id = _upload_id(upload_id)
        settings = self.settings
        async with self.pool.acquire() as conn:
            row = await store.update_upload_claim(
                conn, upload_id, owner_id, settings.upload_abandon_grace_s,
                settings.upload_presign_ttl_s,
            )
            if row is None:
                current = await store.select_upload(conn, upload_id)
                if current is None or current.owner_id != owner_id:
                    raise NotFound("upload: not found")
                if current.status in ("pending", "approved", "rejected"):
                    return current
                if current.status == "processing":
                    raise Conflict("upload: already being completed")
                raise Conflict("upload: the presigned upload expired; presign again")
        presign_deadline = row.created_at + timedelta(seconds=settings.upload_presign_ttl_s)
        assert row.incoming_key is not None
        try:
            size = await self.storage.head(row.incoming_key)
            if size is None and row.flow == "multipart":
                assert row.multipart_id is not None
                if not parts:
                    raise BadRequest("parts: the ETag of every part is required")
                try:
                    await self.storage.complete_multipart(row.incoming_key, row.multipart_id,
                                                          parts)
                except ObjectNotFound:
                    raise Conflict("upload: nothing has been uploaded yet") from None
                except StorageError as exc:
                    raise BadRequest(f"parts: {exc}") from None
                size = await self.storage.head(row.incoming_key)
            if size is None:
                raise Conflict("upload: nothing has been uploaded yet")
        except BaseException:
            await store.update_upload_release(self.pool, upload_id, presign_deadline)
            raise
        try:
            if size != row.size:
                raise BadRequest(f"size: the object has {size} bytes but {row.size} were declared")
            workdir = self.workdir()
            try:
                raw = workdir / "raw"
                await spool(self.storage.open(row.incoming_key), raw, row.size,
                            lambda: BadRequest("size: the object grew while being read"),
                            sniff=True)
                done = await self._process(row, raw)
            finally:
                await asyncio.to_thread(shutil.rmtree, workdir, True)
        except AppError:
            await self._discard(row)  # a refusal is final
            raise
        except BaseException:
            await store.update_upload_release(self.pool, upload_id, presign_deadline)
            raise
        await self._delete_quietly(row.incoming_key)
        return done

    # ------------------------------------------------------------------ processing

    async def _process(self, row: UploadRow, raw: Path) -> UploadRow:
        workdir = self.workdir()
        keys: list[str] = []
        try:
            async with self.cpu:
                try:
                    clean = await asyncio.to_thread(
                        image.process_image, raw, workdir,
                        max_pixels=self.settings.upload_max_pixels,
                        thumb_px=self.settings.upload_thumbnail_px,
                    )
                except image.ImageRefused as exc:
                    raise _refusal(exc) from None
            object_key = f"uploads/{row.id}/image.{clean.ext}"
            thumb_key = f"uploads/{row.id}/thumb.webp"
            keys = [object_key, thumb_key]
            await self.storage.put_file(object_key, clean.path, clean.content_type)
            await self.storage.put_file(thumb_key, clean.thumb_path, THUMB_TYPE)
            verdict = await self._auto_check(row, clean)
            async with self.stream.transaction() as tx:
                done = await store.update_upload_processed(
                    tx.conn, row.id, content_type=clean.content_type, size=clean.size,
                    width=clean.width, height=clean.height, object_key=object_key,
                    thumb_key=thumb_key,
                )
                if verdict.status != "pending":
                    decided = await moderate_upload(tx, row.id, verdict.status, verdict.reason)
                    done = decided or done
            return done
        except BaseException:
            if keys:
                await self._delete_quietly(*keys)
            raise
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def _auto_check(self, row: UploadRow, clean: image.CleanImage) -> Verdict:
        info = ImageInfo(
            upload_id=row.id, owner_id=row.owner_id, purpose=row.purpose,
            content_type=clean.content_type, width=clean.width, height=clean.height,
            size=clean.size, path=clean.path,
        )
        try:
            return await asyncio.wait_for(self.moderator.check(info), self.moderator.timeout_s)
        except Exception:
            log.exception("automatic moderation failed; upload stays pending",
                          extra={"upload_id": row.id})
            return Verdict()

    async def _discard(self, row: UploadRow) -> None:
        """Forget an upload: its row, its objects and any multipart upload (best effort)."""
        try:
            if row.multipart_id and row.incoming_key:
                await self.storage.abort_multipart(row.incoming_key, row.multipart_id)
            await self.storage.delete(*row.keys())
        except Exception:
            log.warning("could not delete a discarded upload's objects; the sweeper retries",
                        extra={"upload_id": row.id}, exc_info=True)
            return  # keep the row so the sweeper finds the objects again
        await store.delete_upload(self.pool, row.id)

    async def _delete_quietly(self, *keys: str) -> None:
        try:
            await self.storage.delete(*keys)
        except Exception:
            log.warning("could not delete objects", extra={"keys": list(keys)}, exc_info=True)

    # ------------------------------------------------------------------ reading

    async def get(self, viewer_id: str, upload_id: str, variant: str = "image") -> Upload:
        """The upload as the viewer may see it; NotFound if they may not (or it does not exist)."""
        row = await store.select_upload(self.pool, _upload_id(upload_id))
        if row is None or not (
            row.owner_id == viewer_id or (row.status == "approved" and row.public)
        ):
            raise NotFound("upload: not found")
        url = None
        key = row.thumb_key if variant == "thumbnail" else row.object_key
        if key and row.status in ("pending", "approved"):
            url = await self.storage.download_url(key, self.settings.upload_url_ttl_s)
        return to_wire(row, url)

    async def accepts_upload(self, key: str) -> bool:
        """Whether a presigned form may (still) store the object ``key``: only while its
        upload awaits it. Once ``complete`` has claimed it the form is spent (the local
        store's endpoint refuses it; see ``sweep_stray_uploads`` for S3)."""
        prefix, _, raw_id = key.partition("/")
        upload_id = parse_id(raw_id)
        if prefix != "incoming" or upload_id is None:
            return False
        row = await store.select_upload(self.pool, upload_id)
        return (row is not None and row.status == "awaiting_upload"
                and row.incoming_key == key)

    # ------------------------------------------------------------------ cleanup

    async def sweep_stray_uploads(self, batch: int = 1000) -> int:
        """Delete what a presigned form posted again after ``complete`` left behind.

        S3 accepts every validly signed POST until the form expires, so a second POST of a
        completed upload's form stores an object under ``incoming/<id>`` that nothing
        will read. Once the form has expired no more can come: every sweep deletes the
        incoming keys of uploads whose form expired within the last two sweep intervals
        (idempotent; missing keys are no error). Returns how many keys it deleted."""
        window = 2 * self.settings.upload_cleanup_interval_s
        async with self.pool.acquire() as conn:
            ids = await store.select_finished_presigned_ids(conn, window, batch)
        if ids:
            await self.storage.delete(*[f"incoming/{upload_id}" for upload_id in ids])
        return len(ids)

    async def sweep_abandoned(self, batch: int = 100) -> int:
        """Delete unfinished uploads past deadline + grace, and their objects.

        Safe on every node at once: rows are locked ``FOR UPDATE SKIP LOCKED``
        and deleted in the same transaction, after their objects; a crash leaves
        the row for the next sweep, never an object without a row.
        """
        total = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await store.select_abandoned_for_update(
                    conn, self.settings.upload_abandon_grace_s, batch
                )
                for row in rows:
                    if row.multipart_id and row.incoming_key:
                        await self.storage.abort_multipart(row.incoming_key, row.multipart_id)
                keys = [k for row in rows for k in row.keys()]
                if keys:
                    await self.storage.delete(*keys)
                if rows:
                    await store.delete_uploads(conn, [r.id for r in rows])
            total += len(rows)
            if len(rows) < batch:
                return total


def _read_head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(image.SNIFF_BYTES)


def to_wire(row: UploadRow, url: str | None) -> Upload:
    # awaiting_upload/processing are internal: to clients such an upload is
    # pending with nothing to download yet (url absent).
    status = row.status if row.status in ("approved", "rejected") else "pending"
    return Upload(
        id=row.id, owner_id=row.owner_id, purpose=UploadPurpose(row.purpose),
        content_type=row.content_type, size=row.size, status=UploadStatus(status), url=url,
        created_at=row.created_at,
    )
