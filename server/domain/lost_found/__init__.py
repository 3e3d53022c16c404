"""Lost & found (issue #7): alerts, watch circles, sightings, durable watcher fan-out."""

from __future__ import annotations

from server.domain.lost_found.handlers import register

__all__ = ["register"]
