"""Core objects of PROTOCOL §8 (uploads subset).

Placeholder written on the ``uploads`` branch with exactly the names and fields
of the ``protocol`` branch's version; on merge, the ``protocol`` branch's file
wins.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class UploadStatus(StrEnum):
    """Moderation state of an upload; a new upload is ``pending``."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class UploadPurpose(StrEnum):
    PET_PHOTO = "pet_photo"
    CHAT_ATTACHMENT = "chat_attachment"
    LOST_POSTER = "lost_poster"
    ADOPTION_PHOTO = "adoption_photo"
    AVATAR = "avatar"


class Upload(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An uploaded file. ``url`` is a short-lived download URL, present when the
    requester may download it."""

    id: str
    owner_id: str
    purpose: UploadPurpose
    content_type: str
    size: int
    status: UploadStatus
    url: str | None = None
    created_at: datetime
