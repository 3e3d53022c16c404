"""``admin.analytics``: daily counts computed in SQL when asked, one query per metric family,
with ``generate_series`` giving every day of the range (zeros included). Days are UTC.

- users: ``new_users`` (accounts created that day) and ``active_users`` (distinct users who
  logged in or registered, refreshed a token — apps refresh every ``ACCESS_TOKEN_TTL_S``
  while in use —, sent a message, swiped, uploaded, reported a lost pet or a sighting,
  posted, commented, liked a post, listed a pet for adoption, applied for one, or went
  live that day);
- activity: ``messages`` sent, ``matches`` made, ``lost_alerts`` reported, ``uploads``
  finished (pending, approved or rejected) that day;
- community: ``posts`` written that day (deleted or removed ones included, as messages
  are) and ``adoptions``: listings that became ``adopted`` that day (the lister marking
  the pet as gone to its new home; ``adopted_at``, set by a trigger of
  ``0013_moderation.sql``). An accepted application is not yet an adoption.

Each range condition is on a time column with an index (BRIN on ``created_at`` from
``0011_admin.sql`` and ``0013_moderation.sql``; ``adoption_listings_adopted``).
"""

from __future__ import annotations

from datetime import date

import asyncpg

from protocol.admin import AnalyticsDay

MAX_DAYS = 92

_DAYS = "SELECT d::date AS day FROM generate_series($1::date, $2::date, interval '1 day') AS d"
# The range as timestamptz bounds, UTC days: [lo, hi).
_LO = "(($1::date)::timestamp AT TIME ZONE 'UTC')"
_HI = "((($2::date) + 1)::timestamp AT TIME ZONE 'UTC')"


def _in_range(column: str) -> str:
    return f"{column} >= {_LO} AND {column} < {_HI}"


def _day(column: str) -> str:
    return f"({column} AT TIME ZONE 'UTC')::date"


USERS_SQL = f"""
WITH days AS ({_DAYS}),
acts AS (
    SELECT s.user_id, s.created_at AS at FROM sessions s WHERE {_in_range('s.created_at')}
    UNION ALL
    SELECT s.user_id, r.created_at FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
    WHERE {_in_range('r.created_at')}
    UNION ALL
    SELECT m.sender_id, m.created_at FROM messages m WHERE {_in_range('m.created_at')}
    UNION ALL
    SELECT p.owner_id, w.created_at FROM swipes w JOIN pets p ON p.id = w.pet_id
    WHERE {_in_range('w.created_at')}
    UNION ALL
    SELECT up.owner_id, up.created_at FROM uploads up WHERE {_in_range('up.created_at')}
    UNION ALL
    SELECT a.owner_id, a.created_at FROM lost_alerts a WHERE {_in_range('a.created_at')}
    UNION ALL
    SELECT ls.reporter_id, ls.created_at FROM lost_sightings ls
    WHERE {_in_range('ls.created_at')}
    UNION ALL
    SELECT po.author_id, po.created_at FROM posts po WHERE {_in_range('po.created_at')}
    UNION ALL
    SELECT pc.author_id, pc.created_at FROM post_comments pc
    WHERE {_in_range('pc.created_at')}
    UNION ALL
    SELECT pl.user_id, pl.created_at FROM post_likes pl WHERE {_in_range('pl.created_at')}
    UNION ALL
    SELECT al.lister_id, al.created_at FROM adoption_listings al
    WHERE {_in_range('al.created_at')}
    UNION ALL
    SELECT aa.applicant_id, aa.created_at FROM adoption_applications aa
    WHERE {_in_range('aa.created_at')}
    UNION ALL
    SELECT lv.host_id, lv.started_at FROM live_streams lv WHERE {_in_range('lv.started_at')}
),
active AS (SELECT {_day('at')} AS day, count(DISTINCT user_id) AS n FROM acts GROUP BY 1),
fresh AS (
    SELECT {_day('u.created_at')} AS day, count(*) AS n FROM users u
    WHERE {_in_range('u.created_at')} GROUP BY 1
)
SELECT days.day, coalesce(active.n, 0) AS active_users, coalesce(fresh.n, 0) AS new_users
FROM days LEFT JOIN active USING (day) LEFT JOIN fresh USING (day)
ORDER BY days.day
"""


def _count_per_day(name: str, table: str, extra: str = "") -> str:
    return (f"{name} AS (SELECT {_day('t.created_at')} AS day, count(*) AS n FROM {table} t "
            f"WHERE {_in_range('t.created_at')}{extra} GROUP BY 1)")


ACTIVITY_SQL = f"""
WITH days AS ({_DAYS}),
{_count_per_day('msgs', 'messages')},
{_count_per_day('mts', 'matches')},
{_count_per_day('alerts', 'lost_alerts')},
{_count_per_day('ups', 'uploads', " AND t.status IN ('pending', 'approved', 'rejected')")}
SELECT days.day, coalesce(msgs.n, 0) AS messages, coalesce(mts.n, 0) AS matches,
       coalesce(alerts.n, 0) AS lost_alerts, coalesce(ups.n, 0) AS uploads
FROM days LEFT JOIN msgs USING (day) LEFT JOIN mts USING (day)
     LEFT JOIN alerts USING (day) LEFT JOIN ups USING (day)
ORDER BY days.day
"""


COMMUNITY_SQL = f"""
WITH days AS ({_DAYS}),
{_count_per_day('ps', 'posts')},
adopted AS (
    SELECT {_day('l.adopted_at')} AS day, count(*) AS n FROM adoption_listings l
    WHERE l.adopted_at IS NOT NULL AND {_in_range('l.adopted_at')} GROUP BY 1
)
SELECT days.day, coalesce(ps.n, 0) AS posts, coalesce(adopted.n, 0) AS adoptions
FROM days LEFT JOIN ps USING (day) LEFT JOIN adopted USING (day)
ORDER BY days.day
"""


async def daily_counts(conn: asyncpg.Connection, first: date, last: date) -> list[AnalyticsDay]:
    """Every day from ``first`` to ``last`` (both included; the caller bounds the range).
    The queries run in one read-only snapshot, so the families agree with each other."""
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        users = await conn.fetch(USERS_SQL, first, last)
        activity = await conn.fetch(ACTIVITY_SQL, first, last)
        community = await conn.fetch(COMMUNITY_SQL, first, last)
    return [
        AnalyticsDay(
            date=u["day"], active_users=int(u["active_users"]), new_users=int(u["new_users"]),
            messages=int(a["messages"]), matches=int(a["matches"]),
            lost_alerts=int(a["lost_alerts"]), uploads=int(a["uploads"]),
            posts=int(c["posts"]), adoptions=int(c["adoptions"]),
        )
        for u, a, c in zip(users, activity, community, strict=True)
    ]
