"""Password hashing: argon2id through argon2-cffi, off the event loop.

Hashing and verifying take tens of milliseconds and tens of MiB by design, so
both run in a worker thread (argon2-cffi releases the GIL) and a semaphore
bounds how many run at once, so a login burst cannot exhaust memory.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.settings import Settings


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int, *, concurrency: int = 4) -> None:
        # parallelism=1: the thread pool already gives parallelism across requests,
        # and it lets tests use argon2's minimum memory (8 KiB per lane).
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=Type.ID
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy_hash: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(settings.password_hash_time_cost, settings.password_hash_memory_kib)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self._verify, password_hash, password)

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
