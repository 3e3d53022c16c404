from __future__ import annotations

from protocol.messages import COMMANDS, EVENTS
from tests.gateway.conftest import AppClient


async def test_asyncapi_is_generated_from_the_protocol(app_client: AppClient) -> None:
    client = await app_client()
    resp = await client.get("/asyncapi.json")
    assert resp.status == 200
    text = await resp.text()
    for tag in [*COMMANDS, *EVENTS, "hello", "welcome", "ping", "pong", "ack", "ok", "error"]:
        assert f'"{tag}"' in text, tag


async def test_openapi_lists_upload_routes_with_generated_schemas(app_client: AppClient) -> None:
    client = await app_client()
    doc = await (await client.get("/openapi.json")).json()
    for path in ("/api/v1/uploads", "/api/v1/uploads/presign", "/api/v1/uploads/multipart",
                 "/api/v1/uploads/{id}/complete", "/api/v1/uploads/{id}"):
        assert path in doc["paths"], path
    assert doc["paths"]["/api/v1/uploads/{id}"]["get"]["operationId"] == "getV1UploadsId"
    schemas = doc["components"]["schemas"]
    assert set(schemas["Upload"]["properties"]) >= {
        "id", "owner_id", "purpose", "content_type", "size", "status", "created_at"}
    assert "multipart/form-data" in doc["paths"]["/api/v1/uploads"]["post"]["requestBody"][
        "content"]
