// A scripted PetSpark socket server for unit tests: a real WebSocket server on loopback
// (the `ws` package) whose every reply is written by the test.
import { WebSocketServer } from "ws";

export function within(promise, ms, what = "condition") {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

/** Poll `check` until it returns a truthy value (bounded). */
export async function eventually(check, ms = 3000, what = "condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export class ScriptedConnection {
  constructor(ws, request) {
    this.ws = ws;
    this.request = request;
    this.received = [];
    this.waiters = [];
    this.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: String(reason) })));
    ws.on("message", (data) => {
      const msg = JSON.parse(String(data));
      this.received.push(msg);
      this._notify();
    });
  }

  _notify() {
    for (const w of [...this.waiters]) w();
  }

  /** The next received message whose type is in `types` (others stay in `received`). */
  next(types, ms = 3000) {
    const wanted = Array.isArray(types) ? types : [types];
    const take = () => {
      const i = this.received.findIndex((m) => wanted.includes(m.type));
      return i >= 0 ? this.received.splice(i, 1)[0] : undefined;
    };
    const found = take();
    if (found) return Promise.resolve(found);
    return within(new Promise((resolve) => {
      const waiter = () => {
        const m = take();
        if (m) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          resolve(m);
        }
      };
      this.waiters.push(waiter);
    }), ms, `a ${wanted.join("/")} message`);
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  /** Read the hello and answer welcome. */
  async handshake(welcome = {}) {
    const hello = await this.next("hello");
    this.send({
      type: "welcome", session_id: "s1", user_id: "u1", last_seq: 0, heartbeat_s: 25,
      resumed: false, server_time: "2026-11-26T10:00:00Z", ...welcome,
    });
    return hello;
  }

  close(code, reason = "") {
    this.ws.close(code, reason);
  }

  /** Drop the TCP connection without a close frame (1006 for the client). */
  terminate() {
    this.ws.terminate();
  }
}

export class ScriptedServer {
  static async start(options = {}) {
    const server = new ScriptedServer(options);
    await new Promise((resolve) => server.wss.on("listening", resolve));
    return server;
  }

  constructor(options) {
    this.connections = [];
    this.waiters = [];
    this.wss = new WebSocketServer({
      host: "127.0.0.1",
      port: 0,
      handleProtocols: (protocols) => (protocols.has("petspark.v1.json") ? "petspark.v1.json" : false),
      verifyClient: options.verifyClient,
    });
    this.wss.on("connection", (ws, request) => {
      this.connections.push(new ScriptedConnection(ws, request));
      for (const w of [...this.waiters]) w();
    });
  }

  get url() {
    return `ws://127.0.0.1:${this.wss.address().port}/ws`;
  }

  /** The n-th connection (0-based), waiting for it. */
  connection(n, ms = 3000) {
    if (this.connections[n]) return Promise.resolve(this.connections[n]);
    return within(new Promise((resolve) => {
      const waiter = () => {
        if (this.connections[n]) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          resolve(this.connections[n]);
        }
      };
      this.waiters.push(waiter);
    }), ms, `connection #${n + 1}`);
  }

  async stop() {
    for (const c of this.wss.clients) c.terminate();
    await new Promise((resolve) => this.wss.close(resolve));
  }
}
