"""The durable per-user event stream (PROTOCOL §3): append in the change's transaction,
read back for resume and gap filling, publish after commit, prune old events.

Guarantees:
- ``Transaction.append`` gives each recipient the next seq of its stream (1, 2, 3 …,
  no gaps) inside the caller's transaction; if the transaction rolls back, so
  do the seqs.
- A user's seqs commit in order: appending locks the user's ``user_streams``
  row until commit, so no reader can see seq N+1 while N is uncommitted.
  Recipients are locked in sorted order, so two transactions appending to the
  same users cannot deadlock each other.
- After commit, every appended event is handed to ``publish`` (the node's, which
  announces them over the broker in one message). The broker may drop it; nodes then
  find the events by their periodic position check, which reads only the streams
  stamped with a ``change_id`` (one global sequence, taken on every append) lately.
- ``Transaction.signal(name)`` asks for this node's listeners of ``name``
  (``EventStream.listen``) to be called once after commit — e.g. to wake a worker for
  rows the transaction wrote. Never called if it rolls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
import msgspec

from protocol.base import DurableEvent
from protocol.codec import JSON
from server.observability.metrics import Metrics
from server.resources.outages import Outages

log = logging.getLogger(__name__)

READ_BATCH = 1000
"""Events one catch-up query reads (a 1,000-event resume is one query)."""
CHANGES_BATCH = 5000


@dataclass(frozen=True, slots=True)
class Appended:
    """One event appended for several users in a committed transaction."""

    template: bytes
    """The event as sent on the JSON sub-protocol, with ``"seq":0``."""
    seq_at: int
    """Offset of that ``0`` in ``template`` (see ``with_seq``)."""
    targets: list[tuple[str, int]]
    """(user_id, seq) for each recipient."""


Publish = Callable[[Sequence[Appended]], Awaitable[None]]
"""Announces committed events to every node; never raises (see ``Node.publish_events``)."""


def with_seq(template: bytes, seq_at: int, seq: int) -> bytes:
    """The event for one recipient: ``template`` (encoded with ``"seq":0``) with its seq.

    ``seq_at`` is the offset of that ``0``; see ``seq_offset``."""
    return b"%b%d%b" % (template[:seq_at], seq, template[seq_at + 1 :])


def seq_offset(template: bytes, tag: str) -> int:
    """Where ``"seq":0`` puts its 0 in an event encoded by ``protocol.codec.JSON``.

    msgspec writes the tag first and base-class fields (``seq``) next, so the
    prefix is fixed; it is checked, not assumed."""
    prefix = b'{"type":' + msgspec.json.encode(tag) + b',"seq":0'
    if not template.startswith(prefix):
        raise ValueError(f"unexpected event layout for {tag!r}: {template[:60]!r}")
    return len(prefix) - 1


@dataclass
class Transaction:
    """A database transaction that may append durable events. Use ``EventStream.transaction``."""

    conn: asyncpg.Connection
    appended: list[Appended] = field(default_factory=list)
    signals: set[str] = field(default_factory=set)

    def signal(self, name: str) -> None:
        """Call this node's ``name`` listeners once this transaction has committed."""
        self.signals.add(name)

    async def append(self, user_ids: Iterable[str], event: DurableEvent) -> dict[str, int]:
        """Append ``event`` to each user's stream; return user_id → seq.

        ``event.seq`` is ignored (build it with ``seq=0``); each stored copy
        carries its recipient's seq. The event is encoded once.
        """
        users = sorted(set(user_ids))
        if not users:
            return {}
        seqs = await self._next_seqs(users)
        tag = event.wire_type()
        template = JSON.encode(msgspec.structs.replace(event, seq=0))
        at = seq_offset(template, tag)
        ordered = [seqs[u] for u in users]
        await self._insert_events(users, ordered, [tag] * len(users),
                                  [with_seq(template, at, seq) for seq in ordered])
        self.appended.append(Appended(template, at, list(zip(users, ordered, strict=True))))
        return seqs

    async def append_each(self, events: dict[str, Sequence[DurableEvent]]
                          ) -> dict[str, list[int]]:
        """Append each user's own events (user_id → events, in that order) to their
        stream, in two statements however many users; return user_id → their seqs.

        An event object given to several users (the same instance) is encoded once and
        published as one group."""
        users = sorted(u for u, evs in events.items() if evs)
        if not users:
            return {}
        last = await self._next_seqs(users, [len(events[u]) for u in users])
        encoded: dict[int, tuple[str, bytes, int, list[tuple[str, int]]]] = {}
        ids, seqs, tags, payloads = [], [], [], []
        out: dict[str, list[int]] = {}
        for user in users:
            mine = events[user]
            first = last[user] - len(mine) + 1
            out[user] = list(range(first, last[user] + 1))
            for seq, event in zip(out[user], mine, strict=True):
                entry = encoded.get(id(event))
                if entry is None:
                    tag = event.wire_type()
                    template = JSON.encode(msgspec.structs.replace(event, seq=0))
                    entry = encoded[id(event)] = (tag, template, seq_offset(template, tag), [])
                tag, template, at, targets = entry
                targets.append((user, seq))
                ids.append(user)
                seqs.append(seq)
                tags.append(tag)
                payloads.append(with_seq(template, at, seq))
        await self._insert_events(ids, seqs, tags, payloads)
        self.appended.extend(Appended(template, at, targets)
                             for _, template, at, targets in encoded.values())
        return out

    async def _next_seqs(self, users: list[str], counts: list[int] | None = None
                         ) -> dict[str, int]:
        """Take the next seq (or the next ``counts[i]``) of each (sorted) user's stream,
        locking the rows in that order, and stamp each row's ``change_id`` (the position
        check reads only rows that moved); return each user's new last seq."""
        rows = await self.conn.fetch(
            """INSERT INTO user_streams AS s (user_id, last_seq, change_id)
               SELECT u, n, nextval('user_streams_change_seq')
               FROM unnest($1::uuid[], $2::bigint[]) AS t (u, n) ORDER BY u
               ON CONFLICT (user_id) DO UPDATE
                   SET last_seq = s.last_seq + excluded.last_seq, change_id = excluded.change_id
               RETURNING user_id::text AS user_id, last_seq""",
            users, counts or [1] * len(users),
        )
        return {r["user_id"]: r["last_seq"] for r in rows}

    async def _insert_events(self, users: list[str], seqs: list[int], tags: list[str],
                             payloads: list[bytes]) -> None:
        await self.conn.execute(
            """INSERT INTO events (user_id, seq, type, payload)
               SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::bytea[])""",
            users, seqs, tags, payloads,
        )


