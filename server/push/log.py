"""The embedded default: a platform without provider settings records its pushes.

Each push is one log line (platform, device, kind, title, badge — no body or data,
so no message text beyond the title reaches the log) and counts as
``petspark_pushes_total{provider="log", outcome="logged"}``: never silently lost,
and a development setup shows what would have been sent.
"""

from __future__ import annotations

import logging

from server.observability.metrics import Metrics
from server.push.provider import Outcome, PushDevice, PushPayload, PushProvider, PushResult

log = logging.getLogger(__name__)


class LogPushProvider(PushProvider):
    name = "log"

    def __init__(self, *, metrics: Metrics | None = None) -> None:
        super().__init__(metrics=metrics)
        self.count = 0  # pushes recorded by this process (tests and the bench read it)

    async def _deliver(self, device: PushDevice, payload: PushPayload) -> PushResult:
        self.count += 1
        log.info("push recorded (no provider configured for this platform)", extra={
            "provider": self.name, "platform": device.platform, "device_id": device.id,
            "kind": payload.kind, "title": payload.short_title,
            "unread_count": payload.unread_count,
        })
        return PushResult(outcome=Outcome.SENT, logged=True)
