"""The Python client's upload() helper against a real server: direct and resumable paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client.uploads import UploadError, upload
from tests.support.auth import register
from tests.uploads import images


async def test_upload_helper_direct_and_multipart(
    make_client: Callable[..., Any], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    client = await make_client(upload_part_bytes=5 * 1024 * 1024)
    user = await register(client)
    base = str(client.server.make_url(""))
    small = await upload(http, base, user.access_token, images.png(), "pet_photo",
                         content_type="image/png")
    assert small["status"] == "pending"

    big = tmp_path / "big.png"
    big.write_bytes(images.noise_png(6 * 1024 * 1024))
    seen: list[tuple[int, int]] = []
    result = await upload(http, base, user.access_token, big, "pet_photo",
                          content_type="image/png", direct_max_bytes=1024,
                          progress=lambda done, total: seen.append((done, total)))
    assert result["status"] == "pending" and result["content_type"] == "image/png"
    assert seen[-1] == (big.stat().st_size, big.stat().st_size) and len(seen) == 2

    with pytest.raises(UploadError) as info:
        await upload(http, base, user.access_token, b"plain text", "pet_photo")
    assert (info.value.status, info.value.code) == (415, "unsupported_media_type")
