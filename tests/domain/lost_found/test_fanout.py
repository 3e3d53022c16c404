"""lost.alert fan-out to watchers: who gets it, resolution, resume, crash in the job."""

from __future__ import annotations

import asyncio

import pytest

from protocol.lost import LostReport, LostResolve
from protocol.notifications import NotificationsList
from protocol.objects import AlertStatus
from protocol.types import Location
from server.domain.lost_found.fanout import FanoutRunner
from server.state import RUNTIME
from tests.domain.conftest import wait_online
from tests.domain.lost_found.helpers import (
    alert_events_by_user,
    app_of,
    deps,
    haversine_m,
    new_user,
    wait_jobs_done,
)
from tests.gateway.conftest import AppClient
from tests.support.auth import register
from tests.support.ws import open_session


async def test_inside_overlapping_get_it_outside_and_reporter_do_not(
    app_client: AppClient,
) -> None:
    client = await app_client()
    reporter, inside, overlapping, outside, twice = [await new_user(client) for _ in range(5)]
    await reporter.watch(51.5, -0.12, radius_m=5000)      # the reporter's own area: excluded
    await inside.watch(51.501, -0.121, radius_m=200)       # centre inside the alert circle
    # Centre 2,500 m away: outside the 2,000 m alert circle but its 600 m circle overlaps.
    lat = 51.5 + 2500 / 111195.0
    assert 2490 < haversine_m(51.5, -0.12, lat, -0.12) < 2510
    await overlapping.watch(lat, -0.12, radius_m=600)
    await outside.watch(lat, -0.12, radius_m=400)          # 2,000 + 400 < 2,500
    await twice.watch(51.5, -0.12, radius_m=300)           # two areas, one alert
    await twice.watch(51.502, -0.12, radius_m=300)

    alert = await reporter.report(51.5, -0.12, radius_m=2000)

    for user in (inside, overlapping, twice):
        event = await user.sock.expect("lost.alert")
        assert event.alert.id == alert.id and event.alert.status == AlertStatus.OPEN
        assert event.seq == 1
        note = await user.sock.expect("notification")
        assert note.notification.kind == "lost.alert"
        assert note.notification.data == {"alert_id": alert.id}
        assert note.seq == 2
    await wait_jobs_done(client)
    await outside.sock.expect_nothing()
    await reporter.sock.expect_nothing()
    await twice.sock.expect_nothing()
    assert await alert_events_by_user(client, alert.id) == {
        inside.id: 1, overlapping.id: 1, twice.id: 1}


async def test_watchers_get_the_rounded_centre(app_client: AppClient) -> None:
    client = await app_client()
    reporter, watcher = await new_user(client), await new_user(client)
    await watcher.watch(40.0, -3.7, radius_m=5000)
    await reporter.report(40.0012345, -3.7006789, radius_m=1000)
    event = await watcher.sock.expect("lost.alert")
    assert (event.alert.location.lat, event.alert.location.lng) == (40.001, -3.701)


async def test_fanout_across_the_antimeridian_and_over_a_pole(app_client: AppClient) -> None:
    client = await app_client()
    reporter, fiji, arctic = [await new_user(client) for _ in range(3)]
    await fiji.watch(-17.0, -179.995, radius_m=500)
    await arctic.watch(89.995, 170.0, radius_m=500)
    a1 = await reporter.report(-17.0, 179.995, radius_m=1000)   # 1,063 m apart
    assert (await fiji.sock.expect("lost.alert")).alert.id == a1.id
    a2 = await reporter.report(89.995, -10.0, radius_m=1000)    # 1,112 m over the pole
    assert (await arctic.sock.expect("lost.alert")).alert.id == a2.id
    await wait_jobs_done(client)
    await fiji.sock.expect("notification")
    await fiji.sock.expect_nothing()


async def test_resolved_alert_is_announced_to_recipients_only(app_client: AppClient) -> None:
    client = await app_client()
    reporter, watcher, stranger = [await new_user(client) for _ in range(3)]
    await watcher.watch(35.0, 139.0, radius_m=1000)
    alert = await reporter.report(35.0, 139.0, radius_m=1000)
    await watcher.sock.expect("lost.alert")
    await watcher.sock.expect("notification")

    forbidden = await stranger.sock.request(LostResolve(id="r1", alert_id=alert.id))
    assert forbidden.code == "forbidden"  # type: ignore[union-attr]
    missing = await stranger.sock.request(LostResolve(id="r2", alert_id="nope"))
    assert missing.code == "not_found"  # type: ignore[union-attr]

    # A watcher added after the alert was sent never got it, so hears nothing now.
    await stranger.watch(35.0, 139.0, radius_m=1000)
    done = await reporter.sock.command(LostResolve(id=reporter.sock.next_id(),
                                                   alert_id=alert.id))
    assert done.alert.status == AlertStatus.RESOLVED and done.alert.resolved_at is not None
    event = await watcher.sock.expect("lost.alert")
    assert event.alert.id == alert.id and event.alert.status == AlertStatus.RESOLVED
    assert event.seq == 3
    again = await reporter.sock.command(LostResolve(id=reporter.sock.next_id(),
                                                    alert_id=alert.id))
    assert again.alert.resolved_at == done.alert.resolved_at
    await wait_jobs_done(client)
    await watcher.sock.expect_nothing()
    await stranger.sock.expect_nothing()
    assert await stranger.nearby(35.0, 139.0) == []


