"""Append durable events through the real event stream (domains arrive in later issues)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web

from protocol.notifications import NotificationEvent
from protocol.objects import Notification
from server.state import RUNTIME


def notification(title: str = "hello", body: str = "") -> NotificationEvent:
    return NotificationEvent(seq=0, notification=Notification(
        id=str(uuid.uuid4()), kind="test", title=title, body=body, data={},
        created_at=datetime.now(UTC)))


async def append(app: web.Application, user_ids: list[str], count: int = 1,
                 body: str = "") -> list[dict[str, int]]:
    """Append ``count`` notification events (each in its own transaction)."""
    out = []
    for i in range(count):
        async with app[RUNTIME].deps.stream.transaction() as tx:
            out.append(await tx.append(user_ids, notification(f"n{i}", body)))
    return out


async def append_batch(app: web.Application, user_ids: list[str], count: int,
                       body: str = "") -> None:
    """``count`` events in ONE transaction (one broker notice)."""
    async with app[RUNTIME].deps.stream.transaction() as tx:
        for i in range(count):
            await tx.append(user_ids, notification(f"b{i}", body))
