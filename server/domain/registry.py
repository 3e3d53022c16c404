"""Every domain area's command handlers, registered into the gateway's table."""

from __future__ import annotations

from server.domain import lost_found
from server.gateway.dispatch import CommandRegistry


def register_all(registry: CommandRegistry) -> None:
    """Add each area's handlers. Areas arrive with their issues (pets, chat, lost, …)."""
    lost_found.register(registry)
