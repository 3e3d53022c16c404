"""Acks made visible to every node: each user's highest acked seq in ``stream_acks``.

A socket's ``ack {seq}`` (PROTOCOL §4) says its client has processed every event up to
``seq``. The push worker, on whichever node, must not push a notification whose event a
socket of the user has acked (§10.6), so the highest ack per user is written to
PostgreSQL — but never on the socket's read path:

- ``record(user_id, seq)`` only updates a dict (the highest seq per user since the last
  flush) and returns; it never awaits.
- A background task writes the whole dict every ``ACK_FLUSH_S`` in one statement
  (``GREATEST``: acks only move forward, whichever node writes last). Users are written
  in sorted order, so two nodes' flushes cannot deadlock.
- ``stop`` writes what is left. A crash loses at most one interval of acks; the
  consequence is a push the user did not need, never a lost event.

A flush that fails (PostgreSQL away) keeps its acks for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

log = logging.getLogger(__name__)

MAX_PENDING_USERS = 100_000
"""Past this many users with unflushed acks, new users' acks are dropped until a flush
succeeds (a long PostgreSQL outage must not grow memory without bound)."""


class AckRecorder:
    def __init__(self, pool: asyncpg.Pool, flush_s: float) -> None:
        self._pool = pool
        self._flush_s = flush_s
        self._pending: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def record(self, user_id: str, seq: int) -> None:
        """Remember that a socket of ``user_id`` acked ``seq`` (written at the next flush)."""
        if seq <= 0:
            return
        current = self._pending.get(user_id)
        if current is None:
            if len(self._pending) >= MAX_PENDING_USERS:
                return
            self._pending[user_id] = seq
            self._wake.set()
        elif seq > current:
            self._pending[user_id] = seq

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ack-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    async def flush(self) -> int:
        """Write every pending ack now; the number of users written."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        users = sorted(batch)
        try:
            await self._pool.execute(
                """INSERT INTO stream_acks AS a (user_id, acked_seq)
                   SELECT * FROM unnest($1::uuid[], $2::bigint[])
                   ON CONFLICT (user_id) DO UPDATE
                   SET acked_seq = GREATEST(a.acked_seq, excluded.acked_seq), updated_at = now()
                   WHERE excluded.acked_seq > a.acked_seq""",
                users, [batch[u] for u in users],
            )
        except BaseException:
            for user_id, seq in batch.items():  # keep them for the next flush
                if seq > self._pending.get(user_id, 0):
                    self._pending[user_id] = seq
            raise
        return len(users)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Gather for one interval, so a burst of acks is one statement.
            await asyncio.sleep(self._flush_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # PostgreSQL away, pool closing: retry next interval
                log.warning("acks not written; will retry", extra={"error": repr(exc)})
                self._wake.set()
