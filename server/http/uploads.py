"""Upload routes (PROTOCOL §9; client guide in README "Uploads").

- ``POST /api/v1/uploads`` multipart ``purpose`` then ``file`` → 201 ``{upload}``
- ``POST /api/v1/uploads/presign`` ``{content_type, size, purpose}`` → 201
  ``{upload_id, url, fields, expires_at}``
- ``POST /api/v1/uploads/multipart`` (same body) → 201 ``{upload_id, part_size,
  parts: [{part_number, size, url}], expires_at}``
- ``POST /api/v1/uploads/{id}/complete`` ``{parts?: [{part_number, etag}]}`` → 200 ``{upload}``
- ``GET /api/v1/uploads/{id}[?variant=thumbnail]`` → 200 ``{upload}`` with a short-lived ``url``

Every route needs a credential (bearer token or session cookie). Limits:
``UPLOAD_PER_HOUR`` creations per user (direct, presign and multipart starts)
and ``UPLOAD_BYTES_PER_DAY`` → 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import msgspec
from aiohttp import web

from protocol.objects import Upload, UploadPurpose
from protocol.uploads import (
    CompleteRequest,
    MultipartResponse,
    PresignRequest,
    PresignResponse,
    UploadPart,
    UploadResponse,
    UploadVariant,
)
from server.domain.uploads.service import UploadService, size_cap, spool, to_wire
from server.errors import AppError, BadRequest, TooLarge, UnsupportedMediaType
from server.http.authenticate import authenticate
from server.http.body import FormReader
from server.http.json_body import decode_json_body
from server.resources.storage import CHUNK_BYTES, Part
from server.state import RUNTIME, SETTINGS

_FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the purpose field
_PURPOSES = ", ".join(p.value for p in UploadPurpose)

def _json(status: int, value: msgspec.Struct) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(value),
                        content_type="application/json")


def absolute_url(request: web.Request, url: str) -> str:
    """Every URL in a response is absolute, so ``<img src>`` works from any page: a
    root-relative one (the local store's) gets ``PUBLIC_URL``, else the request's own
    scheme and host (set ``PUBLIC_URL`` behind a proxy)."""
    if url.startswith(("https://", "http://")):
        return url
    base = request.app[SETTINGS].public_url or f"{request.scheme}://{request.host}"
    return base.rstrip("/") + url


def _with_absolute_url(request: web.Request, upload: Upload) -> Upload:
    if upload.url is None:
        return upload
    return msgspec.structs.replace(upload, url=absolute_url(request, upload.url))


def _uploads(request: web.Request) -> UploadService:
    return request.app[RUNTIME].uploads


async def create_upload(request: web.Request) -> web.StreamResponse:
    """The direct flow: the file is streamed to a temporary file, never held in memory."""
    principal = await authenticate(request)
    app = request.app
    settings = app[SETTINGS]
    service = _uploads(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaType("expected multipart/form-data with fields purpose and file")
    largest = max(settings.upload_max_bytes, settings.upload_avatar_max_bytes)
    if request.content_length is not None and request.content_length > largest + _FORM_OVERHEAD:
        raise TooLarge(f"file: at most {largest} bytes")
    await service.count_creation(principal.user_id)
    await service.check_daily_bytes(principal.user_id)

    workdir = service.workdir()
    try:
        form = await FormReader.open(request)
        purpose: UploadPurpose | None = None
        raw: Path | None = None
        size = 0
        while (part := await form.next()) is not None:
            if part.name == "purpose":
                text = (await form.small_field(part, 64)).strip()
                try:
                    purpose = UploadPurpose(text)
                except ValueError:
                    raise BadRequest(f"purpose: expected one of {_PURPOSES}") from None
            elif part.name == "file":
                if raw is not None:
                    raise BadRequest("file: exactly one file per upload")
                # With purpose first (documented) the purpose's cap applies while
                # streaming; otherwise the largest cap does, and the purpose's after.
                cap = size_cap(settings, purpose, large=False) if purpose else largest
                raw = workdir / "raw"

                def too_large(cap: int = cap) -> AppError:
                    return TooLarge(f"file: at most {cap} bytes")

                size = await spool(form.chunks(part, CHUNK_BYTES), raw, cap, too_large,
                                   sniff=True)
            else:
                await form.small_field(part, 1024)  # unknown small fields are ignored
        if purpose is None:
            raise BadRequest(f"purpose: required, one of {_PURPOSES}")
        if raw is None or size == 0:
            raise BadRequest("file: required")
        row = await service.create_from_file(principal.user_id, purpose, raw, size)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
    url = None
    if row.object_key and row.status != "rejected":
        url = await service.storage.download_url(row.object_key, settings.upload_url_ttl_s)
    return _json(201, UploadResponse(upload=_with_absolute_url(request, to_wire(row, url))))


async def presign(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    body = await decode_json_body(request, PresignRequest)
    await _uploads(request).count_creation(principal.user_id)
    row, post = await _uploads(request).presign(
        principal.user_id, body.content_type, body.size, body.purpose
    )
    return _json(201, PresignResponse(upload_id=row.id, url=absolute_url(request, post.url),
                                      fields=post.fields,
                                      expires_at=post.expires_at))


async def start_multipart(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    body = await decode_json_body(request, PresignRequest)
    await _uploads(request).count_creation(principal.user_id)
    started = await _uploads(request).start_multipart(
        principal.user_id, body.content_type, body.size, body.purpose
    )
    parts = [UploadPart(part_number=p.part_number, size=p.size,
                        url=absolute_url(request, p.url))
             for p in started.parts]
    return _json(201, MultipartResponse(upload_id=started.row.id, part_size=started.part_size,
                                        parts=parts, expires_at=started.row.expires_at))


async def complete(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    parts: list[Part] | None = None
    if request.can_read_body:
        body = await decode_json_body(request, CompleteRequest)
        if body.parts is not None:
            parts = [Part(p.part_number, p.etag) for p in body.parts]
    service = _uploads(request)
    row = await service.complete(principal.user_id, request.match_info["id"], parts)
    upload = await service.get(principal.user_id, row.id)
    return _json(200, UploadResponse(upload=_with_absolute_url(request, upload)))


async def get_upload(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    try:
        variant = UploadVariant(request.query.get("variant", UploadVariant.IMAGE))
    except ValueError:
        raise BadRequest(f"variant: expected one of {', '.join(UploadVariant)}") from None
    upload = await _uploads(request).get(principal.user_id, request.match_info["id"],
                                         variant.value)
    return _json(200, UploadResponse(upload=_with_absolute_url(request, upload)))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/uploads", create_upload)
    app.router.add_post("/api/v1/uploads/presign", presign)
    app.router.add_post("/api/v1/uploads/multipart", start_multipart)
    app.router.add_post("/api/v1/uploads/{id}/complete", complete)
    app.router.add_get("/api/v1/uploads/{id}", get_upload, allow_head=False)

