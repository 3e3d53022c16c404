"""The one place lost & found emits ``notification`` events.

Issue #6 builds the notifications inbox (table + ``notifications.list``). Until it
is merged this only appends the durable ``notification`` event; at merge, this
function also writes the inbox rows, in the same transaction.

One notification is shared by a batch of recipients (one ``tx.append`` for the
batch keeps the fan-out to a few statements per 500 users); its id is derived
from its source (kind + alert/sighting id), so a redone batch produces the same id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from protocol.notifications import NotificationEvent
from protocol.objects import Notification
from server.realtime.stream import Transaction

_NAMESPACE = uuid.UUID("6f0c3f55-5f1c-4d0e-9d57-4c6a1a0b7e11")


def notification_id(kind: str, source_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{source_id}"))


async def notify(
    tx: Transaction, user_ids: Sequence[str], *, kind: str, source_id: str, title: str,
    body: str, data: dict[str, Any],
) -> dict[str, int]:
    """Append one ``notification`` event to each user; returns user_id → seq."""
    if not user_ids:
        return {}
    note = Notification(
        id=notification_id(kind, source_id), kind=kind, title=title, body=body, data=data,
        created_at=datetime.now(UTC),
    )
    return await tx.append(user_ids, NotificationEvent(seq=0, notification=note))
