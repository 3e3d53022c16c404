// Type assertions compiled by tests/gateway/test_contract_tools.py (tsc --strict) next to
// the TypeScript that openapi-typescript generated from the served contracts. Every
// `@ts-expect-error` line must really be an error, so each assertion cuts both ways.
import type { components, paths } from "./openapi";
type S = components["schemas"];

// Optional fields are optional: no `default: null` makes them required.
export const upload: S["Upload"] = {
  id: "u", owner_id: "o", purpose: "avatar", content_type: "image/png", size: 1,
  status: "pending", created_at: "2026-01-01T00:00:00Z",
};
export const logout: S["LogoutRequest"] = {};
export const complete: S["CompleteRequest"] = {};
// @ts-expect-error a required field stays required
export const noId: S["Upload"] = { owner_id: "o", purpose: "avatar", content_type: "image/png", size: 1, status: "pending", created_at: "x" };

// Field errors are machine-readable; 405 has its own code; codes are a closed list.
export const fieldError: S["ErrorBody"] = { error: { code: "bad_request", message: "email: required", field: "email" } };
export const plainError: S["ErrorBody"] = { error: { code: "method_not_allowed", message: "Method Not Allowed" } };
// @ts-expect-error not an error code
export const teapot: S["ErrorDetail"]["code"] = "teapot";

// ?variant= on GET /api/v1/uploads/{id}.
type GetUpload = paths["/api/v1/uploads/{id}"]["get"];
export const thumbnail: NonNullable<GetUpload["parameters"]["query"]> = { variant: "thumbnail" };
export const noVariant: NonNullable<GetUpload["parameters"]["query"]> = {};
// @ts-expect-error only the documented variants
export const huge: NonNullable<GetUpload["parameters"]["query"]> = { variant: "huge" };
export const uploadId: GetUpload["parameters"]["path"] = { id: "x" };
export const got: GetUpload["responses"][200]["content"]["application/json"] = { upload };

// Health, readiness, metrics, the contracts and the socket upgrade are described.
export const health: paths["/healthz"]["get"]["responses"][200]["content"]["application/json"] = { status: "ok" };
export const notReady: paths["/readyz"]["get"]["responses"][503]["content"]["application/json"] = { status: "unavailable", checks: { database: "failed: OSError" } };
// @ts-expect-error readiness has two states
export const maybe: paths["/readyz"]["get"]["responses"][200]["content"]["application/json"] = { status: "maybe", checks: {} };
export const metrics: paths["/metrics"]["get"]["responses"][200]["content"]["text/plain; version=0.0.4"] = "# HELP";
export type Upgraded = paths["/ws"]["get"]["responses"][101];
export const upgrade: paths["/ws"]["get"]["parameters"]["header"] = { Upgrade: "websocket", "Sec-WebSocket-Protocol": "petspark.v1.msgpack" };
export const crossSite: paths["/ws"]["get"]["responses"][403]["content"]["application/json"] = { error: { code: "forbidden", message: "Origin not allowed" } };

// Every route this server registers is a path of the client (filled in by the test).
export const routes: (keyof paths)[] = ROUTES;
