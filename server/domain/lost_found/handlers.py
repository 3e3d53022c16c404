"""lost.* commands → the lost & found service."""

from __future__ import annotations

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
from server.commands import AreaHandlers, Caller
from server.domain.lost_found.service import LostFoundService


async def report(lost: LostFoundService, caller: Caller, cmd: LostReport) -> AlertResult:
    return await lost.report_lost(caller.user_id, cmd)


async def update(lost: LostFoundService, caller: Caller, cmd: LostUpdate) -> AlertResult:
    return await lost.update_alert(caller.user_id, cmd)


async def resolve(lost: LostFoundService, caller: Caller, cmd: LostResolve) -> AlertResult:
    return await lost.resolve_alert(caller.user_id, cmd.alert_id)


async def nearby(lost: LostFoundService, caller: Caller, cmd: LostNearby) -> AlertsResult:
    return await lost.nearby_alerts(caller.user_id, cmd)


async def watch(lost: LostFoundService, caller: Caller, cmd: LostWatch) -> WatchResult:
    return await lost.add_watch(caller.user_id, cmd)


async def unwatch(lost: LostFoundService, caller: Caller, cmd: LostUnwatch) -> Empty:
    await lost.remove_watch(caller.user_id, cmd.watch_id)
    return Empty()


async def watches(lost: LostFoundService, caller: Caller, cmd: LostWatches) -> WatchesResult:
    return await lost.list_watches(caller.user_id)


async def sighting(lost: LostFoundService, caller: Caller, cmd: LostSightingCommand
                   ) -> SightingResult:
    return await lost.report_sighting(caller.user_id, cmd)


async def sightings(lost: LostFoundService, caller: Caller, cmd: LostSightings
                    ) -> SightingsResult:
    return await lost.list_sightings(caller.user_id, cmd)


HANDLERS: AreaHandlers = {
    LostReport: report,
    LostUpdate: update,
    LostResolve: resolve,
    LostNearby: nearby,
    LostWatch: watch,
    LostUnwatch: unwatch,
    LostWatches: watches,
    LostSightingCommand: sighting,
    LostSightings: sightings,
}