class EventStream:
    """Append, read and prune durable events. One per node; shared by all domains."""

    def __init__(self, pool: asyncpg.Pool, publish: Publish, metrics: Metrics,
                 outages: Outages | None = None) -> None:
        self.pool = pool
        self._publish = publish
        self.metrics = metrics
        self.outages = outages
        self._listeners: dict[str, list[Callable[[], None]]] = {}

    def listen(self, name: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` (quick, synchronous, must not raise) after every committed
        transaction that signalled ``name``."""
        self._listeners.setdefault(name, []).append(callback)

    def unlisten(self, name: str, callback: Callable[[], None]) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._listeners[name].remove(callback)

    def failed(self, what: str, exc: Exception, **context: object) -> None:
        """A background read (catch-up, position check) failed: a database outage is
        noted once per outage (``Outages``); anything else is logged as a warning."""
        if self.outages is not None and self.outages.unavailable(exc) is not None:
            return
        log.warning(f"{what} failed; will retry", extra={"error": repr(exc), **context})

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A transaction whose appended events are published once it has committed."""
        async with self.pool.acquire() as conn, conn.transaction():
            tx = Transaction(conn)
            yield tx
        await self.committed(tx.appended, tx.signals)

    async def committed(self, appended: Sequence[Appended], signals: Iterable[str] = ()
                        ) -> None:
        """After a commit: call the signalled listeners and publish the appended events.
        ``transaction`` does it; a change committed in one statement of its own (chat
        send) calls it directly."""
        for name in signals:
            for callback in self._listeners.get(name, ()):
                callback()
        if appended:
            self.metrics.events_appended.inc(sum(len(a.targets) for a in appended))
            await self._publish(appended)

    async def last_seq(self, user_id: str) -> int:
        value = await self.pool.fetchval(
            "SELECT last_seq FROM user_streams WHERE user_id = $1", user_id
        )
        return int(value or 0)

    async def positions(self, user_ids: Sequence[str]) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT user_id::text AS user_id, last_seq FROM user_streams "
            "WHERE user_id = ANY($1::uuid[])",
            list(user_ids),
        )
        return {r["user_id"]: r["last_seq"] for r in rows}

    async def changed_since(self, change_id: int, limit: int = CHANGES_BATCH
                            ) -> list[tuple[str, int, int]]:
        """(user_id, last_seq, change_id) of the streams stamped after ``change_id``, in
        change order (at most ``limit``): what the position check reads."""
        rows = await self.pool.fetch(
            "SELECT user_id::text AS user_id, last_seq, change_id FROM user_streams "
            "WHERE change_id > $1 ORDER BY change_id LIMIT $2",
            change_id, limit,
        )
        return [(r["user_id"], r["last_seq"], r["change_id"]) for r in rows]

    async def change_mark(self) -> int:
        """The highest ``change_id`` stamped so far (0: none)."""
        return int(await self.pool.fetchval(
            "SELECT coalesce(max(change_id), 0) FROM user_streams") or 0)

    async def read_after(
        self, user_id: str, after: int, limit: int = READ_BATCH
    ) -> list[tuple[int, bytes]]:
        """Events with seq > ``after`` in order (at most ``limit``)."""
        rows = await self.pool.fetch(
            "SELECT seq, payload FROM events WHERE user_id = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3",
            user_id, after, limit,
        )
        return [(r["seq"], r["payload"]) for r in rows]

    async def resume_point(self, user_id: str, resume_from: int | None) -> tuple[int, bool]:
        """(``last_seq``, whether a resume from ``resume_from`` can be honoured: every
        event after it still stored, and the client not ahead) — one query, one snapshot."""
        if resume_from is None:
            return await self.last_seq(user_id), False
        row = await self.pool.fetchrow(
            "SELECT coalesce((SELECT last_seq FROM user_streams WHERE user_id = $1), 0) "
            "AS last_seq, EXISTS (SELECT 1 FROM events WHERE user_id = $1 AND seq = $2) "
            "AS stored",
            user_id, resume_from + 1,
        )
        last_seq = int(row["last_seq"])
        return last_seq, resume_from == last_seq or (resume_from < last_seq and row["stored"])

    async def prune(self, retention: timedelta, batch: int = 5000) -> int:
        """Delete events older than ``retention``; safe to run on every node at once."""
        deleted = 0
        while True:
            status = await self.pool.execute(
                """DELETE FROM events WHERE ctid IN (
                       SELECT ctid FROM events WHERE created_at < now() - $1::interval
                       LIMIT $2 FOR UPDATE SKIP LOCKED)""",
                retention, batch,
            )
            count = int(status.split()[-1])
            deleted += count
            if count < batch:
                break
        await self.pool.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval", retention
        )
        return deleted


async def prune_periodically(stream: EventStream, retention_days: int,
                             every_s: float = 3600.0) -> None:
    """Background task: prune once an hour (and shortly after start)."""
    await asyncio.sleep(min(every_s, 30.0))
    while True:
        try:
            deleted = await stream.prune(timedelta(days=retention_days))
            if deleted:
                log.info("pruned old events", extra={"deleted": deleted})
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("event pruning failed; will retry", extra={"error": repr(exc)})
        await asyncio.sleep(every_s)
