/**
 * `Client`: the reconnecting PetSpark realtime client (PROTOCOL §§2–7), behaving like
 * the Python reference client in `client/client.py`.
 *
 * One loop (the supervisor) owns the connection: it connects, sends `hello` with
 * `resume_from`, handles frames until the connection ends, then decides by close code
 * whether to reconnect now, after a full-jitter backoff, or stop. The application calls
 * `command()` (or the area facades, `client.chat.send(...)`) and subscribes with `on()`.
 *
 * Seq bookkeeping: `lastSeq` is the highest durable seq handed to the `on()` handlers
 * ("processed"). Reconnects resume from it, durable events at or below it are dropped as
 * duplicates, it is saved in the `SeqStore` and acked at most every `ackIntervalMs`.
 */
import { Backoff } from "./backoff.js";
import { ABNORMAL, planAfterClose } from "./close-policy.js";
import {
  CommandError,
  CommandTimeout,
  ConnectionClosed,
  ConnectionLost,
  HandshakeRejected,
  InvalidReply,
} from "./errors.js";
import {
  CloseCode,
  createFacades,
  DURABLE_EVENT_TAGS,
  IDEMPOTENCY_FIELDS,
  type AnyEvent,
  type CommandOptions,
  type CommandParams,
  type CommandResults,
  type CommandSender,
  type CommandTag,
  type ErrorCode,
  type EventMap,
  type Facades,
  type Welcome,
} from "./generated/protocol.js";
import { MemorySeqStore, type SeqStore } from "./seq-store.js";

/** The JSON sub-protocol (the only one this client speaks; MessagePack is optional in the
 * contract and not needed by browsers). */
export const SUBPROTOCOL = "petspark.v1.json";

export type ClientState = "connecting" | "open" | "closed";

/** Pseudo-event: a resume was asked for but the server could not replay everything
 * after it (`welcome.resumed` was false). Refetch state with queries; durable events
 * continue after `last_seq`. Delivered before any event of the new connection. */
export interface Resync {
  type: "resync";
  resume_from: number;
  last_seq: number;
}

/** How a connection ended: the close code (1006 when there was none) and reason. */
export interface Closed {
  code: number;
  reason: string;
}

/** Client-side notifications besides the server's events (`on("resync", …)`, …). */
export interface ClientSignals {
  /** See `Resync`. */
  resync: Resync;
  /** Every state change. */
  state: ClientState;
  /** Every `welcome` (first connect and each reconnect). */
  welcome: Welcome;
  /** The client stopped for good (close code that a reconnect cannot fix, or `close()`). */
  stopped: ConnectionClosed;
  /** Every server event, whatever its tag (also tags newer than this client). */
  "*": AnyEvent;
}

export type Listeners = EventMap & ClientSignals;
export type Unsubscribe = () => void;

/** The browser `WebSocket` or the `ws` package's (Node 20 has no global WebSocket). */
// The third argument is the `ws` package's options (headers, origin); browsers ignore it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: any) => object;

