"""Helpers that read like lost & found: users with sockets, reports, watches, job waits."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from protocol.lost import LostNearby, LostReport, LostWatch
from protocol.objects import Alert, Watch
from protocol.types import Location
from server.domain.lost_found.service import LostFoundService
from server.state import RUNTIME
from tests.support.auth import Registered, register
from tests.support.ws import ProtocolSocket, open_session

EARTH_RADIUS_M = 6371008.8


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def north_of(lat: float, metres: float) -> float:
    """The latitude ``metres`` north of ``lat`` along a meridian."""
    return lat + math.degrees(metres / EARTH_RADIUS_M)


@dataclass
class User:
    reg: Registered
    sock: ProtocolSocket

    @property
    def id(self) -> str:
        return self.reg.user_id

    async def report(self, lat: float, lng: float, radius_m: int = 1000,
                     description: str = "Brown dog, answers to Rex", **kw: Any) -> Alert:
        result = await self.sock.command(LostReport(
            id=self.sock.next_id(), description=description,
            location=Location(lat=lat, lng=lng), radius_m=radius_m, **kw))
        alert: Alert = result.alert
        return alert

    async def watch(self, lat: float, lng: float, radius_m: int = 1000, **kw: Any) -> Watch:
        result = await self.sock.command(LostWatch(
            id=self.sock.next_id(), location=Location(lat=lat, lng=lng), radius_m=radius_m,
            **kw))
        watch: Watch = result.watch
        return watch

    async def nearby(self, lat: float, lng: float, radius_m: int = 100,
                     limit: int = 50) -> list[Alert]:
        result = await self.sock.command(LostNearby(
            id=self.sock.next_id(), location=Location(lat=lat, lng=lng), radius_m=radius_m,
            limit=limit))
        alerts: list[Alert] = result.alerts
        return alerts


async def new_user(client: TestClient[Any, Any], **hello: Any) -> User:
    reg = await register(client)
    return User(reg, await open_session(client, reg.access_token, **hello))


def app_of(client: TestClient[Any, Any]) -> web.Application:
    app = client.app
    assert isinstance(app, web.Application)
    return app


def deps(client: TestClient[Any, Any]) -> LostFoundService:
    return app_of(client)[RUNTIME].commands.service(LostFoundService)


async def wait_jobs_done(client: TestClient[Any, Any], timeout: float = 10.0) -> None:
    pool = app_of(client)[RUNTIME].deps.db
    deadline = asyncio.get_running_loop().time() + timeout
    while await pool.fetchval("SELECT count(*) FROM lost_fanout_jobs WHERE done_at IS NULL"):
        assert asyncio.get_running_loop().time() < deadline, "fan-out jobs not done"
        await asyncio.sleep(0.02)


async def alert_events_by_user(client: TestClient[Any, Any], alert_id: str) -> dict[str, int]:
    """How many lost.alert events for ``alert_id`` each user's stream holds."""
    rows = await app_of(client)[RUNTIME].deps.db.fetch(
        """SELECT user_id::text AS u, count(*) AS n FROM events
           WHERE type = 'lost.alert' AND convert_from(payload, 'UTF8')::jsonb->'alert'->>'id' = $1
           GROUP BY user_id""",
        alert_id,
    )
    return {r["u"]: r["n"] for r in rows}
