"""Object storage: S3-compatible (aiobotocore) or local disk under DATA_DIR.

This module holds the interface and the reachability check used by /readyz;
the uploads feature extends both backends with put/get/presign.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any


class Storage(ABC):
    name: str

    @abstractmethod
    async def check(self) -> None:
        """Raise if the store cannot be used (readiness)."""


class LocalStorage(Storage):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    async def check(self) -> None:
        probe = self.root / ".ready"
        await asyncio.to_thread(probe.write_bytes, b"ok")


class S3Storage(Storage):
    name = "s3"

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    async def check(self) -> None:
        await self.client.head_bucket(Bucket=self.bucket)
