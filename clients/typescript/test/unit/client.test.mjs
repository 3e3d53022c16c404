// Unit tests of the client against a scripted socket server (real sockets on loopback).
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import { createServer } from "node:net";
import WebSocket from "ws";

import {
  Backoff,
  Client,
  CommandTimeout,
  ConnectionClosed,
  ConnectionLost,
  HandshakeRejected,
  LocalStorageSeqStore,
  MemorySeqStore,
  NotFound,
  RateLimited,
  planAfterClose,
} from "../../dist/index.js";
import { ScriptedServer, eventually, within } from "./scripted-server.mjs";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const fast = () => new Backoff({ baseS: 0.01, capS: 0.02 });

let server;
let clients;

function makeClient(options = {}) {
  const client = new Client({
    url: server.url, WebSocket, token: "t0", logger: quiet, backoff: fast(), ...options,
  });
  clients.push(client);
  return client;
}

beforeEach(async () => {
  server = await ScriptedServer.start();
  clients = [];
});

afterEach(async () => {
  for (const c of clients) c.close();
  await server.stop();
});

describe("backoff and close policy", () => {
  test("full jitter: uniform(0, min(cap, base * 2^n))", () => {
    const top = new Backoff({ random: () => 0.999999 });
    assert.deepEqual([0, 1, 2, 3, 6, 7, 100].map((n) => top.ceilingS(n)), [0.5, 1, 2, 4, 30, 30, 30]);
    assert.ok(Math.abs(top.delayS(2) - 2) < 1e-5);
    assert.equal(new Backoff({ random: () => 0 }).delayS(5), 0);
    const real = new Backoff();
    for (let i = 0; i < 200; i++) {
      const d = real.delayS(i % 10);
      assert.ok(d >= 0 && d <= real.ceilingS(i % 10));
    }
    assert.throws(() => new Backoff({ baseS: 0 }), RangeError);
  });

  test("the close-code table of PROTOCOL §7, as client/close_policy.py", () => {
    const plan = (code, hasTokenProvider = false, authRetryUsed = false) =>
      planAfterClose(code, { hasTokenProvider, authRetryUsed }).action;
    assert.equal(plan(1001), "reconnect_now");
    assert.equal(plan(4001), "stop");
    assert.equal(plan(4001, true), "reconnect_now");
    assert.equal(plan(4001, true, true), "stop");
    assert.equal(plan(4009), "stop");
    assert.equal(plan(4009, true), "reconnect_now");
    for (const code of [4003, 4010, 4000, 1009]) assert.equal(plan(code, true), "stop", String(code));
    for (const code of [1000, 1006, 1011, 4002, 4008, 4029]) assert.equal(plan(code), "reconnect_backoff", String(code));
  });
});

describe("session", () => {
  test("hello carries the token and no resume_from without state; then resumes from last_seq", async () => {
    const client = makeClient();
    const connected = client.connect();
    const conn = await server.connection(0);
    const hello = await conn.handshake({ last_seq: 41 });
    assert.equal(hello.token, "t0");
    assert.equal(hello.client, "petspark-ts/0.1");
    assert.ok(!("resume_from" in hello));
    assert.equal((await connected).last_seq, 41);
    assert.equal(client.lastSeq, 41);
    assert.equal(client.state, "open");
    conn.terminate();
    const again = await server.connection(1);
    assert.equal((await again.next("hello")).resume_from, 41);
  });

  test("every ping gets a pong", async () => {
    const client = makeClient();
    client.connect().catch(() => {});
    const conn = await server.connection(0);
    await conn.handshake();
    conn.send({ type: "ping" });
    conn.send({ type: "ping" });
    await conn.next("pong");
    await conn.next("pong");
  });

  test("cookie mode sends no token; header mode sends Authorization", async () => {
    const cookie = makeClient({ token: null, origin: "http://app.example" });
    cookie.connect().catch(() => {});
    const c0 = await server.connection(0);
    assert.ok(!("token" in (await c0.next("hello"))));
    assert.equal(c0.request.headers.origin, "http://app.example");
    const header = makeClient({ auth: "header", token: "hdr" });
    header.connect().catch(() => {});
    const c1 = await server.connection(1);
    assert.ok(!("token" in (await c1.next("hello"))));
    assert.equal(c1.request.headers.authorization, "Bearer hdr");
  });
});

