"""The durable fan-out of ``lost.alert`` to watchers (and of resolutions to recipients).

Guarantees:
- Small fan-outs never reach the runner: up to ``LOST_INLINE_FANOUT_MAX`` watchers
  (or recipients of a resolution) are sent the alert inside the report's (resolve's)
  own transaction (``send_alert``), so it commits with the alert or not at all.
- Beyond that, a job row is committed with the alert (or its resolution);
  ``lost.report`` answers without waiting for any watcher, and every node's runner is
  woken at once (``WAKE_TOPIC`` broadcast; the poll is only a safety net).
- Each batch is ONE transaction: claim the job (``FOR UPDATE SKIP LOCKED``, so
  any node may run it and two nodes never run the same job at once), read the
  alert ``FOR SHARE`` (a resolve waits for an in-flight batch, and a batch after
  the resolve sees it), pick at most ``batch_size`` recipients in user-id order
  after the job's cursor, record them in ``lost_alert_recipients`` (primary key:
  each user at most once per alert), append their events, move the cursor. A
  crash rolls back only the uncommitted batch; the next claim redoes it. So
  every watcher gets the alert exactly once.
- An alert job stops as soon as the alert is no longer open. A ``resolved`` job
  sends the resolved alert (``lost.alert`` with ``status: resolved``) to every
  user recorded as having been sent it; since the resolve waited for in-flight
  batches, that list is complete when the job runs.
- Runners wake on ``wake()`` (called after each queued job on this node and on every
  node's ``WAKE_TOPIC`` broadcast) and poll every ``poll_s`` for jobs whose wake-up was
  lost (broker down) or left by a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from protocol.lost import LostAlert
from server.domain.lost_found import store
from server.domain.lost_found.objects import alert_for
from server.domain.notifications.service import notify
from server.realtime.presence import Presence
from server.realtime.stream import EventStream, Transaction

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500  # recipients per transaction: bounds the user_streams row locks
DEFAULT_POLL_S = 5.0


WAKE_TOPIC = "lost.fanout"
"""``Node.broadcast`` topic: a fan-out job was committed; every node's runner looks now."""


async def send_alert(tx: Transaction, presence: Presence, alert: asyncpg.Record,
                     watchers: list[str]) -> list[str]:
    """In ``tx``: record ``watchers`` (user-id order) as sent the alert, and append
    ``lost.alert`` plus a notification to those not recorded before (returned)."""
    users = await store.insert_recipients(tx.conn, alert["id"], watchers)
    if users:
        public = alert_for(alert, None)
        await notify(tx, presence, users, kind="lost.alert", title="A pet is lost near you",
                     body=public.description[:140], data={"alert_id": alert["id"]},
                     after=LostAlert(seq=0, alert=public))
    return users


class FanoutRunner:
    def __init__(self, stream: EventStream, presence: Presence, *,
                 batch_size: int = DEFAULT_BATCH_SIZE, poll_s: float = DEFAULT_POLL_S) -> None:
        self.stream = stream
        self.presence = presence
        self.batch_size = batch_size
        self.poll_s = poll_s
        # Test hook: awaited after a batch's work, before its commit (raise to "crash").
        self.before_commit: Callable[[], Awaitable[None]] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run_batch(self) -> bool:
        """Do one batch of the oldest unclaimed job; False when there was none."""
        async with self.stream.transaction() as tx:
            job = await store.select_next_fanout_job(tx.conn)
            if job is None:
                return False
            alert = await store.select_alert(tx.conn, job["alert_id"], lock="FOR SHARE")
            picked: list[str] = []  # this batch's recipients, in user-id order
            users: list[str] = []  # those of them not sent this alert before
            if alert is None:
                done = True
            elif job["kind"] == "alert":
                if alert["status"] != "open":
                    done = True  # resolved meanwhile: nobody else hears of it
                else:
                    picked = await store.select_watchers_after(
                        tx.conn, lat=alert["lat"], lng=alert["lng"],
                        radius_m=alert["radius_m"], exclude_user_id=alert["owner_id"],
                        after_user_id=job["cursor_user_id"], limit=self.batch_size,
                    )
                    users = await send_alert(tx, self.presence, alert, picked)
                    done = len(picked) < self.batch_size
            else:  # resolved
                picked = await store.select_recipients_after(
                    tx.conn, alert["id"], job["cursor_user_id"], self.batch_size)
                users = picked
                done = len(picked) < self.batch_size
                if users:
                    await tx.append(users, LostAlert(seq=0, alert=alert_for(alert, None)))
            await store.update_fanout_job(
                tx.conn, job["id"], cursor_user_id=picked[-1] if picked else None,
                delivered=len(users), done=done,
            )
            if self.before_commit is not None:
                await self.before_commit()
        return True

    async def drain(self) -> int:
        """Run batches until no job is left (or all are held by other nodes)."""
        batches = 0
        while await self.run_batch():
            batches += 1
        return batches

    async def run(self) -> None:
        backoff = 0.1
        while True:
            self._wake.clear()
            try:
                await self.drain()
                backoff = 0.1
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("lost & found fan-out failed; will retry",
                            extra={"error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.poll_s)
                continue
            except Exception:
                # A bug must not kill the runner for good; the batch rolled back and is
                # retried (a job that always fails is retried forever: see the README).
                log.exception("lost & found fan-out batch crashed; will retry")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.poll_s)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="lost-fanout")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
