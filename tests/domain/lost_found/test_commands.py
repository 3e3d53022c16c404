"""lost.update, lost.watch/unwatch/watches, lost.sighting/sightings, validation."""

from __future__ import annotations

import json

import aiohttp
import pytest

from protocol.lost import (
    LostReport,
    LostResolve,
    LostSightingCommand,
    LostSightings,
    LostUnwatch,
    LostUpdate,
    LostWatch,
    LostWatches,
)
from protocol.types import Location
from server.domain.lost_found.service import MAX_WATCHES_PER_USER, SIGHTINGS_PER_ALERT_LIMIT
from server.state import RUNTIME
from tests.domain.lost_found.helpers import app_of, new_user
from tests.gateway.conftest import AppClient


def sighting(alert_id: str, cid: str, lat: float = 10.0001234, lng: float = 20.0005678,
             **kw: object) -> LostSightingCommand:
    return LostSightingCommand(id=cid, alert_id=alert_id, location=Location(lat=lat, lng=lng),
                               **kw)  # type: ignore[arg-type]


async def test_update_is_owner_only_and_open_only(app_client: AppClient) -> None:
    client = await app_client()
    owner, other = await new_user(client), await new_user(client)
    alert = await owner.report(10.0, 20.0, radius_m=1000)
    changed = await owner.sock.command(LostUpdate(id="u1", alert_id=alert.id,
                                                  description="Found collar", radius_m=3000))
    assert changed.alert.description == "Found collar" and changed.alert.radius_m == 3000
    assert changed.alert.created_at == alert.created_at
    # The new radius is what lost.nearby matches with.
    assert len(await other.nearby(10.0 + 2500 / 111195.0, 20.0, radius_m=1)) == 1
    err = await other.sock.request(LostUpdate(id="u2", alert_id=alert.id, description="x"))
    assert err.code == "forbidden"  # type: ignore[union-attr]
    err = await other.sock.request(LostUpdate(id="u3", alert_id="0" * 8, description="x"))
    assert err.code == "not_found"  # type: ignore[union-attr]
    await owner.sock.command(LostResolve(id="u4", alert_id=alert.id))
    err = await owner.sock.request(LostUpdate(id="u5", alert_id=alert.id, description="x"))
    assert err.code == "conflict"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "code", "fragment"),
    [
        ({"radius_m": 99}, "bad_request", "radius_m"),
        ({"radius_m": 50_001}, "bad_request", "radius_m"),
        ({"description": ""}, "bad_request", "description"),
        ({"description": "x" * 2001}, "too_large", "description"),
        ({"location": {"lat": 0, "lng": 180.5}}, "bad_request", "location.lng"),
    ],
)
async def test_report_bounds(app_client: AppClient, fields: dict[str, object], code: str,
                             fragment: str) -> None:
    client = await app_client()
    owner = await new_user(client)
    frame = {"type": "lost.report", "id": "b1", "description": "dog",
             "location": {"lat": 0, "lng": 0}, "radius_m": 100, **fields}

    await owner.sock.send_raw(json.dumps(frame))
    error = await owner.sock.expect("error")
    assert error.code == code and fragment in error.message


async def test_report_radius_bounds_inclusive(app_client: AppClient) -> None:
    client = await app_client()
    owner = await new_user(client)
    assert (await owner.report(0, 0, radius_m=100)).radius_m == 100
    assert (await owner.report(0, 0, radius_m=50_000, description="x" * 2000)).radius_m == 50_000


async def test_watches_cap_list_unwatch_and_idempotency(app_client: AppClient) -> None:
    client = await app_client()
    user = await new_user(client)
    first = await user.watch(1.0, 1.0, idempotency_key="w-1")
    again = await user.watch(1.0, 1.0, idempotency_key="w-1")
    assert first == again
    for i in range(1, MAX_WATCHES_PER_USER):
        await user.watch(1.0 + i, 1.0)
    err = await user.sock.request(LostWatch(id="w9", location=Location(lat=0, lng=0),
                                            radius_m=100))
    assert err.code == "conflict"  # type: ignore[union-attr]
    listed = await user.sock.command(LostWatches(id="w10"))
    assert listed.watches[0].id == first.id
    assert len(listed.watches) == MAX_WATCHES_PER_USER
    await user.sock.command(LostUnwatch(id="w11", watch_id=first.id))
    await user.sock.command(LostUnwatch(id="w12", watch_id=first.id))  # repeat: no-op
    await user.sock.command(LostUnwatch(id="w13", watch_id="not-an-id"))
    other = await new_user(client)
    theirs = await other.watch(5.0, 5.0)
    await user.sock.command(LostUnwatch(id="w14", watch_id=theirs.id))  # not theirs: no-op
    assert len((await other.sock.command(LostWatches(id="o1"))).watches) == 1
    assert len((await user.sock.command(LostWatches(id="w15"))).watches) == (
        MAX_WATCHES_PER_USER - 1)
    await user.watch(0.0, 0.0)


