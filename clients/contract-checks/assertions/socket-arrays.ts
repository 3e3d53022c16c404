// Type assertions compiled by tests/gateway/test_contract_tools.py (tsc --strict) next to
// the TypeScript that openapi-typescript generated from the served contracts. Every
// `@ts-expect-error` line must really be an error, so each assertion cuts both ways.
import type { components } from "./socket-arrays";
type S = components["schemas"];

// With --array-length a fixed-length list is an exact tuple; nothing else is a tuple.
export const pair: S["Match"]["pet_ids"] = ["a", "b"];
// @ts-expect-error exactly two
export const one: S["Match"]["pet_ids"] = ["a"];
export const photos: S["Pet"]["photo_ids"] = [];
