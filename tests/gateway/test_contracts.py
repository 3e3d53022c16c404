"""The served contracts: every route described, nothing described that is not routed,
servers and contact from the serving address."""

from __future__ import annotations

from collections.abc import Callable

from protocol.messages import COMMANDS, EVENTS
from server.app import create_app
from server.http.contracts import (
    OPERATIONS,
    UNDESCRIBED,
    Operation,
    describe,
    registered_routes,
    request_fields,
)
from server.settings import Settings
from tests.gateway.conftest import AppClient


async def test_asyncapi_is_generated_from_the_protocol(app_client: AppClient) -> None:
    client = await app_client()
    resp = await client.get("/asyncapi.json")
    assert resp.status == 200
    text = await resp.text()
    for tag in [*COMMANDS, *EVENTS, "hello", "welcome", "ping", "pong", "ack", "ok", "error"]:
        assert f'"{tag}"' in text, tag
    doc = await resp.json()
    host = f"{client.server.host}:{client.server.port}"
    server = doc["servers"]["petspark"]
    assert (server["host"], server["protocol"]) == (host, "ws")
    assert doc["info"]["contact"] == {"name": "PetSpark backend", "url": f"http://{host}/",
                                      "email": "no-reply@localhost"}  # MAIL_FROM's address


async def test_openapi_describes_exactly_the_routes_of_the_server(
    app_client: AppClient, make_settings: Callable[..., Settings]
) -> None:
    client = await app_client(public_url="https://api.petspark.example/",
                              api_contact_email="api@petspark.example")
    doc = await (await client.get("/openapi.json")).json()
    assert doc["servers"] == [{"url": "https://api.petspark.example"}]
    assert doc["info"]["contact"]["email"] == "api@petspark.example"
    described = {(method, path) for path, item in doc["paths"].items() for method in item}
    routed = registered_routes(client.app)
    assert described == routed
    assert ("get", "/api/v1/files/{key}") in routed  # local storage
    for path in ("/healthz", "/readyz", "/metrics", "/ws", "/openapi.json", "/asyncapi.json"):
        assert path in doc["paths"], path
    ws = doc["paths"]["/ws"]["get"]
    assert set(ws["responses"]) == {"101", "400", "403", "503", "default"}
    assert {"bearer": []} in ws["security"] and {} in ws["security"]
    # The development pages are routed but deliberately not described.
    assert any(r.resource is not None and r.resource.canonical.startswith(UNDESCRIBED)
               for r in client.app.router.routes())
    assert not any(p.startswith(UNDESCRIBED) for p in doc["paths"])

    # With S3 the local store's routes are neither routed nor described; and every
    # operation is routed in one configuration or the other (no stale entries).
    s3 = create_app(make_settings(s3_bucket="petspark-test", redis=False))
    s3_routes = registered_routes(s3)
    assert not any(path.startswith("/api/v1/files") for _, path in s3_routes)
    assert {(op.method, op.path) for op in OPERATIONS} == routed | s3_routes


async def test_openapi_documents_the_variant_and_every_upload_route(
    app_client: AppClient,
) -> None:
    client = await app_client()
    doc = await (await client.get("/openapi.json")).json()
    for path in ("/api/v1/uploads", "/api/v1/uploads/presign", "/api/v1/uploads/multipart",
                 "/api/v1/uploads/{id}/complete", "/api/v1/uploads/{id}"):
        assert path in doc["paths"], path
    get = doc["paths"]["/api/v1/uploads/{id}"]["get"]
    assert get["operationId"] == "getV1UploadsId"
    params = {p["name"]: p for p in get["parameters"]}
    assert params["id"]["in"] == "path" and params["id"]["required"] is True
    assert params["variant"]["in"] == "query"
    assert params["variant"]["schema"] == {"$ref": "#/components/schemas/UploadVariant"}
    schemas = doc["components"]["schemas"]
    assert schemas["UploadVariant"]["enum"] == ["image", "thumbnail"]
    assert set(schemas["Upload"]["properties"]) >= {
        "id", "owner_id", "purpose", "content_type", "size", "status", "created_at"}
    assert "url" not in schemas["Upload"]["required"]
    assert "multipart/form-data" in doc["paths"]["/api/v1/uploads"]["post"]["requestBody"][
        "content"]
    error = schemas["ErrorDetail"]
    assert set(error["properties"]) == {"code", "message", "field"}
    assert error["required"] == ["code", "message"]


def test_error_fields_come_from_the_routes_requests() -> None:
    assert request_fields("POST", "/api/v1/auth/register") == {
        "email", "password", "display_name"}
    assert request_fields("GET", "/api/v1/uploads/{id}") == {"id", "variant"}
    assert request_fields("POST", "/api/v1/uploads") == {"purpose", "file"}
    assert request_fields("GET", "/nowhere") == frozenset()


def test_an_operation_without_a_tag_is_grouped_by_its_path() -> None:
    """An ``Operation`` written without ``tag`` (as a route merged beside another area's
    edit of the list would be) still builds a document: the path's area names its group."""
    hook = Operation(method="post", path="/api/v1/newarea/{id}/hook",
                     summary="A new area's hook.", errors=(400, 401))
    health = next(op for op in OPERATIONS if op.path == "/healthz")
    doc = describe([hook, health])
    assert doc["paths"]["/api/v1/newarea/{id}/hook"]["post"]["tags"] == ["newarea"]
    assert doc["paths"]["/healthz"]["get"]["tags"] == ["operations"]
    tags = {t["name"]: t for t in doc["tags"]}
    assert tags["newarea"] == {"name": "newarea"}  # no description of its own yet
    assert tags["operations"]["description"].startswith("Health")