async def test_sighting_goes_to_the_owner_with_exact_location(app_client: AppClient) -> None:
    client = await app_client()
    owner, seer, bystander = [await new_user(client) for _ in range(3)]
    await bystander.watch(10.0, 20.0, radius_m=5000)
    alert = await owner.report(10.0, 20.0, radius_m=1000)
    await bystander.sock.expect("lost.alert")
    await bystander.sock.expect("notification")

    got = await seer.sock.command(sighting(alert.id, "s1", note="by the bakery",
                                           idempotency_key="k1"))
    assert (got.sighting.location.lat, got.sighting.location.lng) == (10.0001234, 20.0005678)
    event = await owner.sock.expect("lost.sighting")
    assert event.sighting == got.sighting
    note = await owner.sock.expect("notification")
    assert note.notification.kind == "lost.sighting"
    assert note.notification.data == {"alert_id": alert.id, "sighting_id": got.sighting.id}
    # A resend with the key: the same sighting, no second event.
    resent = await seer.sock.command(sighting(alert.id, "s2", note="by the bakery",
                                              idempotency_key="k1"))
    assert resent.sighting == got.sighting
    await owner.sock.expect_nothing()
    await seer.sock.expect_nothing()
    await bystander.sock.expect_nothing()
    db = app_of(client)[RUNTIME].deps.db
    assert await db.fetchval("SELECT count(*) FROM lost_sightings") == 1


async def test_sightings_list_owner_sees_all_others_their_own(app_client: AppClient) -> None:
    client = await app_client()
    owner, a, b = [await new_user(client) for _ in range(3)]
    alert = await owner.report(10.0, 20.0)
    mine_a = [(await a.sock.command(sighting(alert.id, f"a{i}"))).sighting for i in range(3)]
    mine_b = (await b.sock.command(sighting(alert.id, "b0"))).sighting
    page1 = await owner.sock.command(LostSightings(id="l1", alert_id=alert.id, limit=3))
    assert [s.id for s in page1.sightings] == [mine_b.id, mine_a[2].id, mine_a[1].id]
    page2 = await owner.sock.command(LostSightings(id="l2", alert_id=alert.id, limit=3,
                                                   cursor=page1.next_cursor))
    assert [s.id for s in page2.sightings] == [mine_a[0].id] and page2.next_cursor is None
    only_b = await b.sock.command(LostSightings(id="l3", alert_id=alert.id))
    assert [s.id for s in only_b.sightings] == [mine_b.id]
    err = await b.sock.request(LostSightings(id="l4", alert_id="nope"))
    assert err.code == "not_found"  # type: ignore[union-attr]
    err = await b.sock.request(LostSightings(id="l5", alert_id=alert.id, cursor="garbage"))
    assert err.code == "bad_request"  # type: ignore[union-attr]


async def test_sightings_are_rate_limited_per_user_per_alert(app_client: AppClient) -> None:
    client = await app_client()
    owner, seer = await new_user(client), await new_user(client)
    alert = await owner.report(10.0, 20.0)
    other_alert = await owner.report(11.0, 20.0)
    for i in range(SIGHTINGS_PER_ALERT_LIMIT):
        await seer.sock.command(sighting(alert.id, f"s{i}"))
    err = await seer.sock.request(sighting(alert.id, "over", idempotency_key="late"))
    assert err.code == "rate_limited" and err.retry_after_s  # type: ignore[union-attr]
    # Another alert, or another user, is a separate budget.
    await seer.sock.command(sighting(other_alert.id, "other"))
    await owner.sock.command(sighting(alert.id, "own"))
    # The refused key was not spent: it is refused again, not replayed as a success.
    err = await seer.sock.request(sighting(alert.id, "over2", idempotency_key="late"))
    assert err.code == "rate_limited"  # type: ignore[union-attr]


async def test_sighting_on_resolved_or_unknown_alert(app_client: AppClient) -> None:
    client = await app_client()
    owner, seer = await new_user(client), await new_user(client)
    alert = await owner.report(10.0, 20.0)
    await owner.sock.command(LostResolve(id="r", alert_id=alert.id))
    err = await seer.sock.request(sighting(alert.id, "s1"))
    assert err.code == "conflict"  # type: ignore[union-attr]
    err = await seer.sock.request(sighting("7b0ad3c4-1111-4222-8333-944455556666", "s2"))
    assert err.code == "not_found"  # type: ignore[union-attr]


async def test_photo_ids_must_be_own_uploads_and_gps_is_gone_end_to_end(
    app_client: AppClient,
) -> None:
    import io

    from PIL import Image

    from tests.uploads import images

    client = await app_client()
    owner, other = await new_user(client), await new_user(client)
    form = aiohttp.FormData()
    form.add_field("purpose", "lost_poster")
    form.add_field("file", images.jpeg_with_gps(), filename="dog.jpg", content_type="image/jpeg")
    resp = await client.post("/api/v1/uploads", data=form, headers=owner.reg.bearer)
    assert resp.status == 201, await resp.text()
    upload = (await resp.json())["upload"]

    err = await other.sock.request(LostReport(
        id="p1", description="dog", location=Location(lat=0, lng=0), radius_m=100,
        photo_ids=[upload["id"]]))
    assert err.code == "not_found"  # type: ignore[union-attr]
    alert = (await owner.sock.command(LostReport(
        id="p2", description="dog", location=Location(lat=0, lng=0), radius_m=100,
        photo_ids=[upload["id"]]))).alert
    assert alert.photo_ids == [upload["id"]]

    # The poster as stored and served: no EXIF at all, so no GPS.
    resp = await client.get(f"/api/v1/uploads/{upload['id']}", headers=owner.reg.bearer)
    url = (await resp.json())["upload"]["url"]
    stored = await (await client.session.get(url)).read()  # an absolute URL (PUBLIC_URL or host)
    assert b"Exif" not in stored
    with Image.open(io.BytesIO(stored)) as im:
        assert not im.getexif()
