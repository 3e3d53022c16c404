"""What a command handler gets, returns, and the table the gateway dispatches through.

Each area's ``handlers.py`` is a module of functions ``async def send(chat, caller, cmd)``
— the area's service first, then who is calling, then the decoded command — and a
``HANDLERS`` mapping from command class to function. The composition root
(``server.app``) binds every area's service into one ``CommandTable``
(``table.bind(ChatService(deps), chat.HANDLERS)``) and hands the finished table to the
gateway, which looks a command up by its type and awaits the handler. A handler returns
the command's result Struct or raises an ``server.errors.AppError``.

Commands of one connection run one at a time, in arrival order.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from protocol.base import Command, Result
from server.principal import Principal

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a command, and on which connection."""

    principal: Principal
    connection_id: str

    @property
    def user_id(self) -> str:
        return self.principal.user_id


Handler = Callable[[Caller, Any], Awaitable[Result]]
"""A bound handler: ``await handler(caller, command)`` → the command's result."""

AreaHandlers = Mapping[type[Command], Callable[[Any, Caller, Any], Awaitable[Result]]]
"""An area's ``HANDLERS``: command class → ``async def f(service, caller, command)``."""


class CommandTable:
    """Command class → bound handler. Built once at start-up, read on every command."""

    def __init__(self) -> None:
        self._handlers: dict[type[Command], Handler] = {}
        self._services: dict[type, object] = {}

    def bind(self, service: S, handlers: AreaHandlers) -> S:
        """Add an area's handlers with their service bound first; returns the service."""
        for command_type, function in handlers.items():
            self.add(command_type, functools.partial(function, service))
        self._services[type(service)] = service
        return service

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
        """Replace handlers (None removes one). For tests and embedders, before start-up
        ends; see ``create_app(handlers=...)``."""
        for command_type, handler in replacements.items():
            if handler is None:
                self._handlers.pop(command_type, None)
            else:
                self._handlers[command_type] = handler

    def get(self, command_type: type[Command]) -> Handler | None:
        return self._handlers.get(command_type)

    def __contains__(self, command_type: object) -> bool:
        return command_type in self._handlers

    def __iter__(self) -> Iterator[type[Command]]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)