async def test_alert_resolved_before_its_fanout_reaches_nobody(app_client: AppClient) -> None:
    client = await app_client(lost_inline_fanout_max=0)  # the job path
    await deps(client).runner.stop()
    reporter, watcher = await new_user(client), await new_user(client)
    await watcher.watch(1.0, 1.0)
    alert = await reporter.report(1.0, 1.0)
    await reporter.sock.command(LostResolve(id=reporter.sock.next_id(), alert_id=alert.id))
    # One batch: the alert job, which stops at once; nobody was sent it, so the
    # resolution has no one to tell and queues no job.
    assert await FanoutRunner(deps(client).stream, deps(client).presence).drain() == 1
    await watcher.sock.expect_nothing()
    assert await alert_events_by_user(client, alert.id) == {}


async def test_a_job_report_is_acknowledged_before_any_watcher_is_told(
    app_client: AppClient,
) -> None:
    client = await app_client(lost_inline_fanout_max=0)  # the job path
    await deps(client).runner.stop()  # no runner: the reply must not depend on one
    reporter, watcher = await new_user(client), await new_user(client)
    await watcher.watch(1.0, 1.0)
    alert = await reporter.report(1.0, 1.0)
    pending = await app_of(client)[RUNTIME].deps.db.fetchval(
        "SELECT count(*) FROM lost_fanout_jobs WHERE alert_id = $1 AND done_at IS NULL",
        alert.id)
    assert pending == 1
    await watcher.sock.expect_nothing()
    await FanoutRunner(deps(client).stream, deps(client).presence).drain()
    assert (await watcher.sock.expect("lost.alert")).alert.id == alert.id


async def test_offline_watcher_resumes_and_gets_the_alert(app_client: AppClient) -> None:
    client = await app_client()
    reporter = await new_user(client)
    reg = await register(client)
    sock = await open_session(client, reg.access_token)
    from tests.domain.lost_found.helpers import User
    watcher = User(reg, sock)
    await watcher.watch(-33.87, 151.21, radius_m=3000)
    assert sock.welcome is not None
    last = sock.welcome.last_seq
    await sock.close()
    await wait_online(client, reg.user_id, False)  # the close is processed after the echo

    alert = await reporter.report(-33.86, 151.2, radius_m=1000)
    await wait_jobs_done(client)

    back = await open_session(client, reg.access_token, resume_from=last)
    assert back.welcome is not None and back.welcome.resumed is True
    event = await back.expect("lost.alert")
    assert event.alert.id == alert.id and event.seq == last + 1
    note = await back.expect("notification")
    assert note.seq == last + 2 and note.notification.kind == "lost.alert"
    await back.expect_nothing()
    # The same notification is in the inbox, and a push was queued (they were offline).
    inbox = await back.command(NotificationsList(id="n1"))
    assert [n.id for n in inbox.notifications] == [note.notification.id]
    assert inbox.unread_count == 1
    queued = await app_of(client)[RUNTIME].deps.db.fetchval(
        "SELECT count(*) FROM push_outbox WHERE user_id = $1", reg.user_id)
    assert queued == 1


@pytest.mark.parametrize("batch_size", [2, 3])
async def test_crash_mid_job_resumes_and_every_watcher_gets_it_once(
    app_client: AppClient, batch_size: int
) -> None:
    client = await app_client(lost_inline_fanout_max=0)
    await deps(client).runner.stop()  # this test plays the runners itself
    stream = deps(client).stream
    reporter = await new_user(client)
    watchers = [await new_user(client) for _ in range(7)]
    for w in watchers:
        await w.watch(45.0, 7.0, radius_m=1000)
    alert = await reporter.report(45.0, 7.0, radius_m=1000)

    # Node 1 does one batch, then dies in the middle of its second (after appending,
    # before commit): that batch must vanish.
    node1 = FanoutRunner(stream, deps(client).presence, batch_size=batch_size)
    assert await node1.run_batch()

    async def crash() -> None:
        raise RuntimeError("node 1 died")

    node1.before_commit = crash
    with pytest.raises(RuntimeError):
        await node1.run_batch()
    assert sum((await alert_events_by_user(client, alert.id)).values()) == batch_size

    # Two fresh nodes finish the job concurrently.
    node2 = FanoutRunner(stream, deps(client).presence, batch_size=batch_size)
    node3 = FanoutRunner(stream, deps(client).presence, batch_size=batch_size)
    await asyncio.gather(node2.drain(), node3.drain())

    assert await alert_events_by_user(client, alert.id) == {w.id: 1 for w in watchers}
    job = await app_of(client)[RUNTIME].deps.db.fetchrow(
        "SELECT delivered, done_at FROM lost_fanout_jobs WHERE alert_id = $1", alert.id)
    assert job["delivered"] == 7 and job["done_at"] is not None
    for w in watchers:
        event = await w.sock.expect("lost.alert")
        assert event.alert.id == alert.id and event.seq == 1
        assert (await w.sock.expect("notification")).seq == 2
        await w.sock.expect_nothing(0.05)
    # Streams have no gaps: every watcher's last seq is 2 (alert + notification).
    positions = await stream.positions([w.id for w in watchers])
    assert set(positions.values()) == {2}


