"""Uploads: the HTTP request/response bodies (untagged).

Placeholder written on the ``uploads`` branch with exactly the names and fields
of the ``protocol`` branch's version; on merge, the ``protocol`` branch's file
wins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from protocol.objects import Upload, UploadPurpose

__all__ = ["PresignRequest", "PresignResponse", "UploadPurpose", "UploadResponse"]

ContentType = Annotated[str, Meta(min_length=3, max_length=255, pattern=r"^[\w.+-]+/[\w.+-]+$")]


class PresignRequest(msgspec.Struct, kw_only=True):
    content_type: ContentType
    size: Annotated[int, Meta(ge=1)]
    purpose: UploadPurpose


class PresignResponse(msgspec.Struct, kw_only=True):
    upload_id: str
    url: str
    fields: dict[str, str]
    expires_at: datetime


class UploadResponse(msgspec.Struct, kw_only=True):
    upload: Upload