describe("durable events", () => {
  test("exactly once and in order across a reconnect; ephemeral ones pass; acks follow", async () => {
    const client = makeClient({ ackIntervalMs: 10 });
    const seen = [];
    client.on("chat.message", (e) => seen.push(e.seq));
    const typing = [];
    client.on("chat.typing", (e) => typing.push(e.user_id));
    client.connect().catch(() => {});
    const c0 = await server.connection(0);
    await c0.handshake({ last_seq: 5 });
    const msg = (seq) => ({ type: "chat.message", seq, message: { id: `m${seq}` } });
    c0.send(msg(6));
    c0.send({ type: "chat.typing", conversation_id: "c", user_id: "u2" });
    c0.send(msg(7));
    assert.deepEqual(await eventually(async () => {
      const ack = c0.received.findLast?.((m) => m.type === "ack");
      return ack && ack.seq === 7 ? ack : null;
    }, 3000, "ack 7"), { type: "ack", seq: 7 });
    c0.close(4008, "slow consumer");
    const c1 = await server.connection(1);
    const hello = await c1.next("hello");
    assert.equal(hello.resume_from, 7);
    c1.send({ type: "welcome", session_id: "s2", user_id: "u1", last_seq: 9, heartbeat_s: 25, resumed: true, server_time: "2026-11-26T10:00:00Z" });
    c1.send(msg(6)); // duplicates of what was processed are dropped
    c1.send(msg(7));
    c1.send(msg(8));
    c1.send(msg(9));
    await eventually(() => seen.length >= 4, 3000, "seq 9");
    assert.deepEqual(seen, [6, 7, 8, 9]);
    assert.deepEqual(typing, ["u2"]);
    assert.equal(client.lastSeq, 9);
    assert.equal(client.reconnects, 1);
    await eventually(() => c1.received.some((m) => m.type === "ack" && m.seq === 9), 3000, "ack 9");
  });

  test("resumed: false signals resync and delivery goes on after last_seq", async () => {
    const store = new MemorySeqStore(50);
    const client = makeClient({ seqStore: store });
    const resyncs = [];
    const seen = [];
    client.on("resync", (r) => resyncs.push(r));
    client.on("notification", (e) => seen.push(e.seq));
    client.connect().catch(() => {});
    const conn = await server.connection(0);
    assert.equal((await conn.handshake({ last_seq: 10, resumed: false })).resume_from, 50);
    conn.send({ type: "notification", seq: 11, notification: { id: "n" } });
    await eventually(() => seen.length === 1, 3000, "seq 11");
    assert.deepEqual(resyncs, [{ type: "resync", resume_from: 50, last_seq: 10 }]);
    assert.equal(store.load(), 11);
  });

  test("a localStorage store resumes a later client", async () => {
    const backing = new Map();
    const storage = { getItem: (k) => backing.get(k) ?? null, setItem: (k, v) => backing.set(k, v) };
    const store = new LocalStorageSeqStore("petspark.last_seq.u1", storage);
    assert.equal(store.load(), null);
    const first = makeClient({ seqStore: store });
    first.connect().catch(() => {});
    const c0 = await server.connection(0);
    await c0.handshake({ last_seq: 3 });
    c0.send({ type: "lost.alert", seq: 4, alert: { id: "a" } });
    await eventually(() => backing.get("petspark.last_seq.u1") === "4", 3000, "saved seq");
    first.close();
    const second = makeClient({ seqStore: new LocalStorageSeqStore("petspark.last_seq.u1", storage) });
    second.connect().catch(() => {});
    const c1 = await server.connection(1);
    assert.equal((await c1.next("hello")).resume_from, 4);
    backing.set("petspark.last_seq.u1", "garbage");
    assert.equal(new LocalStorageSeqStore("petspark.last_seq.u1", storage).load(), null);
  });
});

