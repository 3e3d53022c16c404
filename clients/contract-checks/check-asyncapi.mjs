// Parse an AsyncAPI document with the official parser (@asyncapi/parser and its default
// ruleset) and print every diagnostic as one JSON array on stdout:
// [{severity: "error" | "warning" | "info" | "hint", code, message, path}].
// Usage: node check-asyncapi.mjs FILE. Exit 0 when it ran (the caller judges), 2 on misuse.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];

const file = process.argv[2];
if (!file) {
  console.error("usage: node check-asyncapi.mjs FILE");
  process.exit(2);
}
const { document, diagnostics } = await new Parser().parse(readFileSync(file, "utf8"));
const out = diagnostics.map((d) => ({
  severity: SEVERITY[d.severity] ?? String(d.severity),
  code: String(d.code),
  message: d.message,
  path: d.path.join("/"),
}));
if (document === undefined && !out.some((d) => d.severity === "error")) {
  out.push({ severity: "error", code: "no-document", message: "the parser returned no document", path: "" });
}
console.log(JSON.stringify(out));
