// End-to-end: two real Chromium contexts (Debian's chromium through playwright-core) use
// the demo page of two real server processes (`python -m server`, sharing PostgreSQL and
// Redis), and Node uses the built client directly for the Origin check and uploads.
//
//   DATABASE_URL=… REDIS_URL=… PETSPARK_PYTHON=…/.venv/bin/python node test/e2e/run.mjs
//
// Node B is SIGKILLed mid-chat and restarted: the chat must arrive on tab B exactly once,
// in order. Screenshots go to PETSPARK_ARTIFACTS (default: a new temp folder; printed).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";
import WebSocket from "ws";

import { Client, HandshakeRejected, HttpApi } from "../../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(process.env.PETSPARK_ROOT ?? join(here, "..", "..", "..", ".."));
const PYTHON = process.env.PETSPARK_PYTHON ?? join(ROOT, ".venv", "bin", "python");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.PETSPARK_ARTIFACTS ?? mkdtempSync(join(tmpdir(), "petspark-e2e-"));
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const password = "correct horse battery";

for (const name of ["DATABASE_URL", "REDIS_URL"]) {
  if (!process.env[name]) throw new Error(`${name} must name the test database / Redis`);
}

// ------------------------------------------------------------------ helpers

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
/** A real PNG of random pixels (incompressible, so its size is about w*h*3 bytes). */
function noisePng(width, height) {
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, "ascii");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, "ascii"), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = 1 + width * 3;
  const raw = randomBytes(row * height);
  for (let y = 0; y < height; y++) raw[y * row] = 0; // filter: none
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 1 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

class Node {
  constructor(name, port, env) {
    this.name = name;
    this.port = port;
    this.env = env;
    this.origin = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.logPath = join(ARTIFACTS, `server-${name}.log`);
  }

  async start() {
    const log = openSync(this.logPath, "a");
    this.proc = spawn(PYTHON, ["-m", "server"], {
      cwd: ROOT,
      env: { ...process.env, ...this.env, PORT: String(this.port) },
      stdio: ["ignore", log, log],
    });
    const proc = this.proc;
    await until(async () => {
      if (proc.exitCode !== null) throw new Error(`server ${this.name} exited ${proc.exitCode}:\n${this.tail()}`);
      const resp = await fetch(`${this.origin}/readyz`);
      return resp.status === 200;
    }, 60_000, `server ${this.name} ready`).catch((error) => {
      throw new Error(`${error.message}\n${this.tail()}`);
    });
  }

  async kill() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGKILL");
    await exited;
  }

  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  }

  tail() {
    return existsSync(this.logPath) ? readFileSync(this.logPath, "utf8").split("\n").slice(-30).join("\n") : "";
  }
}

// ------------------------------------------------------------------ fixtures

const run = randomBytes(4).toString("hex");
const alice = { email: `alice-${run}@example.com`, name: "Alice" };
const bob = { email: `bob-${run}@example.com`, name: "Bob" };
let nodeA;
let nodeB;
let browser;
let ctxA;
let ctxB;
let pageA;
let pageB;

before(async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  const env = {
    DATABASE_URL: process.env.DATABASE_URL,
    REDIS_URL: process.env.REDIS_URL,
    REDIS_PREFIX: process.env.REDIS_PREFIX ?? `pse2e:${run}:`,
    DATA_DIR: process.env.PETSPARK_DATA_DIR ?? mkdtempSync(join(tmpdir(), "petspark-e2e-data-")),
    SECRET_KEY: process.env.SECRET_KEY ?? `e2e-secret-key-${"x".repeat(40)}`,
    ALLOWED_ORIGINS: `http://127.0.0.1:${portA},http://127.0.0.1:${portB}`,
    PASSWORD_HASH_TIME_COST: "1",
    PASSWORD_HASH_MEMORY_KIB: "8",
    AUTH_REGISTER_PER_HOUR: "100000",
    AUTH_LOGIN_MAX_FAILURES: "100000",
    UPLOAD_PART_BYTES: "5242880",
    SHUTDOWN_SPREAD_S: "0",
    LOG_LEVEL: "warning",
  };
  nodeA = new Node("a", portA, env);
  nodeB = new Node("b", portB, env);
  await Promise.all([nodeA.start(), nodeB.start()]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives each launch a fresh --user-data-dir itself (it refuses one in args).
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  ctxA = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
  ctxB = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
  pageA = await ctxA.newPage();
  pageB = await ctxB.newPage();
  for (const [page, label] of [[pageA, "A"], [pageB, "B"]]) {
    page.on("pageerror", (error) => console.error(`[page ${label}] ${error.message}`));
  }
});