/** The part of the WebSocket API the client uses (browser and `ws` alike). */
interface SocketLike {
  readonly protocol: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: { message?: string; error?: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface Logger {
  debug(message: string, extra?: object): void;
  info(message: string, extra?: object): void;
  warn(message: string, extra?: object): void;
  error(message: string, extra?: object): void;
}

/** Warnings and errors to the console; debug and info dropped. */
export const consoleLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (m, e) => console.warn(`[petspark] ${m}`, e ?? ""),
  error: (m, e) => console.error(`[petspark] ${m}`, e ?? ""),
};

export type AuthMode = "hello" | "header" | "cookie";

export interface ClientOptions {
  /** `ws://…/ws` or `wss://…/ws`. */
  url: string;
  /** Access token. With `auth: "hello"` (default when a token or provider is given) it
   * travels in `hello.token` — browsers cannot set headers on a WebSocket; `"header"`
   * sends `Authorization: Bearer` (Node `ws` only). Leave both unset for cookie auth. */
  token?: string | null;
  auth?: AuthMode;
  /** Returns a fresh access token; called before every reconnect (so after 4009, and for
   * the one retry after 4001), and before the first connect when `token` is unset.
   * If it throws, the client stops with `ConnectionClosed(4001)`. */
  tokenProvider?: () => Promise<string>;
  /** Default: `globalThis.WebSocket`. In Node pass `WebSocket` from the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Node `ws` only: extra upgrade headers and `Origin` (cookie auth needs an allowed one). */
  headers?: Record<string, string>;
  origin?: string;
  /** Where `lastSeq` lives between runs; default in memory. */
  seqStore?: SeqStore;
  /** `hello.client`, for the server's logs. */
  clientName?: string | null;
  /** Default time for a command's reply, the wait for a connection included (30 s). */
  commandTimeoutMs?: number;
  /** Time from opening the socket to `welcome` (10 s). */
  handshakeTimeoutMs?: number;
  /** The shortest time between two `ack` messages (500 ms). */
  ackIntervalMs?: number;
  /** Reconnect delays (base 0.5 s, cap 30 s, full jitter). */
  backoff?: Backoff;
  /** Consecutive failed attempts before giving up (`ConnectionClosed(1006)`); default forever. */
  maxAttempts?: number | null;
  logger?: Logger;
}

interface PendingCommand {
  id: string;
  tag: string;
  message: Record<string, unknown>;
  resendable: boolean;
  /** The connection number it was last sent on; null while not sent. */
  sentOn: number | null;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A random id (UUID v4 form) that works in insecure browser contexts too. */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const DURABLE: ReadonlySet<string> = new Set(DURABLE_EVENT_TAGS);

export interface Client extends Facades {}

export class Client implements CommandSender {
  readonly url: string;
  /** See `ClientOptions`; reconnects use the latest token (after `refreshToken`, a provider). */
  token: string | null;
  readonly authMode: AuthMode;
  /** Every area's commands as methods: `client.chat.send({...})` (generated). */
  readonly api: Facades;
  state: ClientState = "connecting";
  /** Successful connections after the first one. */
  reconnects = 0;
  /** The latest `welcome`. */
  welcome: Welcome | null = null;
  /** How the latest connection ended. */
  lastClose: Closed | null = null;

  private readonly options: ClientOptions;
  private readonly WS: WebSocketConstructor;
  private readonly store: SeqStore;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private readonly listeners = new Map<string, Set<(value: never) => void>>();
  private readonly pending = new Map<string, PendingCommand>();
  private readonly idPrefix = randomId().slice(0, 6);
  private nextId = 1;
  private processed: number | null = null;
  private acked: number | null = null;
  private socket: SocketLike | null = null;
  private connNumber = 0;
  private ackNeeded = false;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private firstWelcome: Deferred<Welcome> | null = null;
  private started = false;
  private closing = false;
  private terminal: ConnectionClosed | null = null;
  private wake: (() => void) | null = null;
  private endConnection: ((closed: Closed) => void) | null = null;

  constructor(options: ClientOptions) {
    this.options = options;
    this.url = options.url;
    this.token = options.token ?? null;
    this.authMode = options.auth ?? (this.token !== null || options.tokenProvider ? "hello" : "cookie");
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError("no WebSocket: pass the `ws` package's WebSocket as options.WebSocket");
    this.WS = WS;
    this.store = options.seqStore ?? new MemorySeqStore();
    this.backoff = options.backoff ?? new Backoff();
    this.log = options.logger ?? consoleLogger;
    this.api = createFacades(this);
    for (const [area, methods] of Object.entries(this.api)) {
      if (area in this) throw new TypeError(`facade area ${area} collides with a Client member`);
      (this as unknown as Record<string, unknown>)[area] = methods;
    }
  }

  // ------------------------------------------------------------------ lifecycle

