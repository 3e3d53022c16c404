"""Who a user is matched with (live match, no block), memoised on the caller's connection.

``presence.query`` needs this set on every call; it changes only in transactions that
append ``match.created`` (a new match) or ``conversation.closed`` (unmatch, a block
ending matches, an account deleted) to *both* users' streams, so those events are what
invalidate the memo, on whichever node the socket is (``server.realtime.memo``). Commands
of this area and of ``safety`` that end a match also drop it on the caller's own
connection at once (``forget``).
"""

from __future__ import annotations

import asyncpg

from protocol.chat import ConversationClosed
from protocol.matching import MatchCreated
from server.domain.matching import store
from server.realtime.memo import Memo, MemoKey

MATCHED_USERS: MemoKey[frozenset[str]] = MemoKey(
    "matched users", invalidated_by=(MatchCreated.wire_type(), ConversationClosed.wire_type()))


async def matched_user_ids(db: asyncpg.Pool, memo: Memo, user_id: str) -> frozenset[str]:
    """The users ``user_id`` has a live match with (no block between): from the memo, or
    one query whose answer is kept for the next command."""
    found = memo.get(MATCHED_USERS)
    if found is None:
        generation = memo.generation
        found = frozenset(await store.select_matched_user_ids(db, user_id))
        memo.put(MATCHED_USERS, found, generation)
    return found


def forget(memo: Memo) -> None:
    """This connection's command ended a match (unmatch, block): drop the memo now."""
    memo.drop(MATCHED_USERS)
