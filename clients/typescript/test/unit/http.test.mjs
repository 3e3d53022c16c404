// HttpApi against a scripted HTTP server on loopback: auth token handling, upload
// progress, and retries of failed parts (503, a dropped connection) and of `complete`.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { afterEach, beforeEach, test } from "node:test";

import { HttpApi, HttpError } from "../../dist/index.js";

let server;
let base;
let handler;
let log;

beforeEach(async () => {
  log = [];
  server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    log.push({ method: req.method, url: req.url, headers: req.headers, body });
    await handler(req, res, body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${server.address().port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const json = (res, status, value, headers = {}) => {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(value));
};
const auth = { user: { id: "u1", display_name: "A", role: "user", email: "a@b.c" }, access_token: "at1", refresh_token: "rt1", expires_at: "2026-11-26T10:15:00Z" };
const upload = (id, size) => ({ upload: { id, owner_id: "u1", purpose: "pet_photo", content_type: "image/png", size, status: "pending", created_at: "2026-11-26T10:00:00Z" } });

test("login keeps the tokens; later calls send the bearer; refreshes are serialised", async () => {
  let refreshes = 0;
  handler = async (req, res) => {
    if (req.url === "/api/v1/auth/login") return json(res, 200, auth);
    if (req.url === "/api/v1/auth/me") return json(res, 200, { user: auth.user });
    if (req.url === "/api/v1/auth/refresh") {
      refreshes += 1;
      await new Promise((r) => setTimeout(r, 20));
      return json(res, 200, { ...auth, access_token: "at2", refresh_token: "rt2" });
    }
    return json(res, 404, { error: { code: "not_found", message: "no route" } });
  };
  const http = new HttpApi({ baseUrl: base });
  await http.login("a@b.c", "pw");
  await http.me();
  assert.equal(log.at(-1).headers.authorization, "Bearer at1");
  const [a, b] = await Promise.all([http.tokenProvider(), http.tokenProvider()]);
  assert.deepEqual([a, b, refreshes], ["at2", "at2", 1]);
  assert.deepEqual(JSON.parse(log.find((r) => r.url === "/api/v1/auth/refresh").body), { refresh_token: "rt1" });
  await assert.rejects(http.request("GET", "/nope"), (e) => e instanceof HttpError && e.status === 404 && e.code === "not_found");
});

test("direct upload: multipart form with purpose first, progress to the file size, 4xx not retried", async () => {
  const file = new Uint8Array(300_000).map((_, i) => i % 251);
  let calls = 0;
  handler = async (req, res, body) => {
    calls += 1;
    if (calls === 1) return json(res, 429, { error: { code: "rate_limited", message: "slow" } }, { "Retry-After": "0" });
    if (calls === 2) return json(res, 201, upload("up1", file.length));
    return json(res, 415, { error: { code: "unsupported_media_type", message: "file: not an image" } });
  };
  const http = new HttpApi({ baseUrl: base });
  const seen = [];
  const result = await http.upload(file, { purpose: "pet_photo", filename: "x.png", contentType: "image/png", onProgress: (s, t) => seen.push([s, t]) });
  assert.equal(result.id, "up1");
  const sent = log[1];
  const text = sent.body.toString("latin1");
  assert.match(sent.headers["content-type"], /^multipart\/form-data; boundary=/);
  assert.ok(text.indexOf('name="purpose"') < text.indexOf('name="file"'));
  assert.ok(sent.body.includes(Buffer.from(file)));
  assert.ok(seen.length > 1 && seen.every(([, t]) => t === file.length));
  assert.deepEqual(seen.at(-1), [file.length, file.length]);
  await assert.rejects(http.uploadDirect(file, { purpose: "pet_photo" }), (e) => e instanceof HttpError && e.status === 415 && e.code === "unsupported_media_type");
  assert.equal(calls, 3); // the 415 was not retried
});

test("multipart upload: a failed part is PUT again on its own; complete gets every ETag", async () => {
  const size = 250_000;
  const file = new Uint8Array(size).map((_, i) => (i * 7) % 256);
  const parts = [
    { part_number: 1, size: 100_000, url: "/parts/1" },
    { part_number: 2, size: 100_000, url: "/parts/2" },
    { part_number: 3, size: 50_000, url: "/parts/3" },
  ];
  const puts = { 1: 0, 2: 0, 3: 0 };
  let completes = 0;
  handler = async (req, res, body) => {
    if (req.url === "/api/v1/uploads/multipart") {
      return json(res, 201, { upload_id: "mp1", part_size: 100_000, parts, expires_at: "2026-11-26T11:00:00Z" });
    }
    const m = /^\/parts\/(\d)$/.exec(req.url);
    if (m) {
      const n = Number(m[1]);
      puts[n] += 1;
      if (n === 1 && puts[n] === 1) return json(res, 503, { error: { code: "unavailable", message: "busy" } }, { "Retry-After": "0" });
      if (n === 2 && puts[n] === 1) return req.socket.destroy(); // a dropped connection
      const start = (n - 1) * 100_000;
      assert.deepEqual(new Uint8Array(body), file.subarray(start, start + parts[n - 1].size));
      res.writeHead(200, { ETag: `"etag-${n}"` });
      return res.end();
    }
    if (req.url === "/api/v1/uploads/mp1/complete") {
      completes += 1;
      if (completes === 1) return json(res, 409, { error: { code: "conflict", message: "upload: nothing has been uploaded yet" } });
      assert.deepEqual(JSON.parse(body), { parts: [1, 2, 3].map((n) => ({ part_number: n, etag: `"etag-${n}"` })) });
      return json(res, 200, upload("mp1", size));
    }
    return json(res, 404, { error: { code: "not_found", message: req.url } });
  };
  const http = new HttpApi({ baseUrl: base });
  const seen = [];
  const result = await http.upload(file, { purpose: "pet_photo", directMaxBytes: 1000, concurrency: 2, onProgress: (s, t) => seen.push([s, t]) });
  assert.equal(result.id, "mp1");
  assert.deepEqual(puts, { 1: 2, 2: 2, 3: 1 });
  assert.equal(completes, 2);
  assert.deepEqual(seen.at(-1), [size, size]);
  assert.ok(seen.every(([s, t]) => t === size && s <= size));
});
