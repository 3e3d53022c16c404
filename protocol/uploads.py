"""Uploads: the HTTP request/response bodies (untagged) and the moderation event."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta

from protocol.base import DurableEvent
from protocol.objects import Upload, UploadPurpose, UploadStatus
from protocol.types import ContentType, Id, Timestamp

__all__ = [
    "CompleteRequest",
    "CompletedPart",
    "MultipartResponse",
    "PresignRequest",
    "PresignResponse",
    "UploadModerated",
    "UploadPart",
    "UploadPurpose",
    "UploadResponse",
    "UploadVariant",
]


class PresignRequest(msgspec.Struct, kw_only=True):
    """``POST /api/v1/uploads/presign``: ask for a direct-to-storage upload form.
    The server checks ``content_type`` and ``size`` against the purpose's limits
    (415 / 413)."""

    content_type: ContentType
    size: Annotated[int, Meta(ge=1)]
    purpose: UploadPurpose


class PresignResponse(msgspec.Struct, kw_only=True):
    """201: POST the file to ``url`` as a form with ``fields`` plus ``file``, before
    ``expires_at``; then call ``/uploads/{upload_id}/complete``."""

    upload_id: Id
    url: str
    fields: dict[str, str]
    expires_at: Timestamp


class UploadResponse(msgspec.Struct, kw_only=True):
    """``{upload}``: answer of upload, complete and get."""

    upload: Upload


class UploadVariant(StrEnum):
    """``GET /api/v1/uploads/{id}?variant=``: which file ``upload.url`` points at."""

    IMAGE = "image"
    """The cleaned image (the default)."""
    THUMBNAIL = "thumbnail"
    """The 320 px WebP thumbnail."""


class UploadModerated(DurableEvent, tag="upload.moderated", kw_only=True):
    """To the uploader: moderation decided ``approved`` or ``rejected``."""

    upload_id: Id
    status: UploadStatus


# --- resumable multipart uploads (added by the uploads branch; see docs/protocol.md) ---

PartNumber = Annotated[int, Meta(ge=1, le=10_000)]


class UploadPart(msgspec.Struct, kw_only=True):
    """One part to PUT: exactly ``size`` bytes to ``url``; keep the response's ``ETag``."""

    part_number: PartNumber
    size: Annotated[int, Meta(ge=1)]
    url: str


class MultipartResponse(msgspec.Struct, kw_only=True):
    """201 of ``POST /api/v1/uploads/multipart`` (body: a ``PresignRequest``)."""

    upload_id: Id
    part_size: Annotated[int, Meta(ge=1)]
    parts: list[UploadPart]
    expires_at: Timestamp


class CompletedPart(msgspec.Struct, kw_only=True):
    part_number: PartNumber
    etag: Annotated[str, Meta(min_length=1, max_length=256)]


class CompleteRequest(msgspec.Struct, kw_only=True):
    """Optional body of ``POST /api/v1/uploads/{id}/complete``: ``parts`` is required
    for a multipart upload (every part, ascending), absent for a presigned POST."""

    parts: list[CompletedPart] | None = None
