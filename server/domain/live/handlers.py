"""live.* commands → the live streaming service."""

from __future__ import annotations

from protocol.base import Empty
from protocol.live import (
    JoinResult,
    LiveChatCommand,
    LiveChatResult,
    LiveEnd,
    LiveJoin,
    LiveLeave,
    LiveList,
    LiveReact,
    LiveSignalCommand,
    LiveStart,
    StartResult,
    StreamResult,
    StreamsResult,
)
from server.commands import AreaHandlers, Caller
from server.domain.live.service import LiveService


async def start(live: LiveService, caller: Caller, cmd: LiveStart) -> StartResult:
    return await live.start_stream(caller, cmd)


async def end(live: LiveService, caller: Caller, cmd: LiveEnd) -> StreamResult:
    return await live.end_stream(caller, cmd.stream_id)


async def list_(live: LiveService, caller: Caller, cmd: LiveList) -> StreamsResult:
    return await live.list_streams(caller, cmd.cursor, cmd.limit)


async def join(live: LiveService, caller: Caller, cmd: LiveJoin) -> JoinResult:
    return await live.join(caller, cmd.stream_id)


async def leave(live: LiveService, caller: Caller, cmd: LiveLeave) -> Empty:
    return await live.leave(caller, cmd.stream_id)


async def chat(live: LiveService, caller: Caller, cmd: LiveChatCommand) -> LiveChatResult:
    return await live.chat(caller, cmd)


async def react(live: LiveService, caller: Caller, cmd: LiveReact) -> Empty:
    return await live.react(caller, cmd)


async def signal(live: LiveService, caller: Caller, cmd: LiveSignalCommand) -> Empty:
    return await live.signal(caller, cmd)


HANDLERS: AreaHandlers = {
    LiveStart: start,
    LiveEnd: end,
    LiveList: list_,
    LiveJoin: join,
    LiveLeave: leave,
    LiveChatCommand: chat,
    LiveReact: react,
    LiveSignalCommand: signal,
}
