"""lost.nearby geometry on real PostgreSQL: antimeridian, poles, radius boundaries, order."""

from __future__ import annotations

import pytest

from protocol.lost import LostResolve
from tests.domain.lost_found.helpers import haversine_m, new_user, north_of
from tests.gateway.conftest import AppClient


async def test_radius_boundary_is_centre_distance_vs_sum_of_radii(app_client: AppClient) -> None:
    client = await app_client()
    owner, seeker = await new_user(client), await new_user(client)
    alert = await owner.report(10.0, 20.0, radius_m=1000)
    lat = north_of(10.0, 1500.0)  # 1,500 m due north of the centre
    assert abs(haversine_m(10.0, 20.0, lat, 20.0) - 1500.0) < 1e-6
    assert await seeker.nearby(lat, 20.0, radius_m=499) == []
    assert [a.id for a in await seeker.nearby(lat, 20.0, radius_m=501)] == [alert.id]
    # A query circle wholly inside the alert's circle (contained) matches too.
    assert [a.id for a in await seeker.nearby(10.0, 20.0, radius_m=1)] == [alert.id]


async def test_longitude_boundary_uses_great_circle_not_degrees(app_client: AppClient) -> None:
    client = await app_client()
    owner, seeker = await new_user(client), await new_user(client)
    # At 60°N a degree of longitude is half as long as at the equator.
    await owner.report(60.0, 10.0, radius_m=5000)
    east = 10.0 + 0.12  # ≈ 6,672 m along the parallel (great circle a little shorter)
    d = haversine_m(60.0, 10.0, 60.0, east)
    assert 6600 < d < 6700
    assert await seeker.nearby(60.0, east, radius_m=int(d - 5000) - 1) == []
    assert len(await seeker.nearby(60.0, east, radius_m=int(d - 5000) + 2)) == 1


@pytest.mark.parametrize(
    ("alert_lng", "query_lng", "radius_m", "found"),
    [
        (179.999, -179.999, 100, True),   # 222 m apart across the antimeridian
        (-179.999, 179.999, 100, True),   # and the other way round
        (179.999, -179.99, 100, False),   # 1,224 m apart: just out of 1,000 + 100
        (179.999, -179.99, 300, True),
        (180.0, -180.0, 1, True),         # the same meridian, spelt twice
    ],
)
async def test_antimeridian(app_client: AppClient, alert_lng: float, query_lng: float,
                            radius_m: int, found: bool) -> None:
    client = await app_client()
    owner, seeker = await new_user(client), await new_user(client)
    await owner.report(0.0, alert_lng, radius_m=1000)
    d = haversine_m(0.0, alert_lng, 0.0, query_lng)
    assert (d <= 1000 + radius_m) is found
    assert len(await seeker.nearby(0.0, query_lng, radius_m=radius_m)) == int(found)


@pytest.mark.parametrize(
    ("alert", "query", "radius_m", "found"),
    [
        ((89.999, 0.0), (89.999, 180.0), 100, True),     # 222 m apart, over the pole
        ((89.999, 0.0), (89.999, 90.0), 100, True),
        ((90.0, 0.0), (89.995, -137.0), 1, True),       # the pole itself: 556 m to the query
        ((89.99, 0.0), (89.99, 180.0), 1300, True),     # 2,224 m over the pole; 1,000 + 1,300
        ((89.99, 0.0), (89.99, 180.0), 1200, False),    # ... but not 1,000 + 1,200
        ((-89.999, 45.0), (-89.999, -135.0), 100, True),  # south pole
        ((-90.0, 0.0), (-89.99, 33.0), 100, False),     # 1,112 m: out of 1,000 + 100
        ((-90.0, 0.0), (-89.99, 33.0), 120, True),
    ],
)
async def test_near_the_poles(app_client: AppClient, alert: tuple[float, float],
                              query: tuple[float, float], radius_m: int, found: bool) -> None:
    client = await app_client()
    owner, seeker = await new_user(client), await new_user(client)
    await owner.report(*alert, radius_m=1000)
    d = haversine_m(*alert, *query)
    assert (d <= 1000 + radius_m) is found, d
    assert len(await seeker.nearby(*query, radius_m=radius_m)) == int(found)


async def test_nearest_first_open_only_and_limit(app_client: AppClient) -> None:
    client = await app_client()
    owner, seeker = await new_user(client), await new_user(client)
    far = await owner.report(52.52, 13.42, radius_m=5000)
    near = await owner.report(52.5, 13.4, radius_m=5000)
    middle = await owner.report(52.51, 13.41, radius_m=5000)
    gone = await owner.report(52.5, 13.401, radius_m=5000)
    await owner.sock.command(LostResolve(id=owner.sock.next_id(), alert_id=gone.id))
    got = await seeker.nearby(52.5, 13.4, radius_m=100)
    assert [a.id for a in got] == [near.id, middle.id, far.id]
    assert all(a.status == "open" for a in got)
    assert [a.id for a in await seeker.nearby(52.5, 13.4, radius_m=100, limit=2)] == [
        near.id, middle.id]
    # Far away: nothing.
    assert await seeker.nearby(-33.9, 151.2, radius_m=50000) == []


async def test_others_see_the_centre_rounded_to_three_decimals(app_client: AppClient) -> None:
    client = await app_client()
    owner, seeker = await new_user(client), await new_user(client)
    mine = await owner.report(48.8566123, -2.3522987, radius_m=500)
    assert (mine.location.lat, mine.location.lng) == (48.8566123, -2.3522987)
    [seen] = await seeker.nearby(48.8566, -2.3523, radius_m=100)
    assert (seen.location.lat, seen.location.lng) == (48.857, -2.352)
    [own_view] = await owner.nearby(48.8566, -2.3523, radius_m=100)
    assert (own_view.location.lat, own_view.location.lng) == (48.8566123, -2.3522987)
