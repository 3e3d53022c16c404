"""Password hashing: argon2id through argon2-cffi, off the event loop, bounded per process.

Hashing and verifying take tens of milliseconds and tens of MiB by design, so both run
in a worker thread (argon2-cffi releases the GIL), at most ``PASSWORD_HASH_CONCURRENCY``
at once per process (memory: that many times ``PASSWORD_HASH_MEMORY_KIB``). At most
``PASSWORD_HASH_QUEUE`` more wait for a slot; a request beyond that is refused at once
with ``Unavailable`` (503, ``Retry-After``) instead of queueing without bound, so a login
flood costs each node a fixed amount of memory and CPU, and every queued request is
answered within about ``queue / concurrency`` hash times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.errors import Unavailable
from server.settings import Settings

BUSY_RETRY_S = 1.0
R = TypeVar("R")


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int, *, concurrency: int = 4,
                 queue: int = 64) -> None:
        # parallelism=1: the thread pool already gives parallelism across requests,
        # and it lets tests use argon2's minimum memory (8 KiB per lane).
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=Type.ID
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._admitted = 0
        self._most = concurrency + queue
        self._dummy_hash: str | None = None
        self.running = 0
        """Hashes running now (a gauge for tests and metrics)."""
        self.peak = 0
        """The most hashes that ever ran at once in this process."""
        self.refused = 0
        """Requests refused because the queue was full."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(settings.password_hash_time_cost, settings.password_hash_memory_kib,
                   concurrency=settings.password_hash_concurrency,
                   queue=settings.password_hash_queue)

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self._hasher.hash(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(lambda: self._verify(password_hash, password))

    async def _run(self, work: Callable[[], R]) -> R:
        if self._admitted >= self._most:
            self.refused += 1
            raise Unavailable("server busy checking passwords; retry shortly",
                              retry_after_s=BUSY_RETRY_S)
        self._admitted += 1
        try:
            async with self._slots:
                self.running += 1
                self.peak = max(self.peak, self.running)
                try:
                    return await asyncio.to_thread(work)
                finally:
                    self.running -= 1
        finally:
            self._admitted -= 1

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current Settings."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def burn(self, password: str) -> None:
        """Spend the time of one verification, for an unknown email: the answer's timing
        must not tell whether the account exists."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("not a real password: timing equaliser")
        await self.verify(self._dummy_hash, password)