@pytest.mark.parametrize("inline_max", [0, 100])
async def test_idempotent_resend_creates_one_alert_and_one_fanout(
    app_client: AppClient, inline_max: int
) -> None:
    client = await app_client(lost_inline_fanout_max=inline_max)
    reporter, watcher = await new_user(client), await new_user(client)
    await watcher.watch(1.0, 2.0)
    cmd = dict(description="Grey cat", location=Location(lat=1.0, lng=2.0), radius_m=500,
               idempotency_key="lost-1")
    first = await reporter.sock.command(LostReport(id="a", **cmd))  # type: ignore[arg-type]
    second = await reporter.sock.command(LostReport(id="b", **cmd))  # type: ignore[arg-type]
    assert first.alert == second.alert
    await wait_jobs_done(client)
    pool = app_of(client)[RUNTIME].deps.db
    assert await pool.fetchval("SELECT count(*) FROM lost_alerts") == 1
    assert await pool.fetchval("SELECT count(*) FROM lost_fanout_jobs") == (inline_max == 0)
    assert await alert_events_by_user(client, first.alert.id) == {watcher.id: 1}
    await watcher.sock.expect("lost.alert")
    await watcher.sock.expect("notification")
    await watcher.sock.expect_nothing()


async def test_few_watchers_are_sent_the_alert_in_the_reports_own_transaction(
    app_client: AppClient,
) -> None:
    client = await app_client(lost_inline_fanout_max=3)
    await deps(client).runner.stop()  # no runner: inline must not need one
    reporter = await new_user(client)
    watchers = [await new_user(client) for _ in range(3)]
    for w in watchers:
        await w.watch(12.0, 12.0)
    alert = await reporter.report(12.0, 12.0)
    # Already committed when the reply arrives: no job, every watcher's events stored.
    pool = app_of(client)[RUNTIME].deps.db
    assert await pool.fetchval("SELECT count(*) FROM lost_fanout_jobs") == 0
    assert await alert_events_by_user(client, alert.id) == {w.id: 1 for w in watchers}
    for w in watchers:
        event = await w.sock.expect("lost.alert")
        assert event.alert.id == alert.id and event.seq == 1
        note = await w.sock.expect("notification")
        assert note.seq == 2 and note.notification.data == {"alert_id": alert.id}
    # Its resolution goes to the same recipients inline too.
    await reporter.sock.command(LostResolve(id=reporter.sock.next_id(), alert_id=alert.id))
    assert await pool.fetchval("SELECT count(*) FROM lost_fanout_jobs") == 0
    for w in watchers:
        event = await w.sock.expect("lost.alert")
        assert event.alert.status == AlertStatus.RESOLVED and event.seq == 3
        await w.sock.expect_nothing(0.05)


async def test_more_watchers_than_the_inline_maximum_go_to_a_job(app_client: AppClient) -> None:
    client = await app_client(lost_inline_fanout_max=2)
    await deps(client).runner.stop()
    reporter = await new_user(client)
    watchers = [await new_user(client) for _ in range(3)]
    for w in watchers:
        await w.watch(13.0, 13.0)
    alert = await reporter.report(13.0, 13.0)
    pool = app_of(client)[RUNTIME].deps.db
    assert await pool.fetchval(
        "SELECT count(*) FROM lost_fanout_jobs WHERE done_at IS NULL") == 1
    assert await alert_events_by_user(client, alert.id) == {}
    await FanoutRunner(deps(client).stream, deps(client).presence).drain()
    assert await alert_events_by_user(client, alert.id) == {w.id: 1 for w in watchers}
    # Three recipients: the resolution is a job too.
    await reporter.sock.command(LostResolve(id=reporter.sock.next_id(), alert_id=alert.id))
    assert await pool.fetchval(
        "SELECT count(*) FROM lost_fanout_jobs WHERE kind = 'resolved' AND done_at IS NULL") == 1


async def test_a_job_queued_on_one_node_wakes_the_runner_of_another(
    app_client: AppClient,
) -> None:
    # Polling every 5 minutes: only the wake-up can make the job run within the wait.
    a = await app_client(lost_inline_fanout_max=0, lost_fanout_poll_s=300)
    b = await app_client(lost_inline_fanout_max=0, lost_fanout_poll_s=300)
    await deps(a).runner.stop()  # node A queues the job but cannot run it
    reporter = await new_user(a)
    watcher = await new_user(b)
    await watcher.watch(14.0, 14.0)
    alert = await reporter.report(14.0, 14.0)
    event = await watcher.sock.expect("lost.alert", timeout=10)
    assert event.alert.id == alert.id
    await wait_jobs_done(a)
