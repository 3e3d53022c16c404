"""lost.* commands → the lost & found service."""

from __future__ import annotations

from aiohttp import web

from protocol.base import Empty
from protocol.lost import (
    AlertResult,
    AlertsResult,
    LostNearby,
    LostReport,
    LostResolve,
    LostSightingCommand,
    LostSightings,
    LostUnwatch,
    LostUpdate,
    LostWatch,
    LostWatches,
    SightingResult,
    SightingsResult,
    WatchesResult,
    WatchResult,
)
from server.domain.lost_found import service
from server.gateway.dispatch import CommandContext, CommandRegistry

LOST_FOUND = web.AppKey("lost_found", service.LostFound)


def _deps(ctx: CommandContext) -> service.LostFound:
    return ctx.app[LOST_FOUND]


async def report(ctx: CommandContext, cmd: LostReport) -> AlertResult:
    return await service.report_lost(_deps(ctx), ctx.user_id, cmd)


async def update(ctx: CommandContext, cmd: LostUpdate) -> AlertResult:
    return await service.update_alert(_deps(ctx), ctx.user_id, cmd)


async def resolve(ctx: CommandContext, cmd: LostResolve) -> AlertResult:
    return await service.resolve_alert(_deps(ctx), ctx.user_id, cmd.alert_id)


async def nearby(ctx: CommandContext, cmd: LostNearby) -> AlertsResult:
    return await service.nearby_alerts(_deps(ctx), ctx.user_id, cmd)


async def watch(ctx: CommandContext, cmd: LostWatch) -> WatchResult:
    return await service.add_watch(_deps(ctx), ctx.user_id, cmd)


async def unwatch(ctx: CommandContext, cmd: LostUnwatch) -> Empty:
    await service.remove_watch(_deps(ctx), ctx.user_id, cmd.watch_id)
    return Empty()


async def watches(ctx: CommandContext, cmd: LostWatches) -> WatchesResult:
    return await service.list_watches(_deps(ctx), ctx.user_id)


async def sighting(ctx: CommandContext, cmd: LostSightingCommand) -> SightingResult:
    return await service.report_sighting(_deps(ctx), ctx.user_id, cmd)


async def sightings(ctx: CommandContext, cmd: LostSightings) -> SightingsResult:
    return await service.list_sightings(_deps(ctx), ctx.user_id, cmd)


def register(registry: CommandRegistry) -> None:
    registry.add(LostReport, report)
    registry.add(LostUpdate, update)
    registry.add(LostResolve, resolve)
    registry.add(LostNearby, nearby)
    registry.add(LostWatch, watch)
    registry.add(LostUnwatch, unwatch)
    registry.add(LostWatches, watches)
    registry.add(LostSightingCommand, sighting)
    registry.add(LostSightings, sightings)