  /** Start the client and wait for the first `welcome`. Network failures are retried with
   * backoff; a close code that stops the client rejects with `ConnectionClosed`. */
  async connect(): Promise<Welcome> {
    if (this.terminal) throw this.terminal;
    if (!this.started) {
      this.started = true;
      this.firstWelcome = deferred<Welcome>();
      // Stop an unobserved rejection from crashing Node; connect() callers still see it.
      this.firstWelcome.promise.catch(() => undefined);
      try {
        this.processed = await this.store.load();
      } catch (error) {
        this.log.warn("seq store load failed; starting without state", { error: String(error) });
      }
      void this.supervise();
    }
    return this.firstWelcome!.promise;
  }

  /** Ack what was processed, close with 1000 and stop reconnecting. Pending commands
   * reject with `ConnectionClosed(1000)`. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    const socket = this.socket;
    if (socket && this.state === "open") {
      try {
        this.sendAck();
        socket.close(CloseCode.NORMAL, "client closed");
      } catch (error) {
        this.log.debug("error while closing", { error: String(error) });
      }
    }
    this.endConnection?.({ code: CloseCode.NORMAL, reason: "client closed" });
    this.wake?.();
    this.stop(new ConnectionClosed(CloseCode.NORMAL, "client closed"));
  }

  // ------------------------------------------------------------------ public API

  /** The highest durable seq handed to the handlers (null before a `welcome` without state). */
  get lastSeq(): number | null {
    return this.processed;
  }

  /** Subscribe to an event tag (`"chat.message"`), a signal (`"resync"`, `"state"`,
   * `"welcome"`, `"stopped"`) or `"*"` (every event). Returns the unsubscribe function.
   * Handlers run synchronously in arrival order; a durable event counts as processed
   * once its handlers returned (an exception in one is logged, not retried). */
  on<K extends keyof Listeners>(name: K, handler: (value: Listeners[K]) => void): Unsubscribe;
  on(name: string, handler: (value: { type: string; [key: string]: unknown }) => void): Unsubscribe;
  on(name: string, handler: (value: never) => void): Unsubscribe {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(handler);
    return () => {
      set.delete(handler);
    };
  }

