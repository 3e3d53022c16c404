"""posts.feed scope nearby: the radius, newest first, paging, the antimeridian and poles,
and the squares that the search reads (``cells_of_cap``)."""

from __future__ import annotations

import math
import random

from protocol.community import FeedScope, Post, PostsFeed
from protocol.types import Location
from server.domain.community.store import EARTH_RADIUS_M, MAX_CELLS, cells_of_cap
from tests.domain.conftest import AppClient, User, cid, new_user
from tests.domain.social import db, post


def north(lat: float, metres: float) -> float:
    return lat + math.degrees(metres / EARTH_RADIUS_M)


async def nearby(user: User, lat: float, lng: float, radius_km: int = 25, **fields: object
                 ) -> tuple[list[Post], str | None]:
    result = await user.cmd(PostsFeed(id=cid(), scope=FeedScope.NEARBY,  # type: ignore[arg-type]
                                      location=Location(lat=lat, lng=lng), radius_km=radius_km,
                                      **fields))
    return list(result.posts), result.next_cursor


async def test_radius_and_newest_first(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    lat, lng = 48.0, 11.0
    near = await post(alice, "near", location=Location(lat=north(lat, 5_000), lng=lng))
    nearer = await post(alice, "nearer", location=Location(lat=north(lat, 1_000), lng=lng))
    await post(alice, "far", location=Location(lat=north(lat, 40_000), lng=lng))
    await post(alice, "nowhere")
    posts, cursor = await nearby(bob, lat, lng)
    assert [p.id for p in posts] == [nearer.id, near.id] and cursor is None
    posts, _ = await nearby(bob, lat, lng, radius_km=50)
    assert [p.body for p in posts] == ["far", "nearer", "near"]
    posts, _ = await nearby(bob, lat, lng, radius_km=2)
    assert [p.body for p in posts] == ["nearer"]


async def test_pages_across_squares_neither_skip_nor_repeat(app_client: AppClient) -> None:
    """Posts on both sides of a square's edge (lat 48, lng 11), paged while more arrive."""
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    rng = random.Random(3)
    made = []
    for i in range(17):
        spot = Location(lat=48.0 + rng.uniform(-0.1, 0.1), lng=11.0 + rng.uniform(-0.1, 0.1))
        made.append((await post(alice, f"p{i}", location=spot)).id)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        fields: dict[str, object] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        posts, cursor = await nearby(bob, 48.0, 11.0, radius_km=30, **fields)
        seen += [p.id for p in posts]
        await post(alice, "newer", location=Location(lat=48.0, lng=11.0))
        if cursor is None:
            break
    assert seen == list(reversed(made))


async def test_the_antimeridian_and_a_pole(app_client: AppClient) -> None:
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    east = await post(alice, "east", location=Location(lat=10.0, lng=179.995))
    west = await post(alice, "west", location=Location(lat=10.0, lng=-179.98))
    posts, _ = await nearby(bob, 10.0, -179.999, radius_km=5)
    assert {p.id for p in posts} == {east.id, west.id}
    posts, _ = await nearby(bob, 10.0, 179.999, radius_km=5)
    assert {p.id for p in posts} == {east.id, west.id}
    polar = await post(alice, "polar", location=Location(lat=89.99, lng=-120.0))
    posts, _ = await nearby(bob, 89.99, 60.0, radius_km=10)
    assert [p.id for p in posts] == [polar.id]


async def test_a_radius_of_many_squares_walks_the_time_index(app_client: AppClient) -> None:
    """At 70°N a 500 km circle touches more than MAX_CELLS squares: the other plan must
    give the same answer."""
    assert cells_of_cap(70.0, 20.0, 500_000) is None
    assert cells_of_cap(48.0, 11.0, 500_000) is not None
    client = await app_client()
    alice, bob = await new_user(client), await new_user(client)
    inside = await post(alice, "inside", location=Location(lat=north(70.0, 450_000), lng=20.0))
    await post(alice, "outside", location=Location(lat=north(70.0, -550_000), lng=20.0))
    posts, _ = await nearby(bob, 70.0, 20.0, radius_km=500)
    assert [p.id for p in posts] == [inside.id]


async def test_cells_cover_every_point_within_the_radius(app_client: AppClient) -> None:
    """``cells_of_cap`` (Python) against ``geo_cell`` (SQL) for random points inside
    random circles: the square of every point within the radius is in the cover."""
    client = await app_client()
    pool = db(client)
    rng = random.Random(5)
    cases = []
    for _ in range(300):
        lat, lng = rng.uniform(-89.9, 89.9), rng.uniform(-180, 180)
        radius = rng.choice([1_000, 25_000, 100_000, 300_000])
        bearing, dist = rng.uniform(0, 2 * math.pi), radius * math.sqrt(rng.random()) * 0.999
        # Destination point on the sphere.
        d, p1, l1 = dist / EARTH_RADIUS_M, math.radians(lat), math.radians(lng)
        p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d)
                       * math.cos(bearing))
        l2 = l1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(p1),
                             math.cos(d) - math.sin(p1) * math.sin(p2))
        plat, plng = math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180
        cases.append((lat, lng, radius, plat, plng))
    rows = await pool.fetch(
        """SELECT geo_cell(coarse_deg(t.plat), coarse_deg(t.plng)) AS cell,
                  lf_distance_m(t.lat, t.lng, coarse_deg(t.plat), coarse_deg(t.plng)) AS d
           FROM unnest($1::float8[], $2::float8[], $3::float8[], $4::float8[])
                AS t(lat, lng, plat, plng)""",
        [c[0] for c in cases], [c[1] for c in cases], [c[3] for c in cases],
        [c[4] for c in cases])
    checked = 0
    for (lat, lng, radius, _, _), row in zip(cases, rows, strict=True):
        if row["d"] > radius:  # rounding moved it out: not a candidate anyway
            continue
        cells = cells_of_cap(lat, lng, radius, max_cells=10**6)
        assert cells is not None and row["cell"] in cells, (lat, lng, radius)
        checked += 1
    assert checked > 250
    assert len(cells_of_cap(48.0, 11.0, 25_000) or []) <= 4
    assert len(cells_of_cap(60.0, 11.0, 100_000) or []) <= 12 < MAX_CELLS
