"""Uploads: the HTTP request/response bodies (untagged) and the moderation event."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from protocol.base import DurableEvent
from protocol.objects import Upload, UploadPurpose, UploadStatus
from protocol.types import ContentType, Id, Timestamp

__all__ = [
    "PresignRequest",
    "PresignResponse",
    "UploadModerated",
    "UploadPurpose",
    "UploadResponse",
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


class UploadModerated(DurableEvent, tag="upload.moderated", kw_only=True):
    """To the uploader: moderation decided ``approved`` or ``rejected``."""

    upload_id: Id
    status: UploadStatus
