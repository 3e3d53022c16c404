/**
 * What the client throws: per-command failures and connection ends (the same classes
 * as the Python client's `client/errors.py`).
 *
 * `CommandError` (and one subclass per error code) is the server's `error` reply to one
 * command; the connection is fine. `ConnectionClosed` means the client has stopped for
 * good; `ConnectionLost` means the connection dropped while a command that is not safe
 * to resend was in flight (the client itself reconnects).
 */
import type { ErrorCode } from "./generated/protocol.js";

export class ClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The server answered a command with `error`. `code` is the protocol's error code. */
export class CommandError extends ClientError {
  readonly code: ErrorCode;
  readonly retryAfterS: number | null;
  readonly commandId: string | null;
  /** The server's human-readable message (starts with the field path for validation errors). */
  readonly serverMessage: string;
  /** The path of the field at fault (`body`, `location.lat`), when the server named one. */
  readonly field: string | null;

  constructor(code: ErrorCode, message: string, retryAfterS: number | null = null, commandId: string | null = null, field: string | null = null) {
    super(`${code}: ${message}`);
    this.code = code;
    this.serverMessage = message;
    this.retryAfterS = retryAfterS;
    this.commandId = commandId;
    this.field = field;
  }

  /** The error for an `error` reply: the subclass for its code. */
  static fromReply(reply: { id: string | null; code: ErrorCode; message: string; retry_after_s?: number | null; field?: string | null }): CommandError {
    const cls = ERROR_CLASSES[reply.code] ?? CommandError;
    return new cls(reply.code, reply.message, reply.retry_after_s ?? null, reply.id, reply.field ?? null);
  }
}

/** `bad_request`: the command could not be decoded or failed validation. */
export class BadRequest extends CommandError {}
/** `unauthorized`. */
export class Unauthorized extends CommandError {}
/** `forbidden`: visible but not allowed (owner-only, admin-only). */
export class Forbidden extends CommandError {}
/** `not_found`: no such thing, or one this user may not see. */
export class NotFound extends CommandError {}
/** `conflict`: contradicts the current state. */
export class Conflict extends CommandError {}
/** `rate_limited`: wait `retryAfterS` before trying again. */
export class RateLimited extends CommandError {}
/** `too_large`: a text or list over its limit. */
export class TooLarge extends CommandError {}
/** `unavailable`: a dependency is down or the server is stopping; retry later. */
export class Unavailable extends CommandError {}
/** `internal`: a server bug (details only in the server log). */
export class InternalServerError extends CommandError {}
/** `unsupported_media_type` (HTTP only). */
export class UnsupportedMediaType extends CommandError {}
/** `method_not_allowed` (HTTP only). */
export class MethodNotAllowed extends CommandError {}

type CommandErrorClass = new (code: ErrorCode, message: string, retryAfterS?: number | null, commandId?: string | null, field?: string | null) => CommandError;

/** Error code → the `CommandError` subclass thrown for it. */
export const ERROR_CLASSES: Record<ErrorCode, CommandErrorClass> = {
  bad_request: BadRequest,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  not_found: NotFound,
  conflict: Conflict,
  rate_limited: RateLimited,
  too_large: TooLarge,
  unavailable: Unavailable,
  internal: InternalServerError,
  unsupported_media_type: UnsupportedMediaType,
  method_not_allowed: MethodNotAllowed,
};

/** No reply within the command's timeout (a late reply is ignored). */
export class CommandTimeout extends ClientError {}

/** The `ok.result` was not an object. */
export class InvalidReply extends ClientError {}

/** The connection dropped before this command was answered, and the command is not safe
 * to resend (no `idempotency_key`/`client_msg_id`). It may or may not have taken effect. */
export class ConnectionLost extends ClientError {}

/** The client stopped and will not reconnect: `code` is the close code that stopped it
 * (4001, 4003, 4010, 4000, 1009, …) or 1000 after `close()`. */
export class ConnectionClosed extends ClientError {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason = "") {
    super(`connection closed ${code}${reason ? `: ${reason}` : ""}`);
    this.code = code;
    this.reason = reason;
  }
}

/** The HTTP upgrade itself was refused (seen in Node only: browsers report a refused
 * upgrade as 1006). `status` is the HTTP status; `code` the close code it counts as. */
export class HandshakeRejected extends ConnectionClosed {
  readonly status: number;
  constructor(status: number, code: number, reason = "") {
    super(code, reason || `HTTP ${status} on upgrade`);
    this.status = status;
  }
}

/** An HTTP route answered an error: `{"error": {"code", "message", "field"?}}` (code
 * `unknown` when the body was not that shape). */
export class HttpError extends ClientError {
  readonly status: number;
  readonly code: string;
  readonly serverMessage: string;
  readonly retryAfterS: number | null;
  /** The path of the field at fault (`email`, `parts[0].etag`), when the server named one. */
  readonly field: string | null;
  constructor(status: number, code: string, message: string, retryAfterS: number | null = null, field: string | null = null) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.serverMessage = message;
    this.retryAfterS = retryAfterS;
    this.field = field;
  }
}
