// Type assertions compiled by tests/gateway/test_contract_tools.py (tsc --strict) next to
// the TypeScript that openapi-typescript generated from the served contracts. Every
// `@ts-expect-error` line must really be an error, so each assertion cuts both ways.
import type { components } from "./socket";
type S = components["schemas"];

// `swipe`'s match is always on the wire, null included.
export const noMatch: S["SwipeResult"] = { match: null };
// @ts-expect-error the key is always there
export const missing: S["SwipeResult"] = {};
// Optional command fields are optional (limit has a default, cursor may be absent).
export const firstPage: S["DiscoveryCandidates"] = { type: "discovery.candidates", id: "c1", pet_id: "p" };
// The command -> result link: each command's own ok reply carries its result type.
export const sent: S["ChatSendOk"]["result"] = {} as S["MessageResult"];
export const swiped: S["SwipeOk"] = { type: "ok", id: "c2", result: { match: null } };
// @ts-expect-error a swipe's result is not a chat message
export const wrong: S["SwipeOk"]["result"] = {} as S["MessageResult"];
export const socketError: S["Error"] = { type: "error", id: null, code: "bad_request", message: "body: required", field: "body" };
