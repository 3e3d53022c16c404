"""Upload fixtures: a real S3-compatible server (moto's, on loopback) and both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp.test_utils import TestClient
from botocore.config import Config
from multidict import CIMultiDict

from tests.conftest import AppClient
from tests.support.services import free_port

S3_KEY_ID = "petspark-test"
S3_SECRET = "petspark-test-secret"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in a thread on a free loopback port (a real HTTP server)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_admin(endpoint: str) -> Any:
    """A plain boto3 client for test set-up and for inspecting what the server stored."""
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for one storage backend: local disk, or a fresh bucket on moto."""
    if request.param == "local":
        return {}
    endpoint: str = request.getfixturevalue("s3_endpoint")
    bucket = f"petspark-{uuid.uuid4().hex[:12]}"
    s3_admin(endpoint).create_bucket(Bucket=bucket)
    return {
        "s3_bucket": bucket, "s3_endpoint_url": endpoint, "s3_path_style": True,
        "s3_access_key_id": S3_KEY_ID, "s3_secret_access_key": S3_SECRET,
    }


@pytest.fixture
async def make_client(app_client: AppClient, backend: dict[str, Any]) -> Callable[..., Any]:
    """``await make_client(**overrides)`` → a TestClient on a fresh app on ``backend``
    (the shared ``app_client``; ``moderator=`` passes through to ``create_app``)."""

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await app_client(
            **{**backend, "upload_cleanup_interval_s": 3600.0, **overrides})
        return client

    return factory


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """For URLs outside the app (the S3 server)."""
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch(
    client: TestClient[Any, Any], http: aiohttp.ClientSession, method: str, url: str,
    **kwargs: Any,
) -> tuple[int, bytes, CIMultiDict[str]]:
    """Request a URL the server handed out: root-relative (local store) or absolute (S3)."""
    if url.startswith("/"):
        resp = await client.request(method, url, **kwargs)
    else:
        resp = await http.request(method, url, **kwargs)
    async with resp:
        return resp.status, await resp.read(), CIMultiDict(resp.headers)


def form(fields: dict[str, str], data: bytes, filename: str = "photo.jpg",
         content_type: str = "image/jpeg") -> aiohttp.FormData:
    """A presigned-POST form: every field, then the file last (S3 requires that order)."""
    fd = aiohttp.FormData()
    for k, v in fields.items():
        fd.add_field(k, v)
    fd.add_field("file", data, filename=filename, content_type=content_type)
    return fd