describe("reconnect", () => {
  test("2 x heartbeat_s of silence counts as a dead link", async () => {
    const client = makeClient();
    client.connect().catch(() => {});
    const c0 = await server.connection(0);
    await c0.handshake({ heartbeat_s: 0.05 });
    // The server says nothing: the client must give up on it and reconnect.
    const c1 = await server.connection(1, 3000);
    await c1.next("hello");
    assert.equal(client.lastClose.code, 1006);
    assert.match(client.lastClose.reason, /heartbeat/);
  });

  test("1001 reconnects at once, without the backoff", async () => {
    const client = makeClient({ backoff: new Backoff({ baseS: 60, capS: 60, random: () => 0.99 }) });
    client.connect().catch(() => {});
    const c0 = await server.connection(0);
    await c0.handshake();
    c0.close(1001, "going away");
    await (await server.connection(1, 2000)).next("hello");
  });

  test("4001 without a token provider stops; pending commands reject", async () => {
    const client = makeClient();
    const stopped = new Promise((resolve) => client.on("stopped", resolve));
    client.connect().catch(() => {});
    const c0 = await server.connection(0);
    await c0.handshake();
    const pending = client.command("pets.mine", {});
    await c0.next("pets.mine");
    c0.close(4001, "revoked");
    const error = await within(stopped, 3000, "stopped");
    assert.ok(error instanceof ConnectionClosed);
    assert.equal(error.code, 4001);
    await assert.rejects(pending, (e) => e instanceof ConnectionClosed || e instanceof ConnectionLost);
    await assert.rejects(client.command("pets.mine", {}), (e) => e instanceof ConnectionClosed && e.code === 4001);
    assert.equal(client.state, "closed");
    assert.equal(server.connections.length, 1);
  });

  test("4009 asks the token provider and reconnects with the new token", async () => {
    let n = 0;
    const client = makeClient({ tokenProvider: async () => `fresh-${++n}` });
    client.connect().catch(() => {});
    const c0 = await server.connection(0);
    assert.equal((await c0.handshake()).token, "t0"); // the given token first
    c0.close(4009, "token expired");
    const c1 = await server.connection(1);
    assert.equal((await c1.next("hello")).token, "fresh-1");
  });

  test("4001 gets one retry with a provider's token; a second 4001 stops", async () => {
    const client = makeClient({ tokenProvider: async () => "fresh" });
    const stopped = new Promise((resolve) => client.on("stopped", resolve));
    client.connect().catch(() => {});
    const c0 = await server.connection(0);
    await c0.handshake();
    c0.close(4001, "revoked");
    const c1 = await server.connection(1);
    assert.equal((await c1.next("hello")).token, "fresh");
    c1.close(4001, "still not");
    assert.equal((await within(stopped, 3000, "stopped")).code, 4001);
  });

  for (const code of [4003, 4010]) {
    test(`${code} stops for good`, async () => {
      const client = makeClient({ tokenProvider: async () => "fresh" });
      const stopped = new Promise((resolve) => client.on("stopped", resolve));
      client.connect().catch(() => {});
      const c0 = await server.connection(0);
      await c0.handshake();
      c0.close(code, "no");
      assert.equal((await within(stopped, 3000, "stopped")).code, code);
      assert.equal(server.connections.length, 1);
    });
  }

  test("a refused upgrade (HTTP 403) stops with HandshakeRejected", async () => {
    await server.stop();
    server = await ScriptedServer.start({ verifyClient: (_info, cb) => cb(false, 403, "Forbidden") });
    const client = makeClient({ token: null });
    await assert.rejects(client.connect(), (e) => e instanceof HandshakeRejected && e.status === 403 && e.code === 4003);
  });

  test("an upgrade that never completes times out and is retried (the socket still connecting)", async () => {
    const sockets = [];
    const silent = createServer((s) => sockets.push(s)); // accepts TCP, never answers HTTP
    await new Promise((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const client = makeClient({ url: `ws://127.0.0.1:${silent.address().port}/ws`, handshakeTimeoutMs: 50, maxAttempts: 1 });
      await assert.rejects(client.connect(), (e) => e instanceof ConnectionClosed && e.code === 1006);
      assert.equal(sockets.length, 2); // the first attempt and one retry
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test("maxAttempts bounds consecutive failures", async () => {
    const url = server.url;
    await server.stop();
    server = await ScriptedServer.start(); // a different port; `url` now refuses
    const client = makeClient({ url, maxAttempts: 2 });
    await assert.rejects(client.connect(), (e) => e instanceof ConnectionClosed && e.code === 1006 && /gave up after 2/.test(e.reason));
  });
});

describe("commands", () => {
  test("typed results, CommandError per code, timeouts", async () => {
    const client = makeClient();
    client.connect().catch(() => {});
    const conn = await server.connection(0);
    await conn.handshake();
    const mine = client.pets.mine();
    const cmd = await conn.next("pets.mine");
    conn.send({ type: "ok", id: cmd.id, result: { pets: [] } });
    assert.deepEqual(await mine, { pets: [] });

    const missing = client.chat.history({ conversation_id: "nope" });
    conn.send({ type: "error", id: (await conn.next("chat.history")).id, code: "not_found", message: "conversation_id: no such conversation" });
    await assert.rejects(missing, (e) => e instanceof NotFound && e.code === "not_found" && /no such/.test(e.serverMessage));

    const limited = client.command("presence.query", { user_ids: ["u2"] });
    conn.send({ type: "error", id: (await conn.next("presence.query")).id, code: "rate_limited", message: "slow down", retry_after_s: 1.5 });
    await assert.rejects(limited, (e) => e instanceof RateLimited && e.retryAfterS === 1.5);

    await assert.rejects(client.pets.mine({}, { timeoutMs: 30 }), CommandTimeout);
  });

  test("unanswered idempotent commands are resent with the same id and key; others fail ConnectionLost", async () => {
    const client = makeClient();
    client.connect().catch(() => {});
    const c0 = await server.connection(0);
    await c0.handshake();
    const send = client.chat.send({ conversation_id: "c1", body: "hi" });
    const mine = client.pets.mine();
    const first = await c0.next("chat.send");
    await c0.next("pets.mine");
    assert.match(first.client_msg_id, /^[0-9a-f-]{36}$/); // filled in by the client
    c0.terminate();
    await assert.rejects(mine, ConnectionLost);
    const c1 = await server.connection(1);
    await c1.handshake();
    const again = await c1.next("chat.send");
    assert.equal(again.id, first.id);
    assert.equal(again.client_msg_id, first.client_msg_id);
    c1.send({ type: "ok", id: again.id, result: { message: { id: "m1", body: "hi" } } });
    assert.equal((await send).message.id, "m1");
  });

  test("commands issued while disconnected are sent after the welcome", async () => {
    const client = makeClient();
    client.connect().catch(() => {});
    const queued = client.lost.watches();
    const c0 = await server.connection(0);
    await c0.handshake();
    const cmd = await c0.next("lost.watches");
    c0.send({ type: "ok", id: cmd.id, result: { watches: [] } });
    assert.deepEqual(await queued, { watches: [] });
  });

  test("auth.refresh in-band swaps the token used by reconnects", async () => {
    const client = makeClient();
    client.connect().catch(() => {});
    const c0 = await server.connection(0);
    await c0.handshake();
    const refreshed = client.refreshToken("t1");
    const cmd = await c0.next("auth.refresh");
    assert.equal(cmd.token, "t1");
    c0.send({ type: "ok", id: cmd.id, result: { expires_at: "2026-11-26T10:15:00Z" } });
    assert.equal((await refreshed).expires_at, "2026-11-26T10:15:00Z");
    c0.terminate();
    assert.equal((await (await server.connection(1)).next("hello")).token, "t1");
  });

  test("close() acks, closes 1000 and rejects what waits", async () => {
    const client = makeClient();
    client.connect().catch(() => {});
    const c0 = await server.connection(0);
    await c0.handshake({ last_seq: 2 });
    c0.send({ type: "match.created", seq: 3, match: { id: "x" } });
    await eventually(() => client.lastSeq === 3, 3000, "seq 3");
    const waiting = client.pets.mine();
    client.close();
    await assert.rejects(waiting, (e) => e instanceof ConnectionClosed && e.code === 1000);
    assert.equal((await within(c0.closed, 3000, "close")).code, 1000);
    assert.ok(c0.received.some((m) => m.type === "ack" && m.seq === 3));
  });
});
