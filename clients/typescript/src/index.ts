/**
 * `@petspark/client`: the PetSpark realtime client (WebSocket, typed by the protocol's
 * command tags), HTTP helpers (auth, uploads with progress) and the generated protocol
 * types. Works in browsers and Node 20+ (pass the `ws` package's `WebSocket` there).
 */
export * from "./generated/protocol.js";
export { Backoff, type BackoffOptions } from "./backoff.js";
export { ABNORMAL, planAfterClose, shouldReconnect, type Action, type Plan } from "./close-policy.js";
export {
  Client,
  consoleLogger,
  randomId,
  SUBPROTOCOL,
  type AuthMode,
  type ClientOptions,
  type ClientSignals,
  type ClientState,
  type Closed,
  type Listeners,
  type Logger,
  type Resync,
  type Unsubscribe,
  type WebSocketConstructor,
} from "./client.js";
export * from "./errors.js";
export { DEFAULT_DIRECT_MAX, HttpApi, type HttpApiOptions, type Progress, type UploadOptions, type UploadSource } from "./http.js";
export { LocalStorageSeqStore, MemorySeqStore, type SeqStore, type StorageLike } from "./seq-store.js";
