"""The worker's queries read their partial indexes, not the whole outbox (EXPLAIN)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from server.domain.push import store
from tests.domain.conftest import AppClient, new_user
from tests.domain.push.conftest import push_service


def index_names(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(plan["Index Name"])
        for value in plan.values():
            found |= index_names(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= index_names(value)
    return found


async def test_claims_use_the_partial_indexes(app_client: AppClient, database_url: str) -> None:
    client = await app_client()
    await push_service(client).stop()  # keep the rows as written
    user = await new_user(client)
    conn = await asyncpg.connect(database_url)
    try:
        # 20,000 handled rows and deliveries of the past, a few waiting ones.
        await conn.execute("""
            INSERT INTO notifications (user_id, kind, title, body)
            SELECT $1, 'match.created', 't', 'b' FROM generate_series(1, 20010)""", user.id)
        await conn.execute("""
            INSERT INTO push_outbox (notification_id, user_id, event_seq, awaits_ack,
                                     handled_at, outcome)
            SELECT id, user_id, 1, false, now(), 'queued' FROM notifications
            WHERE user_id = $1""", user.id)
        await conn.execute("""
            UPDATE push_outbox SET handled_at = NULL, outcome = NULL, awaits_ack = (id % 2 = 0)
            WHERE id IN (SELECT id FROM push_outbox ORDER BY id DESC LIMIT 10)""")
        await conn.execute("""
            INSERT INTO devices (user_id, platform, token)
            VALUES ($1, 'fcm', 'fcm-token-for-the-explain-test-0000000000')""", user.id)
        await conn.execute("""
            INSERT INTO push_deliveries (outbox_id, device_id, state)
            SELECT o.id, d.id, 'sent' FROM push_outbox o, devices d
            WHERE o.handled_at IS NOT NULL""")
        await conn.execute("ANALYZE push_outbox; ANALYZE push_deliveries")
        async with conn.transaction():
            [row] = await conn.fetch(
                "EXPLAIN (FORMAT JSON) " + store.CLAIM_DUE_OUTBOX, 1.0, 200)
            outbox_plan = json.loads(row[0])
            [row] = await conn.fetch(
                "EXPLAIN (FORMAT JSON) " + store.CLAIM_DELIVERIES, 100, 60.0)
            deliveries_plan = json.loads(row[0])
            [row] = await conn.fetch(
                "EXPLAIN (FORMAT JSON) " + store.NEXT_DUE, 1.0)
            due_plan = json.loads(row[0])
    finally:
        await conn.close()
    assert {"push_outbox_due_now", "push_outbox_due_later"} <= index_names(outbox_plan)
    assert {"push_deliveries_pending", "push_deliveries_leased"} <= index_names(deliveries_plan)
    assert {"push_outbox_due_now", "push_outbox_due_later", "push_deliveries_pending",
            "push_deliveries_leased"} <= index_names(due_plan)

