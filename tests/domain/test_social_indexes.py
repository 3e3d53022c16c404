"""The feed, listings and block lookups use their indexes: EXPLAIN of the exact SQL the
stores run, on tables with enough rows (and ANALYZE) that the planner has a choice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from server.domain.adoption import store as adoption_store
from server.domain.community import store as community_store
from server.domain.safety.store import not_blocked
from tests.domain.social import index_names, plan, scans

USERS, POSTS, LISTINGS, BLOCKS = 3000, 30000, 6000, 20000


@pytest.fixture
async def seeded(database_url: str, clean_db: None) -> asyncpg.Connection:
    conn = await asyncpg.connect(database_url)
    await conn.execute("SELECT setseed(0.25)")
    await conn.execute(
        """INSERT INTO users (email, display_name, password_hash)
           SELECT 'u' || g || '@idx.invalid', 'U' || g, 'x' FROM generate_series(1, $1) g""",
        USERS)
    await conn.execute(
        """CREATE TEMP TABLE ids AS
           SELECT row_number() OVER (ORDER BY email) AS n, id FROM users""")
    await conn.execute(
        """INSERT INTO posts (author_id, body, lat, lng, created_at)
           SELECT ids.id, 'post ' || g,
                  CASE WHEN g % 2 = 0 THEN 47 + random() * 8 END,
                  CASE WHEN g % 2 = 0 THEN 6 + random() * 9 END,
                  now() - g * interval '1 minute'
           FROM generate_series(1, $1) g JOIN ids ON ids.n = 1 + (g * 7919) % $2""",
        POSTS, USERS)
    await conn.execute(
        """INSERT INTO user_blocks (blocker_id, blocked_id)
           SELECT a.id, b.id FROM generate_series(1, $1) g
           JOIN ids a ON a.n = 1 + (g * 31) % $2 JOIN ids b ON b.n = 1 + (g * 97 + 1) % $2
           WHERE a.id <> b.id ON CONFLICT DO NOTHING""",
        BLOCKS, USERS)
    await conn.execute(
        """INSERT INTO pets (owner_id, name, species)
           SELECT ids.id, 'P' || g,
                  (ARRAY['dog', 'cat', 'rabbit', 'bird', 'other'])[1 + g % 5]
           FROM generate_series(1, $1) g JOIN ids ON ids.n = 1 + g % $2""",
        LISTINGS, USERS)
    await conn.execute(
        """INSERT INTO adoption_listings (lister_id, pet_id, title, description, lat, lng,
                                          status)
           SELECT p.owner_id, p.id, 'L', 'D', 47 + random() * 8, 6 + random() * 9,
                  CASE WHEN random() < 0.8 THEN 'available' ELSE 'adopted' END
           FROM pets p""")
    for table in ("users", "posts", "user_blocks", "pets", "adoption_listings", "post_counters",
                  "post_likes"):
        await conn.execute(f"ANALYZE {table}")
    yield conn
    await conn.close()


def index_cond(plan_json: str, index: str) -> str:
    """The Index Cond of the plan's scan of ``index`` ('' if none)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("Index Name") == index:
                found.append(str(node.get("Index Cond", "")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(plan_json))
    return " ".join(found)


async def viewer(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval("SELECT id::text FROM ids WHERE n = 17"))


async def test_recent_and_author_feed_pages_use_their_indexes(seeded: asyncpg.Connection
                                                              ) -> None:
    me = await viewer(seeded)
    cursor = (datetime.now(UTC), "ffffffff-ffff-4fff-bfff-ffffffffffff")
    for keyset in (False, True):
        sql = community_store._with_details(community_store.recent_page_sql(keyset))
        shown = await plan(seeded, sql, *community_store.page_args(me, 21, [],
                                                                   cursor if keyset else None))
        assert "posts_recent" in index_names(shown), shown
        assert "Seq Scan posts" not in scans(shown)
        if keyset:  # a later page starts in the index at the cursor, not at the top
            assert "created_at" in index_cond(shown, "posts_recent"), shown
        # The block filter is two anti-joins on the two block indexes, not a scan.
        assert {"user_blocks_pkey", "user_blocks_blocked"} <= index_names(shown), shown
        author = str(await seeded.fetchval("SELECT id::text FROM ids WHERE n = 5"))
        sql = community_store._with_details(community_store.author_page_sql(keyset))
        shown = await plan(seeded, sql, *community_store.page_args(
            me, 21, [author], cursor if keyset else None))
        assert "posts_author" in index_names(shown), shown
        assert "Seq Scan posts" not in scans(shown)


async def test_nearby_feed_reads_the_squares_index(seeded: asyncpg.Connection) -> None:
    me = await viewer(seeded)
    cells = community_store.cells_of_cap(50.1, 8.7, 25_000)
    assert cells is not None
    sql = community_store._with_details(community_store.nearby_page_sql(False, by_cells=True))
    shown = await plan(seeded, sql, *community_store.page_args(
        me, 21, [50.1, 8.7, 25_000.0, cells], None))
    assert "posts_cell_recent" in index_names(shown), shown
    assert "Seq Scan posts" not in scans(shown)
    sql = community_store._with_details(community_store.nearby_page_sql(True, by_cells=True))
    shown = await plan(seeded, sql, *community_store.page_args(
        me, 21, [50.1, 8.7, 25_000.0, cells],
        (datetime.now(UTC), "ffffffff-ffff-4fff-bfff-ffffffffffff")))
    cond = index_cond(shown, "posts_cell_recent")
    assert "cell" in cond and "created_at" in cond, shown


async def test_comments_page_uses_its_index(seeded: asyncpg.Connection) -> None:
    me = await viewer(seeded)
    post_id = await seeded.fetchval("SELECT id FROM posts LIMIT 1")
    await seeded.execute(
        """INSERT INTO post_comments (post_id, author_id, body)
           SELECT p.id, $1, 'c' FROM posts p, generate_series(1, 2)""", me)
    await seeded.execute("ANALYZE post_comments")
    shown = await plan(seeded, community_store.comments_page_sql(False),
                       *community_store.page_args(me, 21, [post_id], None))
    assert "post_comments_post" in index_names(shown), shown


async def test_listing_searches_use_their_indexes(seeded: asyncpg.Connection) -> None:
    me = await viewer(seeded)
    shown = await plan(seeded, adoption_store.geo_page_sql(False),
                       me, 21, [], 50.1, 8.7, 25_000.0)
    assert "adoption_listings_available_geo" in index_names(shown), shown
    assert "Seq Scan adoption_listings" not in scans(shown)
    shown = await plan(seeded, adoption_store.geo_page_sql(True),
                       me, 21, ["dog"], 50.1, 8.7, 25_000.0, 1234.5,
                       "00000000-0000-4000-8000-000000000000")
    assert "adoption_listings_available_geo" in index_names(shown), shown
    shown = await plan(seeded, adoption_store.recent_page_sql(False), me, 21, [])
    assert "adoption_listings_available_recent" in index_names(shown), shown
    assert "Seq Scan adoption_listings" not in scans(shown)


async def test_block_lookups_use_both_indexes(seeded: asyncpg.Connection) -> None:
    me = await viewer(seeded)
    other = str(await seeded.fetchval("SELECT id::text FROM ids WHERE n = 18"))
    # Both columns known: one index lookup per direction (either index covers both).
    shown = await plan(seeded, f"SELECT {not_blocked('$2::uuid', '$1::uuid')}", me, other)
    assert index_names(shown) and index_names(shown) <= {"user_blocks_pkey",
                                                         "user_blocks_blocked"}, shown
    assert not any(s.startswith("Seq Scan") for s in scans(shown)), shown
    # One column known ("who blocks me, whom do I block"): each direction its own index.
    shown = await plan(
        seeded, """SELECT blocked_id FROM user_blocks WHERE blocker_id = $1
                   UNION SELECT blocker_id FROM user_blocks WHERE blocked_id = $1""", me)
    assert {"user_blocks_pkey", "user_blocks_blocked"} <= index_names(shown), shown
