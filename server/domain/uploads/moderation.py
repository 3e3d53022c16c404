"""Moderation: the automatic check interface and the one function that decides.

Every new upload is ``pending``. ``moderate_upload`` moves it to ``approved``
or ``rejected`` and, in the same transaction, appends the durable
``upload.moderated`` event to the uploader's stream. It is called by:

- the automatic check right after processing (``Moderator.check`` returned a
  decision other than ``pending``);
- the admin command ``admin.moderation.decide`` (a later issue).

``Moderator`` is the plug for an external moderation API. The default,
``NoModerator``, decides nothing: uploads stay ``pending`` for a human. A
check that fails or takes longer than ``timeout_s`` also leaves the upload
``pending`` (failing closed to the queue, not open to the public).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Literal

import msgspec

from protocol.objects import UploadStatus
from protocol.uploads import UploadModerated
from server.domain.uploads import store
from server.domain.uploads.store import UploadRow
from server.realtime.stream import Transaction

Decision = Literal["pending", "approved", "rejected"]


class ImageInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a check sees: the clean image (readable at ``path`` during the check only)."""

    upload_id: str
    owner_id: str
    purpose: str
    content_type: str
    width: int
    height: int
    size: int
    path: Path


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    status: Decision = "pending"
    reason: str | None = None


class Moderator(abc.ABC):
    """An automatic check. ``pending`` leaves the decision to a human."""

    timeout_s: float = 10.0

    @abc.abstractmethod
    async def check(self, image: ImageInfo) -> Verdict: ...


class NoModerator(Moderator):
    """The default: no automatic decision."""

    async def check(self, image: ImageInfo) -> Verdict:
        return Verdict()


async def moderate_upload(
    tx: Transaction, upload_id: str, status: Literal["approved", "rejected"], reason: str | None
) -> UploadRow | None:
    """Decide an upload and tell its uploader, atomically.

    Returns the updated row, or None when there was nothing to change (unknown
    id, not yet processed, or already in that state) — then no event is sent.
    """
    row = await store.update_upload_moderation(tx.conn, upload_id, status, reason)
    if row is None:
        return None
    event = UploadModerated(seq=0, upload_id=row.id, status=UploadStatus(status))
    await tx.append([row.owner_id], event)
    return row
