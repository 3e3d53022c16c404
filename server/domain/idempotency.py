"""Idempotent creating commands: the same (user, scope, key) returns the first result.

``run_idempotent`` claims the key inside the same transaction as the work. A
retry that arrives while the first attempt is still running waits on the
claim's row lock, then reads the stored result; if the first attempt rolled
back, its claim rolled back too and the retry does the work afresh. Keys are
kept as long as durable events (``EVENT_RETENTION_DAYS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from protocol.base import Result
from protocol.codec import JSON, encode_result
from server.errors import Conflict
from server.realtime.stream import EventStream, Transaction

R = TypeVar("R", bound=Result)


async def run_idempotent(
    stream: EventStream,
    *,
    user_id: str,
    scope: str,
    key: str | None,
    result_type: type[R],
    work: Callable[[Transaction], Awaitable[R]],
) -> R:
    """Run ``work`` in a durable transaction once per key; ``key=None`` always runs it."""
    async with stream.transaction() as tx:
        if key is not None:
            claimed = await tx.conn.fetchval(
                """INSERT INTO idempotency_keys (user_id, scope, key) VALUES ($1, $2, $3)
                   ON CONFLICT DO NOTHING RETURNING true""",
                user_id, scope, key,
            )
            if not claimed:
                stored = await tx.conn.fetchval(
                    "SELECT result FROM idempotency_keys "
                    "WHERE user_id = $1 AND scope = $2 AND key = $3",
                    user_id, scope, key,
                )
                if stored is None:
                    raise Conflict("idempotency_key: in use by a request that did not finish")
                return JSON.decode_result(stored, result_type)
        result = await work(tx)
        if key is not None:
            await tx.conn.execute(
                "UPDATE idempotency_keys SET result = $4 "
                "WHERE user_id = $1 AND scope = $2 AND key = $3",
                user_id, scope, key, encode_result(result),
            )
        return result
