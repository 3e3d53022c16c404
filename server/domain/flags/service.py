"""Feature flags: the per-node cache, ``flags.get``, ``admin.flags.set/list`` and the
``flags.updated`` push.

Each node keeps every flag in memory and answers ``flags.get`` from it (no database read
per call). A change commits, then ``Node.broadcast("flags")`` tells every node; each node
reloads the flags (one query per change per node), and if any value changed it sends each
of its own sockets ``flags.updated`` with that socket's user's values
(``Node.send_to_local_users``): values depend on the user, so the node that holds the
sockets computes them. The broker may drop a broadcast: every ``FLAGS_REFRESH_S`` each node
reloads anyway, so a missed change arrives late rather than never.

A user's value: ``protocol.flags.flag_value`` (stable sha256 bucket of ``key:user_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from protocol.flags import (
    Flag,
    FlagResult,
    FlagsResult,
    FlagsUpdated,
    FlagValues,
    FlagValuesResult,
    rollout_bucket,
)
from server.deps import Deps
from server.domain.admin import audit
from server.domain.flags import store

log = logging.getLogger(__name__)

TOPIC = "flags"


def _flag(row: asyncpg.Record) -> Flag:
    return Flag(key=row["key"], enabled=row["enabled"], rollout_percent=row["rollout_percent"],
                updated_at=row["updated_at"])


def _state(flags: dict[str, Flag]) -> dict[str, tuple[bool, int]]:
    return {k: (f.enabled, f.rollout_percent) for k, f in flags.items()}


def values_for(flags: dict[str, Flag], user_id: str) -> FlagValues:
    """Every flag's value for one user. Only partial rollouts need the hash."""
    out: FlagValues = {}
    for key, f in flags.items():
        if not f.enabled or f.rollout_percent <= 0:
            out[key] = False
        elif f.rollout_percent >= 100:
            out[key] = True
        else:
            out[key] = rollout_bucket(key, user_id) < f.rollout_percent
    return out


class FlagService:
    def __init__(self, deps: Deps) -> None:
        self.db = deps.db
        self.stream = deps.stream
        self.node = deps.node
        self.refresh_s = deps.settings.flags_refresh_s
        self._flags: dict[str, Flag] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the flags, then follow changes (broadcasts, and the periodic reload)."""
        self._flags = {r["key"]: _flag(r) for r in await store.select_flags(self.db)}
        self.node.on_broadcast(TOPIC, self._on_broadcast)
        self._task = asyncio.create_task(self._follow(), name="flags-follow")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_broadcast(self, payload: bytes) -> None:
        self._wake.set()  # several changes at once: one reload

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.refresh_s)
            self._wake.clear()
            try:
                await self.reload()
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("feature flags reload failed; keeping the cached ones",
                            extra={"error": repr(exc)})

    async def reload(self) -> bool:
        """Re-read every flag; when a value changed, push ``flags.updated`` to this node's
        sockets. True if something changed."""
        fresh = {r["key"]: _flag(r) for r in await store.select_flags(self.db)}
        return self._apply(fresh)

    def _apply(self, fresh: dict[str, Flag]) -> bool:
        changed = _state(fresh) != _state(self._flags)
        self._flags = fresh
        if changed:
            reached = self.node.send_to_local_users(
                lambda user_id: FlagsUpdated(flags=values_for(fresh, user_id)))
            log.info("feature flags changed", extra={"flags": len(fresh),
                                                     "sockets_told": reached})
        return changed

    # --- commands -------------------------------------------------------------------------
    def get(self, user_id: str) -> FlagValuesResult:
        return FlagValuesResult(flags=values_for(self._flags, user_id))

    async def list_flags(self) -> FlagsResult:
        """For admins: straight from the database (the truth, not this node's cache)."""
        return FlagsResult(flags=[_flag(r) for r in await store.select_flags(self.db)])

    async def set_flag(self, actor_id: str, key: str, enabled: bool, rollout_percent: int
                       ) -> FlagResult:
        async with self.stream.transaction() as tx:
            before = await store.select_flag_for_update(tx.conn, key)
            row = await store.upsert_flag(tx.conn, key, enabled, rollout_percent, actor_id)
            previous = (None if before is None else
                        {"enabled": before["enabled"],
                         "rollout_percent": before["rollout_percent"]})
            await audit.record(tx.conn, actor_id=actor_id, action="admin.flags.set",
                               target_kind="flag", target_id=key,
                               data={"enabled": enabled, "rollout_percent": rollout_percent,
                                     "previous": previous})
        flag = _flag(row)
        # This node at once (its sockets and its own next flags.get), every node through
        # the broker (this one then finds nothing new).
        self._apply({**self._flags, key: flag})
        await self.node.broadcast(TOPIC)
        return FlagResult(flag=flag)