  /** Resolves with the first event of `tag` for which `predicate` holds. */
  waitFor<K extends keyof EventMap>(tag: K, predicate: (event: EventMap[K]) => boolean = () => true, timeoutMs = 30_000): Promise<EventMap[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new CommandTimeout(`no ${tag} in ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on(tag, (event) => {
        if (predicate(event)) {
          clearTimeout(timer);
          off();
          resolve(event);
        }
      });
    });
  }

  /** A command id unique for this client (and so per connection). */
  newId(): string {
    return `${this.idPrefix}-${this.nextId++}`;
  }

  /**
   * Send command `tag` and resolve with its result (typed by the tag). A command that
   * takes an idempotency key (`client_msg_id` for `chat.send`, `idempotency_key` for the
   * creating commands) gets a random one when `params` has none.
   *
   * Rejects with `CommandError` (a subclass per code) for an `error` reply,
   * `CommandTimeout` after `timeoutMs` (default `commandTimeoutMs`, waiting for a
   * connection included), `ConnectionLost` if the connection dropped after sending a
   * command that is not resendable, `ConnectionClosed` if the client stopped.
   *
   * `resend`: whether to send it again after a reconnect if it was not answered; by
   * default only when it carries `idempotency_key` or `client_msg_id`. Commands issued
   * while disconnected wait and are sent after the next `welcome` whatever `resend` says.
   */
  command<T extends CommandTag>(tag: T, params: CommandParams<T>, options: CommandOptions = {}): Promise<CommandResults[T]> {
    if (this.terminal) return Promise.reject(this.terminal);
    const id = this.newId();
    const message: Record<string, unknown> = { ...(params as object), type: tag, id };
    const keyField = IDEMPOTENCY_FIELDS[tag];
    if (keyField !== undefined && (message[keyField] === undefined || message[keyField] === null)) {
      message[keyField] = randomId();
    }
    const carriesKey = Boolean(message["idempotency_key"] || message["client_msg_id"]);
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs ?? 30_000;
    return new Promise<CommandResults[T]>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | null = null;
      const done = (): void => {
        if (timer !== null) clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (this.pending.get(id) === entry) this.pending.delete(id);
      };
      const onAbort = (): void => {
        done();
        reject(options.signal?.reason ?? new Error("aborted"));
      };
      const entry: PendingCommand = {
        id,
        tag,
        message,
        resendable: options.resend ?? carriesKey,
        sentOn: null,
        resolve: (value) => {
          done();
          resolve(value as CommandResults[T]);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      if (options.signal?.aborted) {
        onAbort();
        return;
      }
      options.signal?.addEventListener("abort", onAbort);
      timer = setTimeout(() => {
        done();
        reject(new CommandTimeout(`no reply to ${tag} ${JSON.stringify(id)} in time`));
      }, timeoutMs);
      this.pending.set(id, entry);
      if (this.socket && this.state === "open") this.sendCommand(this.socket, this.connNumber, entry);
    });
  }

  /** Swap the connection's access token in-band (`auth.refresh`) before it expires;
   * reconnects use the new token too. */
  async refreshToken(token: string): Promise<CommandResults["auth.refresh"]> {
    this.token = token;
    return this.command("auth.refresh", { token });
  }

  // ------------------------------------------------------------------ supervisor

  private async supervise(): Promise<void> {
    let attempt = 0; // consecutive failed attempts; reset by a welcome
    let authRetryUsed = false; // one retry with a new token after 4001, per welcome
    let immediateUsed = false; // one reconnect without delay, per welcome
    let first = true;
    const provider = this.options.tokenProvider;
    try {
      while (!this.closing) {
        const wantsToken = !first || this.token === null;
        if (wantsToken && provider) {
          try {
            this.token = await provider();
          } catch (error) {
            this.log.error("tokenProvider failed", { error: String(error) });
            this.stop(new ConnectionClosed(CloseCode.NOT_AUTHENTICATED, String(error)));
            return;
          }
        }
        first = false;
        if (this.closing) return;
        this.setState("connecting");
        const { closed, welcomed, rejected } = await this.connectAndRun();
        if (this.closing) return;
        if (welcomed) {
          attempt = 0;
          authRetryUsed = false;
          immediateUsed = false;
        }
        this.lastClose = closed;
        const plan = planAfterClose(closed.code, { hasTokenProvider: provider !== undefined, authRetryUsed });
        this.log.info(`connection ended ${closed.code} ${closed.reason}: ${plan.reason}`);
        if (plan.action === "stop") {
          this.stop(rejected ?? new ConnectionClosed(closed.code, closed.reason || plan.reason));
          return;
        }
        this.failUnsafe(new ConnectionLost(`connection lost (${closed.code}) before the reply`));
        if (closed.code === CloseCode.NOT_AUTHENTICATED) authRetryUsed = true;
        let action = plan.action;
        if (action === "reconnect_now") {
          // e.g. a node refusing new sockets with 1001 while it drains: only the first
          // reconnect after a welcome skips the backoff.
          if (immediateUsed) action = "reconnect_backoff";
          immediateUsed = true;
        }
        if (action === "reconnect_backoff") {
          const max = this.options.maxAttempts ?? null;
          if (max !== null && attempt >= max) {
            this.stop(new ConnectionClosed(ABNORMAL, `gave up after ${attempt} attempts`));
            return;
          }
          const delayMs = this.backoff.delayS(attempt) * 1000;
          attempt += 1;
          this.log.info(`reconnecting in ${Math.round(delayMs)} ms (attempt ${attempt})`);
          await this.sleep(delayMs);
        }
      }
    } catch (error) {
      // A bug here must not hang the application.
      this.log.error("client supervisor failed", { error: String(error) });
      this.stop(new ConnectionClosed(ABNORMAL, `client error: ${String(error)}`));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  /** One connection attempt: open, hello, welcome, frames until it ends. */
  private connectAndRun(): Promise<{ closed: Closed; welcomed: boolean; rejected: HandshakeRejected | null }> {
    return new Promise((resolve) => {
      const resumeFrom = this.processed;
      let socket: SocketLike;
      const extra: Record<string, unknown> = {};
      const headers = { ...(this.options.headers ?? {}) };
      if (this.authMode === "header" && this.token !== null) headers["Authorization"] = `Bearer ${this.token}`;
      if (Object.keys(headers).length > 0) extra["headers"] = headers;
      if (this.options.origin) extra["origin"] = this.options.origin;
      try {
        socket = (Object.keys(extra).length > 0
          ? new this.WS(this.url, [SUBPROTOCOL], extra)
          : new this.WS(this.url, [SUBPROTOCOL])) as unknown as SocketLike;
      } catch (error) {
        resolve({ closed: { code: ABNORMAL, reason: String(error) }, welcomed: false, rejected: null });
        return;
      }
      let welcomed = false;
      let finished = false;
      let number = 0;
      let rejected: HandshakeRejected | null = null;
      let watchdog: ReturnType<typeof setTimeout> | null = null;
      let silenceMs = 0;
      const handshake = setTimeout(
        () => finish({ code: ABNORMAL, reason: "no welcome in time" }),
        this.options.handshakeTimeoutMs ?? 10_000,
      );
      const armWatchdog = (): void => {
        if (watchdog !== null) clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          this.log.warn(`no frame for ${silenceMs} ms (2x heartbeat_s): reconnecting`);
          finish({ code: ABNORMAL, reason: "heartbeat watchdog: server silent" });
        }, silenceMs);
      };
      const finish = (closed: Closed): void => {
        if (finished) return;
        finished = true;
        clearTimeout(handshake);
        if (watchdog !== null) clearTimeout(watchdog);
        // No-ops rather than null: the `ws` package throws on an error event that has no
        // listener (e.g. closing a socket that is still connecting).
        const ignore = (): void => undefined;
        socket.onopen = socket.onmessage = socket.onclose = socket.onerror = ignore;
        try {
          // Browsers only allow 1000 or 3000-4999 from a client.
          socket.close(CloseCode.NORMAL);
        } catch {
          // already closing
        }
        if (this.socket === socket) this.socket = null;
        if (this.endConnection === finish) this.endConnection = null;
        if (this.state === "open") this.setState("connecting");
        resolve({ closed, welcomed, rejected });
      };
      this.endConnection = finish;
      socket.onopen = () => {
        const chosen = socket.protocol;
        if (chosen && chosen !== SUBPROTOCOL) {
          finish({ code: ABNORMAL, reason: `server chose sub-protocol ${JSON.stringify(chosen)}` });
          return;
        }
        const hello: Record<string, unknown> = { type: "hello" };
        if (this.authMode === "hello" && this.token !== null) hello["token"] = this.token;
        if (resumeFrom !== null) hello["resume_from"] = resumeFrom;
        const name = this.options.clientName === undefined ? "petspark-ts/0.1" : this.options.clientName;
        if (name) hello["client"] = name;
        socket.send(JSON.stringify(hello));
      };
      socket.onerror = (ev) => {
        // Node `ws` reports a refused upgrade as an error before the close; browsers say nothing.
        const text = ev.message ?? (ev.error instanceof Error ? ev.error.message : "");
        const match = /Unexpected server response: (\d+)/.exec(text);
        if (match) {
          const status = Number(match[1]);
          if (status === 401) rejected = new HandshakeRejected(401, CloseCode.NOT_AUTHENTICATED);
          else if (status === 403) rejected = new HandshakeRejected(403, CloseCode.FORBIDDEN);
        }
        if (!welcomed) {
          finish({ code: rejected ? rejected.code : ABNORMAL, reason: text || "connection failed" });
        }
      };
      socket.onclose = (ev) => finish({ code: ev.code || ABNORMAL, reason: ev.reason || "" });
      socket.onmessage = (ev) => {
        if (finished) return;
        if (typeof ev.data !== "string") {
          this.log.warn("ignoring a binary frame on the JSON sub-protocol");
          return;
        }
        let msg: { type?: unknown; [key: string]: unknown };
        try {
          msg = JSON.parse(ev.data) as typeof msg;
        } catch {
          this.log.warn("ignoring a server frame that is not JSON");
          return;
        }
        if (typeof msg !== "object" || msg === null || typeof msg.type !== "string") {
          this.log.warn("ignoring a server frame without a type");
          return;
        }
        if (!welcomed) {
          if (msg.type !== "welcome") {
            this.log.warn(`ignoring ${msg.type} before welcome`);
            return;
          }
          welcomed = true;
          clearTimeout(handshake);
          const welcome = msg as unknown as Welcome;
          silenceMs = 2 * welcome.heartbeat_s * 1000;
          armWatchdog();
          this.connNumber += 1;
          number = this.connNumber;
          this.socket = socket;
          this.onWelcome(welcome, resumeFrom);
          this.resend(socket, number);
          this.flushAck();
          return;
        }
        armWatchdog();
        this.handle(socket, msg as { type: string; [key: string]: unknown });
      };
    });
  }

  private onWelcome(welcome: Welcome, resumeFrom: number | null): void {
    if (this.welcome !== null) this.reconnects += 1;
    this.welcome = welcome;
    this.log.info(`welcome session=${welcome.session_id} last_seq=${welcome.last_seq} resumed=${welcome.resumed}`);
    this.setState("open");
    this.emit("welcome", welcome);
    if (resumeFrom === null) {
      // No state: live events after last_seq only; resume from there next time.
      if (this.processed === null) this.setProcessed(welcome.last_seq);
    } else if (!welcome.resumed) {
      // Delivery continues after last_seq (also when the server's stream is behind ours,
      // e.g. a restored database): restart the bookkeeping there.
      this.emit("resync", { type: "resync", resume_from: resumeFrom, last_seq: welcome.last_seq });
      this.setProcessed(welcome.last_seq);
    }
    this.firstWelcome?.resolve(welcome);
  }

  /** Send the commands issued while disconnected and the resendable ones left
   * unanswered by the previous connection (same ids), in issue order. */
  private resend(socket: SocketLike, number: number): void {
    for (const entry of [...this.pending.values()]) {
      if (entry.sentOn !== number) {
        if (entry.sentOn !== null) this.log.info(`resending ${entry.tag} ${entry.id}`);
        this.sendCommand(socket, number, entry);
      }
    }
  }

  private sendCommand(socket: SocketLike, number: number, entry: PendingCommand): void {
    const previous = entry.sentOn;
    entry.sentOn = number;
    try {
      socket.send(JSON.stringify(entry.message));
    } catch (error) {
      this.log.debug("send failed, will retry after reconnect", { error: String(error) });
      entry.sentOn = previous;
    }
  }

  private handle(socket: SocketLike, msg: { type: string; [key: string]: unknown }): void {
    switch (msg.type) {
      case "ping":
        socket.send('{"type":"pong"}');
        return;
      case "ok":
        this.onOk(msg);
        return;
      case "error":
        this.onError(msg);
        return;
      case "welcome":
        this.log.warn("ignoring a second welcome");
        return;
      default:
        this.onEvent(msg);
    }
  }

  private onOk(msg: { [key: string]: unknown }): void {
    const entry = typeof msg["id"] === "string" ? this.pending.get(msg["id"]) : undefined;
    if (!entry) {
      this.log.debug(`reply to unknown or abandoned command ${String(msg["id"])}`);
      return;
    }
    const result = msg["result"];
    if (typeof result !== "object" || result === null || Array.isArray(result)) {
      entry.reject(new InvalidReply(`${entry.id}: ok.result is not an object`));
      return;
    }
    entry.resolve(result);
  }

  private onError(msg: { [key: string]: unknown }): void {
    const id = typeof msg["id"] === "string" ? msg["id"] : null;
    const code = String(msg["code"]) as ErrorCode;
    const text = String(msg["message"] ?? "");
    if (id === null) {
      this.log.warn(`server error without id: ${code} ${text}`);
      return;
    }
    const entry = this.pending.get(id);
    if (!entry) {
      this.log.debug(`error for unknown or abandoned command ${id}`);
      return;
    }
    const retry = typeof msg["retry_after_s"] === "number" ? msg["retry_after_s"] : null;
    entry.reject(CommandError.fromReply({ id, code, message: text, retry_after_s: retry }));
  }

  private onEvent(msg: { type: string; [key: string]: unknown }): void {
    const seq = msg["seq"];
    // A durable event carries seq; also one of a tag newer than this client.
    if (DURABLE.has(msg.type) || typeof seq === "number") {
      if (typeof seq !== "number") {
        this.log.warn(`durable ${msg.type} without seq: ignored`);
        return;
      }
      if (this.processed !== null && seq <= this.processed) {
        this.log.debug(`dropping duplicate seq ${seq} (processed ${this.processed})`);
        return;
      }
      if (this.processed !== null && seq !== this.processed + 1) {
        this.log.warn(`seq gap: ${seq} after ${this.processed}`);
      }
      this.emit(msg.type, msg);
      this.emit("*", msg);
      this.setProcessed(seq);
      return;
    }
    this.emit(msg.type, msg);
    this.emit("*", msg);
  }

  private emit(name: string, value: unknown): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        (handler as (value: unknown) => void)(value);
      } catch (error) {
        this.log.error(`a ${name} handler threw`, { error: String(error) });
      }
    }
  }

  private setState(state: ClientState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  // ------------------------------------------------------------------ seqs and acks

  private setProcessed(seq: number): void {
    if (this.processed === seq) return;
    this.processed = seq;
    try {
      const saved = this.store.save(seq);
      if (saved instanceof Promise) saved.catch((error: unknown) => this.log.warn("seq store save failed", { error: String(error) }));
    } catch (error) {
      this.log.warn("seq store save failed", { error: String(error) });
    }
    this.ackNeeded = true;
    if (this.ackTimer === null) this.flushAck();
  }

  /** Send `ack {last_seq}` when it moved, at most every `ackIntervalMs`. */
  private flushAck(): void {
    if (!this.ackNeeded || this.ackTimer !== null || this.state !== "open" || !this.socket) return;
    this.ackNeeded = false;
    this.sendAck();
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this.flushAck();
    }, this.options.ackIntervalMs ?? 500);
  }

  private sendAck(): void {
    const seq = this.processed;
    if (this.socket && seq !== null && (this.acked === null || seq > this.acked)) {
      try {
        this.socket.send(JSON.stringify({ type: "ack", seq }));
        this.acked = seq;
      } catch (error) {
        this.ackNeeded = true;
        this.log.debug("ack not sent", { error: String(error) });
      }
    }
  }

  // ------------------------------------------------------------------ stopping

  /** After a drop: fail the sent, non-resendable commands; the others stay and are
   * (re)sent after the next `welcome`. */
  private failUnsafe(error: Error): void {
    for (const entry of [...this.pending.values()]) {
      if (entry.sentOn !== null && !entry.resendable) entry.reject(error);
    }
  }

  /** Enter the terminal state once: reject everything waiting, tell `stopped` handlers. */
  private stop(error: ConnectionClosed): void {
    if (this.terminal) return;
    this.terminal = error;
    this.setState("closed");
    for (const entry of [...this.pending.values()]) entry.reject(error);
    this.pending.clear();
    this.firstWelcome?.reject(error);
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.emit("stopped", error);
  }
}
