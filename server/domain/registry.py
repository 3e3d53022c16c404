"""Every domain area's command handlers, registered into the gateway's table."""

from __future__ import annotations

from server.domain import lost_found
from server.domain.chat import handlers as chat
from server.domain.matching import handlers as matching
from server.domain.notifications import handlers as notifications
from server.domain.pets import handlers as pets
from server.domain.presence import handlers as presence
from server.domain.presence.service import announce
from server.gateway.dispatch import CommandRegistry, PresenceListener


def register_all(registry: CommandRegistry) -> None:
    """Add each area's handlers (adoption, community and admin arrive with their issues)."""
    pets.register(registry)
    matching.register(registry)
    chat.register(registry)
    notifications.register(registry)
    presence.register(registry)
    lost_found.register(registry)


def presence_listeners() -> list[PresenceListener]:
    """Called by the gateway when a user comes online (first socket on any node) or goes
    offline (last socket gone)."""
    return [announce]
