"""Commands waiting for their reply, and which of them survive a reconnect."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from protocol import Command


def is_resendable(cmd: Command) -> bool:
    """A command that carries an ``idempotency_key`` or ``client_msg_id``: sending it
    again returns the original result and creates nothing new (PROTOCOL §4)."""
    return bool(getattr(cmd, "idempotency_key", None) or getattr(cmd, "client_msg_id", None))


@dataclass
class PendingCommand:
    command: Command
    resendable: bool
    future: asyncio.Future[object] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    sent_on: int | None = None
    """The connection number it was last sent on; None while not sent."""


class PendingCommands:
    """Command id → ``PendingCommand``, in the order the commands were issued."""

    def __init__(self) -> None:
        self._by_id: dict[str, PendingCommand] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, entry: PendingCommand) -> None:
        if entry.command.id in self._by_id:
            raise ValueError(f"a command with id {entry.command.id!r} is already pending")
        self._by_id[entry.command.id] = entry

    def pop(self, command_id: str) -> PendingCommand | None:
        return self._by_id.pop(command_id, None)

    def discard(self, entry: PendingCommand) -> None:
        if self._by_id.get(entry.command.id) is entry:
            del self._by_id[entry.command.id]

    def unsent(self, connection: int) -> list[PendingCommand]:
        """Commands not sent on connection ``connection`` yet, in issue order."""
        return [e for e in self._by_id.values() if e.sent_on != connection]

    def fail_unsafe(self, error: BaseException) -> None:
        """After a drop: fail the sent, non-resendable commands with ``error``; the
        others stay and are (re)sent after the next ``welcome``."""
        for entry in list(self._by_id.values()):
            if entry.sent_on is not None and not entry.resendable:
                self.discard(entry)
                if not entry.future.done():
                    entry.future.set_exception(error)

    def fail_all(self, error: BaseException) -> None:
        for entry in list(self._by_id.values()):
            if not entry.future.done():
                entry.future.set_exception(error)
        self._by_id.clear()
