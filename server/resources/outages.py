"""Backend outages: the one place a connection-level failure of PostgreSQL or Redis is
recognised, turned into ``Unavailable``, and logged once per outage.

``backend_of(exc)`` says whether an exception means "the database (or Redis) cannot be
reached right now" — refused or lost connections, connect/acquire/query timeouts, a
server shutting down — as opposed to a bug or a bad query (those stay ``internal``).

``Outages`` keeps, per backend, whether it is down: the first failure logs one warning
("database unavailable") and starts a probe that pings the backend every
``PROBE_EVERY_S``; the first successful ping logs one info line ("database available
again", with how long and how many requests were refused). Requests failing meanwhile
are counted (``petspark_backend_unavailable_total``), not logged, and the edges answer
them ``unavailable`` with ``retry_after_s`` (HTTP 503 + ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import redis.exceptions as redis_errors

from server.errors import Unavailable
from server.observability.metrics import Metrics

log = logging.getLogger(__name__)

DATABASE = "database"
REDIS = "redis"
RETRY_AFTER_S = 2.0
"""What ``unavailable`` replies suggest: the probe notices recovery within ~1 s."""
PROBE_EVERY_S = 0.5
PROBE_TIMEOUT_S = 2.0

Probe = Callable[[], Awaitable[object]]

_PG_CLOSED_MESSAGES = ("connection is closed", "pool is closing", "pool is closed",
                       "connection was closed")


def backend_of(exc: BaseException) -> str | None:
    """``"database"`` or ``"redis"`` when ``exc`` says that backend cannot be reached or
    did not answer in time; None for anything else (a bug, a constraint, bad input)."""
    if isinstance(exc, (redis_errors.ConnectionError, redis_errors.TimeoutError)):
        return REDIS
    if isinstance(exc, (asyncpg.PostgresConnectionError,
                        asyncpg.exceptions.OperatorInterventionError,
                        asyncpg.exceptions.InsufficientResourcesError)):
        return DATABASE
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(
            exc, asyncpg.exceptions.DataError):
        text = str(exc)
        if any(m in text for m in _PG_CLOSED_MESSAGES):
            return DATABASE
        return None
    if isinstance(exc, (OSError, TimeoutError)):
        # Refused/reset connections and timeouts: whose? The library they came out of.
        return _raised_in(exc)
    return None


def _raised_in(exc: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame in traceback.extract_tb(current.__traceback__):
            path = frame.filename.replace("\\", "/")
            if "/asyncpg/" in path:
                return DATABASE
            if "/redis/" in path:
                return REDIS
        current = current.__cause__ or current.__context__
    return None


@dataclass
class _State:
    probe: Probe | None
    down_since: float | None = None
    refused: int = 0
    task: asyncio.Task[None] | None = None


class Outages:
    """Per app: which backends are down now; logs transitions, not requests."""

    def __init__(self, metrics: Metrics, probes: dict[str, Probe]) -> None:
        self.metrics = metrics
        self._states = {name: _State(probe) for name, probe in probes.items()}
        for name in self._states:
            metrics.backend_up.labels(name).set(1)

    def is_down(self, backend: str) -> bool:
        state = self._states.get(backend)
        return state is not None and state.down_since is not None

    def unavailable(self, exc: BaseException) -> Unavailable | None:
        """``Unavailable`` (and the outage noted) when ``exc`` is a backend outage."""
        backend = backend_of(exc)
        if backend is None:
            return None
        self.failed(backend, exc)
        return Unavailable(f"{backend}: temporarily unavailable, retry shortly",
                           retry_after_s=RETRY_AFTER_S)

    def failed(self, backend: str, exc: BaseException) -> None:
        """Note one failure of ``backend``: the first of an outage logs, the rest count."""
        state = self._states.get(backend)
        if state is None:
            state = self._states[backend] = _State(None)
        self.metrics.child(self.metrics.backend_unavailable, backend).inc()
        state.refused += 1
        if state.down_since is not None:
            return
        state.down_since = time.monotonic()
        self.metrics.backend_up.labels(backend).set(0)
        log.warning(f"{backend} unavailable", extra={
            "backend": backend, "error": f"{type(exc).__name__}: {exc}"[:300]})
        if state.probe is not None and (state.task is None or state.task.done()):
            state.task = asyncio.create_task(self._probe(backend, state),
                                             name=f"outage-probe:{backend}")

    def recovered(self, backend: str) -> None:
        """The backend answered again (the probe, or a caller that just used it)."""
        state = self._states.get(backend)
        if state is None or state.down_since is None:
            return
        down_s = time.monotonic() - state.down_since
        log.info(f"{backend} available again", extra={
            "backend": backend, "down_s": round(down_s, 3), "refused": state.refused})
        state.down_since = None
        state.refused = 0
        self.metrics.backend_up.labels(backend).set(1)

    async def _probe(self, backend: str, state: _State) -> None:
        assert state.probe is not None
        while state.down_since is not None:
            await asyncio.sleep(PROBE_EVERY_S)
            try:
                await asyncio.wait_for(state.probe(), timeout=PROBE_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # still down: the next round tries again
                continue
            self.recovered(backend)

    async def stop(self) -> None:
        for state in self._states.values():
            task, state.task = state.task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