after(async () => {
  try {
    if (pageA && pageB) {
      await pageA.screenshot({ path: join(ARTIFACTS, "demo-alice.png"), fullPage: true });
      await pageB.screenshot({ path: join(ARTIFACTS, "demo-bob.png"), fullPage: true });
      console.log(`screenshots and server logs: ${ARTIFACTS}`);
    }
  } finally {
    await browser?.close();
    await Promise.all([nodeA?.stop(), nodeB?.stop()]);
  }
});

async function signIn(page, origin, user, kind) {
  await page.goto(`${origin}/demo/`);
  await page.fill("#auth-name", user.name);
  await page.fill("#auth-email", user.email);
  await page.fill("#auth-password", password);
  await page.click(kind === "register" ? "#register" : "#login");
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
}

const delivered = (page) => page.evaluate(() => window.petsparkDemo.delivered);
const messageTexts = (page) => page.$$eval("#messages li", (items) => items.map((li) => li.firstChild?.textContent ?? ""));

// ------------------------------------------------------------------ the story

test("two browsers: cookie login, match, chat, a dropped node, lost pet, upload", async (t) => {
  await t.test("register and log in by cookie; the socket authenticates with the cookie", async () => {
    await signIn(pageA, nodeA.origin, alice, "register");
    await signIn(pageB, nodeB.origin, bob, "register");
    await pageB.click("#logout");
    await pageB.locator("#auth-card:not([hidden])").waitFor();
    await signIn(pageB, nodeB.origin, bob, "login");
    // A reload signs in from the cookie alone (GET /auth/me), and the socket with it.
    await pageB.reload();
    await pageB.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
    assert.match(await pageB.textContent("#me"), /Bob/);
    const cookies = await ctxB.cookies(nodeB.origin);
    const session = cookies.find((c) => c.name === "petspark_session");
    assert.ok(session && session.httpOnly && session.sameSite === "Lax");
  });

  await t.test("a cookie-authenticated socket needs an allowed Origin", async () => {
    const session = (await ctxB.cookies(nodeB.origin)).find((c) => c.name === "petspark_session");
    const headers = { Cookie: `petspark_session=${session.value}` };
    const foreign = new Client({ url: `ws://127.0.0.1:${nodeB.port}/ws`, WebSocket, headers, origin: "http://evil.example", logger: quiet });
    await assert.rejects(foreign.connect(), (e) => e instanceof HandshakeRejected && e.status === 403);
    const own = new Client({ url: `ws://127.0.0.1:${nodeB.port}/ws`, WebSocket, headers, origin: nodeB.origin, logger: quiet });
    const welcome = await own.connect();
    assert.equal(welcome.user_id, await pageB.evaluate(() => window.petsparkDemo.user.id));
    own.close();
  });

  await t.test("pets, swipes and a match open the conversation on both tabs", async () => {
    for (const [page, name, species] of [[pageA, "Rex", "dog"], [pageB, "Mia", "cat"]]) {
      await page.fill("#pet-name", name);
      await page.selectOption("#pet-species", species);
      await page.click("#pet-create");
      await page.locator("#pets li", { hasText: name }).waitFor();
    }
    await pageA.click("#discover");
    await pageA.locator("#candidates li", { hasText: "Mia" }).getByText("Like").click();
    await pageB.click("#discover");
    await pageB.locator("#candidates li", { hasText: "Rex" }).getByText("Like").click();
    for (const page of [pageA, pageB]) {
      await page.locator("#matches li").first().waitFor();
      await page.locator("#chat-input:not([disabled])").waitFor({ timeout: 10_000 });
    }
  });

  await t.test("chat round trip with typing and read receipts", async () => {
    await pageA.type("#chat-input", "Hi Bob");
    await pageB.locator("#typing", { hasText: "typing" }).waitFor({ timeout: 10_000 });
    await pageA.press("#chat-input", "Enter");
    await pageB.locator("#messages li", { hasText: "Hi Bob" }).waitFor();
    // B has the conversation open: it marks the message read, A sees the receipt.
    await pageA.locator('#messages li.mine[data-read="true"]', { hasText: "Hi Bob" }).waitFor({ timeout: 10_000 });
    await pageB.fill("#chat-input", "Hi Alice");
    await pageB.press("#chat-input", "Enter");
    await pageA.locator("#messages li", { hasText: "Hi Alice" }).waitFor();
  });

  await t.test("node B dies mid-chat: tab B resumes with nothing lost or duplicated", async () => {
    const before = (await delivered(pageB)).length;
    await nodeB.kill();
    await pageB.locator('#status[data-state="connecting"]').waitFor({ timeout: 10_000 });
    const sent = [];
    for (let i = 1; i <= 5; i++) {
      const body = `while you were away ${i}`;
      await pageA.fill("#chat-input", body);
      await pageA.press("#chat-input", "Enter");
      await pageA.locator("#messages li", { hasText: body }).waitFor();
      sent.push(body);
    }
    // Sent on tab B while its node is down: queued, sent after the next welcome, once.
    await pageB.fill("#chat-input", "sent while offline");
    await pageB.press("#chat-input", "Enter");
    await nodeB.start();
    await pageB.locator('#status[data-state="open"]').waitFor({ timeout: 40_000 });
    await until(async () => (await delivered(pageB)).length >= before + 6, 15_000, "tab B caught up");
    const all = await delivered(pageB);
    const seqs = all.map(([seq]) => seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), "seqs once each, in order");
    const bodies = all.slice(before).map(([, , body]) => body);
    for (const body of sent) assert.equal(bodies.filter((b) => b === body).length, 1, body);
    assert.deepEqual(bodies.filter((b) => sent.includes(b)), sent, "in the order sent");
    const texts = await messageTexts(pageB);
    for (const body of [...sent, "sent while offline"]) assert.equal(texts.filter((x) => x === body).length, 1, `once on screen: ${body}`);
    await pageA.locator("#messages li", { hasText: "sent while offline" }).waitFor({ timeout: 10_000 });
    assert.equal((await messageTexts(pageA)).filter((x) => x === "sent while offline").length, 1);
  });

  await t.test("a lost-pet report reaches the watcher on the other tab", async () => {
    await pageB.click("#watch");
    await pageB.locator("#watch-status", { hasText: "watching" }).waitFor();
    await pageA.fill("#lost-description", "Rex slipped his lead by the river");
    await pageA.click("#lost-report");
    await pageA.locator("#alerts li", { hasText: "Rex slipped" }).waitFor();
    await pageB.locator("#alerts li.alert", { hasText: "Rex slipped his lead" }).waitFor({ timeout: 15_000 });
  });

  await t.test("a photo upload reports progress up to the file's size", async () => {
    const png = noisePng(400, 400);
    await pageA.setInputFiles("#photo", { name: "rex.png", mimeType: "image/png", buffer: png });
    await pageA.locator("#upload-status", { hasText: "uploaded" }).waitFor({ timeout: 30_000 });
    const progress = await pageA.evaluate(() => window.petsparkDemo.progress);
    assert.ok(progress.length >= 1);
    assert.deepEqual(progress.at(-1), [png.length, png.length]);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i][0] >= progress[i - 1][0], "monotonic");
    assert.ok(progress.every(([, total]) => total === png.length));
    assert.equal(await pageA.evaluate(() => document.getElementById("progress-bar").style.width), "100%");
    await pageA.locator("#pets li", { hasText: "1 photo" }).waitFor({ timeout: 10_000 });
  });

  await t.test("Node: presigned and resumable multipart uploads with progress", async () => {
    const http = new HttpApi({ baseUrl: nodeA.origin });
    await http.login(alice.email, password);
    assert.equal((await http.me()).user.email, alice.email);
    const small = noisePng(200, 200);
    const seen = [];
    const presigned = await http.uploadPresigned(small, { purpose: "pet_photo", contentType: "image/png", onProgress: (s, n) => seen.push([s, n]) });
    assert.equal(presigned.status, "pending");
    assert.deepEqual(seen.at(-1), [small.length, small.length]);
    const big = noisePng(1400, 1400); // ≈ 5.9 MB: two parts of 5 MiB
    const parts = [];
    const multi = await http.upload(big, { purpose: "pet_photo", contentType: "image/png", directMaxBytes: 1024 * 1024, onProgress: (s, n) => parts.push([s, n]) });
    assert.equal(multi.owner_id, presigned.owner_id);
    assert.ok(parts.length > 2);
    assert.deepEqual(parts.at(-1), [big.length, big.length]);
    assert.equal((await http.getUpload(multi.id)).id, multi.id);
  });
});
