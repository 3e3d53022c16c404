"""Command dispatch: a table from command type to handler, and the one error mapping.

Domain areas register their handlers (``registry.add(ChatSend, send)``); a
handler takes a ``CommandContext`` and the decoded command and returns the
command's result Struct, or raises a ``DomainError``. Commands of one
connection run one at a time, in arrival order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from protocol.base import Command, Result
from protocol.codes import ErrorCode
from server.auth.principal import AuthError, Principal
from server.domain.errors import DomainError, RateLimited

C = TypeVar("C", bound=Command)


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a handler may use: the app's resources and who is calling, from where."""

    app: web.Application
    principal: Principal
    connection_id: str

    @property
    def user_id(self) -> str:
        return self.principal.user_id


Handler = Callable[[CommandContext, Any], Awaitable[Result]]


class CommandRegistry:
    def __init__(self) -> None:
        self._handlers: dict[type[Command], Handler] = {}

    def add(self, command_type: type[C], handler: Callable[[CommandContext, C], Awaitable[Result]]
            ) -> None:
        if command_type in self._handlers:
            raise ValueError(f"{command_type.wire_type()} has two handlers")
        self._handlers[command_type] = handler

    def get(self, command_type: type[Command]) -> Handler | None:
        return self._handlers.get(command_type)

    def __contains__(self, command_type: type[Command]) -> bool:
        return command_type in self._handlers


def error_fields(exc: Exception) -> tuple[ErrorCode, str, float | None]:
    """(code, message, retry_after_s) for a known error; callers log anything else."""
    if isinstance(exc, RateLimited):
        return exc.code, exc.message, exc.retry_after_s
    if isinstance(exc, DomainError):
        return exc.code, exc.message, None
    if isinstance(exc, AuthError):
        return ErrorCode(exc.code), exc.message, None
    return ErrorCode.INTERNAL, "internal error", None
