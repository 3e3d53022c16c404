"""What a command handler gets, returns, and the table the gateway dispatches through.

Each area's ``handlers.py`` is a module of functions ``async def send(chat, caller, cmd)``
— the area's service first, then who is calling, then the decoded command — and a
``HANDLERS`` mapping from command class to function. The composition root
(``server.app``) binds every area's service into one ``CommandTable``
(``table.bind(ChatService(deps), chat.HANDLERS)``) and hands the finished table to the
gateway, which looks a command up by its type and awaits the handler. A handler returns
the command's result Struct or raises an ``server.errors.AppError``.

A ``guard`` given to ``bind`` runs before every handler of that area, with the caller and
the command, and refuses by raising — so a rule such as "admin commands are for admins"
is stated once, where the table is built, and no handler can forget it.

Commands of one connection run one at a time, in arrival order.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from protocol.base import Command, Result
from server.principal import Principal
from server.realtime.memo import Memo

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a command, and on which connection (with that connection's memo: values
    kept until a durable event changes them, see ``server.realtime.memo``)."""

    principal: Principal
    connection_id: str
    memo: Memo = field(default_factory=Memo)

    @property
    def user_id(self) -> str:
        return self.principal.user_id


Handler = Callable[[Caller, Any], Awaitable[Result]]
"""A bound handler: ``await handler(caller, command)`` → the command's result."""

Guard = Callable[[Caller, Command], Awaitable[None]]
"""Runs before a guarded handler; raises (e.g. ``Forbidden``) to refuse the command."""

AreaHandlers = Mapping[type[Command], Callable[[Any, Caller, Any], Awaitable[Result]]]
"""An area's ``HANDLERS``: command class → ``async def f(service, caller, command)``."""


class CommandTable:
    """Command class → bound handler. Built once at start-up, read on every command."""

    def __init__(self) -> None:
        self._handlers: dict[type[Command], Handler] = {}
        self._services: dict[type, object] = {}
        self._guards: dict[type[Command], Guard] = {}

    def bind(self, service: S, handlers: AreaHandlers, *, guard: Guard | None = None) -> S:
        """Add an area's handlers with their service bound first; returns the service.
        With ``guard``, every one of these handlers runs only after ``guard`` passed."""
        for command_type, function in handlers.items():
            bound: Handler = functools.partial(function, service)
            self.add(command_type, bound if guard is None else _guarded(guard, bound))
            if guard is not None:
                self._guards[command_type] = guard
        self._services[type(service)] = service
        return service

    def guard_of(self, command_type: type[Command]) -> Guard | None:
        """The guard a command was bound with (None: unguarded)."""
        return self._guards.get(command_type)

    def service(self, cls: type[S]) -> S:
        """The bound service of class ``cls`` (tests, and areas wired after binding)."""
        found = self._services.get(cls)
        if not isinstance(found, cls):
            raise KeyError(f"no {cls.__name__} is bound")
        return found

    def add(self, command_type: type[Command], handler: Handler) -> None:
        if command_type in self._handlers:
            raise ValueError(f"{command_type.wire_type()} has two handlers")
        self._handlers[command_type] = handler

    def override(self, replacements: Mapping[type[Command], Handler | None]) -> None:
        """Replace handlers (None removes one), keeping the guard they were bound with.
        For tests and embedders, before start-up ends; see ``create_app(handlers=...)``."""
        for command_type, handler in replacements.items():
            if handler is None:
                self._handlers.pop(command_type, None)
            else:
                guard = self._guards.get(command_type)
                # A replaced handler keeps its area's guard: no seam can open admin commands.
                self._handlers[command_type] = (handler if guard is None
                                                else _guarded(guard, handler))

    def get(self, command_type: type[Command]) -> Handler | None:
        return self._handlers.get(command_type)

    def __contains__(self, command_type: object) -> bool:
        return command_type in self._handlers

    def __iter__(self) -> Iterator[type[Command]]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


def _guarded(guard: Guard, handler: Handler) -> Handler:
    async def run(caller: Caller, command: Any) -> Result:
        await guard(caller, command)
        return await handler(caller, command)
    return run
