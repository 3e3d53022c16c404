"""Wait for a condition, never for a fixed time: ``await until(lambda: ..., timeout=5)``."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

Condition = Callable[[], bool | Awaitable[bool]]


async def until(condition: Condition, *, timeout: float = 5.0, interval: float = 0.01,
                what: str = "the condition") -> None:
    """Poll ``condition`` (sync or async) until it is true; fail after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def past(wall_time: float, *, timeout: float = 10.0) -> None:
    """Until the wall clock is past ``wall_time`` (e.g. a token's expiry)."""
    await until(lambda: time.time() > wall_time, timeout=timeout,
                what=f"the clock to pass {wall_time}")


async def next_millisecond() -> None:
    """Until the millisecond clock ticks (connection ids sort by open time in ms)."""
    start = int(time.time() * 1000)
    await until(lambda: int(time.time() * 1000) > start, interval=0.001,
                what="the next millisecond")


async def wait_ready(http: aiohttp.ClientSession, base: str, log_path: Path, *,
                     timeout: float = 30.0) -> None:
    """Wait until the server process at ``base`` answers ``/readyz`` 200; after
    ``timeout`` s fail with its log (``log_path``), which says why it never got there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with http.get(f"{base}/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(await asyncio.to_thread(log_path.read_text))
        await asyncio.sleep(0.1)
