/**
 * What the client does after a connection ends, by close code (PROTOCOL §7) — the same
 * table as the Python client's `client/close_policy.py`, as a pure function.
 */
import { CloseCode } from "./generated/protocol.js";

export type Action = "stop" | "reconnect_now" | "reconnect_backoff";

export interface Plan {
  action: Action;
  reason: string;
}

/** RFC 6455: the connection ended without a close frame (also used for network errors). */
export const ABNORMAL = 1006;

const NO_RECONNECT: ReadonlySet<number> = new Set([
  CloseCode.TOO_LARGE,
  CloseCode.PROTOCOL_VIOLATION,
  CloseCode.NOT_AUTHENTICATED,
  CloseCode.FORBIDDEN,
  CloseCode.REPLACED,
]);

/** Whether a reconnect (with backoff) can help after close `code` (false for 1009,
 * 4000, 4001, 4003, 4010; true for every other code, 1006 included). */
export function shouldReconnect(code: number): boolean {
  return !NO_RECONNECT.has(code);
}

/**
 * The plan after the connection ended with `code`. `authRetryUsed`: a 4001 already led
 * to one retry with a new token since the last `welcome` (a second 4001 in a row stops).
 */
export function planAfterClose(code: number, opts: { hasTokenProvider: boolean; authRetryUsed: boolean }): Plan {
  if (code === CloseCode.GOING_AWAY) {
    return { action: "reconnect_now", reason: "server going away: reconnect at once, with resume" };
  }
  if (code === CloseCode.NOT_AUTHENTICATED) {
    if (opts.hasTokenProvider && !opts.authRetryUsed) {
      return { action: "reconnect_now", reason: "not authenticated: one retry with a new token" };
    }
    return { action: "stop", reason: "not authenticated" };
  }
  if (code === CloseCode.TOKEN_EXPIRED) {
    if (opts.hasTokenProvider) return { action: "reconnect_now", reason: "token expired: reconnect with a new token" };
    // Reconnecting with the expired token could only end in 4001.
    return { action: "stop", reason: "token expired and no tokenProvider" };
  }
  if (!shouldReconnect(code)) {
    return { action: "stop", reason: `close code ${code} cannot be fixed by reconnecting` };
  }
  return { action: "reconnect_backoff", reason: `close code ${code}: reconnect with backoff` };
}
