/**
 * HTTP helpers (PROTOCOL §9): auth (register, login, refresh, logout, me) and uploads
 * (direct multipart, presigned POST, resumable multipart) with progress and retries.
 *
 * Browsers: the session cookie set by register/login authenticates every later call
 * (and the socket); `credentials: "include"` is used so that it also works cross-origin
 * with CORS (`ALLOWED_ORIGINS`). Node: there is no cookie jar, so the access token from
 * the auth response is sent as `Authorization: Bearer` (`HttpApi` keeps it).
 */
import { HttpError } from "./errors.js";
import type {
  AuthResponse,
  MeResponse,
  MultipartResponse,
  PresignResponse,
  Upload,
  UploadPurpose,
  UploadResponse,
} from "./generated/protocol.js";

/** `(sent, total)` in bytes of the file. */
export type Progress = (sent: number, total: number) => void;

export interface HttpApiOptions {
  /** The server's origin, e.g. `http://127.0.0.1:8080` (default: the page's origin). */
  baseUrl?: string;
  /** Send the stored access token as a bearer token (default: true outside browsers). */
  useBearer?: boolean;
  /** `fetch` to use (default `globalThis.fetch`). */
  fetch?: typeof fetch;
}

export interface UploadOptions {
  purpose: UploadPurpose;
  /** The file name sent with a direct upload (the server ignores it but logs are nicer). */
  filename?: string;
  /** Declared type (the server sniffs the bytes anyway). Default: the Blob's type or image/jpeg. */
  contentType?: string;
  onProgress?: Progress;
  /** Attempts per request (direct upload, each part, start and complete); default 5. */
  attempts?: number;
  /** Files up to this size use the direct route; larger ones the resumable multipart one. */
  directMaxBytes?: number;
  /** Parts sent at once in a multipart upload (default 3). */
  concurrency?: number;
  signal?: AbortSignal;
}

/** Bytes to upload: a browser `Blob`/`File`, or bytes (Node or browser). */
export type UploadSource = Blob | Uint8Array;

export const DEFAULT_DIRECT_MAX = 10 * 1024 * 1024;

class Retry extends Error {
  constructor(readonly afterS: number | null, readonly status: number, readonly detail: string) {
    super(`retryable ${status}: ${detail}`);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason ?? new Error("aborted"));
    }, { once: true });
  });
}

function retryAfter(header: string | null): number | null {
  if (header === null || !/^\d+$/.test(header.trim())) return null;
  return Number(header);
}

/** Network errors, timeouts, 5xx and 429 are retried with full-jitter backoff (honouring
 * `Retry-After`); other answers are final. */
async function withRetry<T>(attempts: number, call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const retryable = error instanceof Retry || error instanceof TypeError || (error instanceof Error && error.name === "NetworkError");
      if (!retryable || signal?.aborted || attempt >= attempts - 1) {
        if (error instanceof Retry) throw new HttpError(error.status, error.status === 429 ? "rate_limited" : "unavailable", `gave up after ${attempts} attempts: ${error.detail}`, error.afterS);
        throw error;
      }
      let delayS = Math.random() * Math.min(30, 0.5 * 2 ** attempt);
      if (error instanceof Retry && error.afterS !== null) delayS = Math.max(delayS, error.afterS);
      await sleep(delayS * 1000, signal);
    }
  }
}

async function errorFrom(status: number, text: string, retryAfterHeader: string | null): Promise<never> {
  if (status === 429 || status >= 500) throw new Retry(retryAfter(retryAfterHeader), status, text.slice(0, 200));
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; field?: unknown } };
    if (body.error && typeof body.error.code === "string") {
      const field = typeof body.error.field === "string" ? body.error.field : null;
      throw new HttpError(status, body.error.code, String(body.error.message ?? ""), retryAfter(retryAfterHeader), field);
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
  }
  throw new HttpError(status, "unknown", text.slice(0, 200));
}

const isBrowser = (): boolean => typeof XMLHttpRequest !== "undefined";

function sizeOf(source: UploadSource): number {
  return source instanceof Uint8Array ? source.byteLength : source.size;
}

function sliceOf(source: UploadSource, start: number, end: number): UploadSource {
  return source instanceof Uint8Array ? source.subarray(start, end) : source.slice(start, end);
}

interface SentRequest {
  status: number;
  text: string;
  header(name: string): string | null;
}

interface BodyPart {
  /** Bytes or a Blob; `counted` parts report progress. */
  data: UploadSource | string;
  counted: boolean;
}

const CHUNK = 64 * 1024;

export class HttpApi {
  readonly baseUrl: string;
  /** The latest access and refresh tokens from an auth response (null after logout). */
  accessToken: string | null = null;
  refreshTokenValue: string | null = null;
  expiresAt: string | null = null;
  private readonly useBearer: boolean;
  private readonly fetchFn: typeof fetch;
  private refreshing: Promise<AuthResponse> | null = null;

  constructor(options: HttpApiOptions = {}) {
    const loc = (globalThis as { location?: { origin: string } }).location;
    const base = options.baseUrl ?? loc?.origin;
    if (!base) throw new TypeError("HttpApi needs baseUrl outside a browser page");
    this.baseUrl = base.replace(/\/+$/, "");
    this.useBearer = options.useBearer ?? !isBrowser();
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The socket URL of this server: `ws(s)://host/ws`. */
  get wsUrl(): string {
    return this.baseUrl.replace(/^http/, "ws") + "/ws";
  }

  private url(path: string): string {
    return new URL(path, this.baseUrl + "/").toString();
  }

  private authHeaders(): Record<string, string> {
    return this.useBearer && this.accessToken ? { Authorization: `Bearer ${this.accessToken}` } : {};
  }

  /** A JSON request; resolves with the parsed body (null for 204). */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json", ...this.authHeaders() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await this.fetchFn(this.url(path), {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      credentials: "include",
    });
    const text = await resp.text();
    if (!resp.ok) {
      try {
        await errorFrom(resp.status, text, resp.headers.get("Retry-After"));
      } catch (error) {
        if (error instanceof Retry) {
          const code = resp.status === 429 ? "rate_limited" : "unavailable";
          throw new HttpError(resp.status, code, error.detail, error.afterS);
        }
        throw error;
      }
    }
    return (text ? JSON.parse(text) : null) as T;
  }

  private keep(auth: AuthResponse): AuthResponse {
    this.accessToken = auth.access_token;
    this.refreshTokenValue = auth.refresh_token;
    this.expiresAt = auth.expires_at;
    return auth;
  }

  /** `POST /api/v1/auth/register` → 201 (sets the session cookie in browsers). */
  async register(email: string, password: string, displayName: string): Promise<AuthResponse> {
    return this.keep(await this.request<AuthResponse>("POST", "/api/v1/auth/register", { email, password, display_name: displayName }));
  }

  /** `POST /api/v1/auth/login` (sets the session cookie in browsers). */
  async login(email: string, password: string): Promise<AuthResponse> {
    return this.keep(await this.request<AuthResponse>("POST", "/api/v1/auth/login", { email, password }));
  }

  /** `POST /api/v1/auth/refresh`: spends the refresh token for a new pair. Concurrent
   * calls share one request (the server treats a second use of a token as theft). */
  refresh(refreshToken?: string): Promise<AuthResponse> {
    if (this.refreshing) return this.refreshing;
    const token = refreshToken ?? this.refreshTokenValue;
    if (!token) return Promise.reject(new HttpError(401, "unauthorized", "no refresh token"));
    this.refreshing = this.request<AuthResponse>("POST", "/api/v1/auth/refresh", { refresh_token: token })
      .then((auth) => this.keep(auth))
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  /** A `tokenProvider` for `Client`: a fresh access token from `refresh()`. */
  readonly tokenProvider = async (): Promise<string> => (await this.refresh()).access_token;

  /** `POST /api/v1/auth/logout`: revokes the session (its sockets close 4001). */
  async logout(): Promise<void> {
    const body = this.refreshTokenValue ? { refresh_token: this.refreshTokenValue } : {};
    await this.request<null>("POST", "/api/v1/auth/logout", body);
    this.accessToken = this.refreshTokenValue = this.expiresAt = null;
  }

  /** `GET /api/v1/auth/me`. */
  async me(): Promise<MeResponse> {
    return this.request<MeResponse>("GET", "/api/v1/auth/me");
  }

  /** `GET /api/v1/uploads/{id}` (with a short-lived `url`). */
  async getUpload(id: string, variant?: "thumbnail"): Promise<Upload> {
    const query = variant ? `?variant=${variant}` : "";
    return (await this.request<UploadResponse>("GET", `/api/v1/uploads/${encodeURIComponent(id)}${query}`)).upload;
  }

  // ------------------------------------------------------------------ uploads

  /** Upload a file, choosing the direct route up to `directMaxBytes` and the resumable
   * multipart flow above; resolves with the server's `upload` (status `pending`). */
  upload(source: UploadSource, options: UploadOptions): Promise<Upload> {
    const max = options.directMaxBytes ?? DEFAULT_DIRECT_MAX;
    return sizeOf(source) <= max ? this.uploadDirect(source, options) : this.uploadMultipart(source, options);
  }

  /** `POST /api/v1/uploads` (multipart form, `purpose` then `file`), retried whole. */
  async uploadDirect(source: UploadSource, options: UploadOptions): Promise<Upload> {
    const size = sizeOf(source);
    const contentType = options.contentType ?? (source instanceof Uint8Array ? "" : source.type) ?? "";
    const form = multipartBody(
      [["purpose", options.purpose]],
      { data: source, filename: options.filename ?? "upload", contentType: contentType || "image/jpeg" },
    );
    const resp = await withRetry(options.attempts ?? 5, () =>
      this.send("POST", this.url("/api/v1/uploads"), form.parts, size, options, {
        "Content-Type": `multipart/form-data; boundary=${form.boundary}`,
        ...this.authHeaders(),
      }), options.signal);
    return (JSON.parse(resp.text) as UploadResponse).upload;
  }

  /** The presigned flow: `POST /uploads/presign`, POST the form to the storage URL, then
   * `complete`. */
  async uploadPresigned(source: UploadSource, options: UploadOptions): Promise<Upload> {
    const size = sizeOf(source);
    const contentType = options.contentType ?? (source instanceof Uint8Array ? "" : source.type) ?? "";
    const attempts = options.attempts ?? 5;
    const presign = await withRetry(attempts, () =>
      this.request<PresignResponse>("POST", "/api/v1/uploads/presign", { content_type: contentType || "image/jpeg", size, purpose: options.purpose }).catch(retryable),
    options.signal);
    const form = multipartBody(Object.entries(presign.fields), { data: source, filename: options.filename ?? "upload", contentType: contentType || "image/jpeg" });
    await withRetry(attempts, () =>
      this.send("POST", this.url(presign.url), form.parts, size, options, { "Content-Type": `multipart/form-data; boundary=${form.boundary}` }),
    options.signal);
    return this.complete(presign.upload_id, null, attempts, options.signal);
  }

  /** The resumable flow: `POST /uploads/multipart`, PUT every part (each retried on its
   * own, `concurrency` at once), then `complete` with the parts' ETags. */
  async uploadMultipart(source: UploadSource, options: UploadOptions): Promise<Upload> {
    const size = sizeOf(source);
    const contentType = options.contentType ?? (source instanceof Uint8Array ? "" : source.type) ?? "";
    const attempts = options.attempts ?? 5;
    const started = await withRetry(attempts, () =>
      this.request<MultipartResponse>("POST", "/api/v1/uploads/multipart", { content_type: contentType || "image/jpeg", size, purpose: options.purpose }).catch(retryable),
    options.signal);
    const sentPerPart = new Map<number, number>();
    const report = (): void => {
      let sent = 0;
      for (const n of sentPerPart.values()) sent += n;
      options.onProgress?.(Math.min(sent, size), size);
    };
    const offsets: { part_number: number; url: string; start: number; end: number }[] = [];
    let offset = 0;
    for (const part of started.parts) {
      offsets.push({ part_number: part.part_number, url: part.url, start: offset, end: offset + part.size });
      offset += part.size;
    }
    const etags = new Map<number, string>();
    const queue = [...offsets];
    const worker = async (): Promise<void> => {
      for (let part = queue.shift(); part; part = queue.shift()) {
        const p = part;
        const chunk = sliceOf(source, p.start, p.end);
        const resp = await withRetry(attempts, () => {
          sentPerPart.set(p.part_number, 0);
          return this.send("PUT", this.url(p.url), [{ data: chunk, counted: true }], p.end - p.start, {
            ...options,
            onProgress: (sent) => {
              sentPerPart.set(p.part_number, sent);
              report();
            },
          }, {});
        }, options.signal);
        const etag = resp.header("ETag");
        if (!etag) throw new HttpError(resp.status, "unknown", `part ${p.part_number}: no ETag (storage CORS must expose it)`);
        etags.set(p.part_number, etag);
      }
    };
    const workers = Math.max(1, Math.min(options.concurrency ?? 3, offsets.length));
    await Promise.all(Array.from({ length: workers }, worker));
    const parts = offsets.map((p) => ({ part_number: p.part_number, etag: etags.get(p.part_number)! }));
    return this.complete(started.upload_id, parts, attempts, options.signal);
  }

  private async complete(uploadId: string, parts: { part_number: number; etag: string }[] | null, attempts: number, signal?: AbortSignal): Promise<Upload> {
    const path = `/api/v1/uploads/${encodeURIComponent(uploadId)}/complete`;
    const resp = await withRetry(attempts, () =>
      this.request<UploadResponse>("POST", path, parts ? { parts } : undefined).catch(retryable), signal);
    return resp.upload;
  }

  /** One request with upload progress: XHR in browsers (its `upload.onprogress`), a
   * counting streamed body in Node (`fetch` with `duplex: "half"`). Progress is reported
   * in bytes of the counted parts (the file), `total` = `countedSize`. */
  private send(method: string, url: string, parts: BodyPart[], countedSize: number, options: UploadOptions, headers: Record<string, string>): Promise<SentRequest> {
    return isBrowser() ? this.sendXhr(method, url, parts, countedSize, options, headers) : this.sendStream(method, url, parts, countedSize, options, headers);
  }

  private sendXhr(method: string, url: string, parts: BodyPart[], countedSize: number, options: UploadOptions, headers: Record<string, string>): Promise<SentRequest> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.withCredentials = true;
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      const body = new Blob(parts.map((p) => p.data as BlobPart));
      // Bytes before the file (form fields, boundary): progress is the file's bytes only.
      let before = 0;
      for (const p of parts) {
        if (p.counted) break;
        before += new Blob([p.data as BlobPart]).size;
      }
      xhr.upload.onprogress = (ev) => {
        options.onProgress?.(Math.max(0, Math.min(countedSize, ev.loaded - before)), countedSize);
      };
      xhr.onload = () => {
        const result: SentRequest = { status: xhr.status, text: xhr.responseText, header: (n) => xhr.getResponseHeader(n) };
        if (xhr.status >= 200 && xhr.status < 300) {
          options.onProgress?.(countedSize, countedSize);
          resolve(result);
        } else {
          errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")).catch(reject);
        }
      };
      xhr.onerror = () => reject(new TypeError("network error"));
      xhr.onabort = () => reject(options.signal?.reason ?? new Error("aborted"));
      options.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(body);
    });
  }

  private async sendStream(method: string, url: string, parts: BodyPart[], countedSize: number, options: UploadOptions, headers: Record<string, string>): Promise<SentRequest> {
    let sent = 0;
    let length = 0;
    const chunks: { bytes: () => Promise<Uint8Array>; counted: boolean; size: number }[] = [];
    const encoder = new TextEncoder();
    for (const part of parts) {
      if (typeof part.data === "string") {
        const bytes = encoder.encode(part.data);
        chunks.push({ bytes: async () => bytes, counted: part.counted, size: bytes.byteLength });
        length += bytes.byteLength;
      } else {
        const data = part.data;
        const total = sizeOf(data);
        for (let start = 0; start < total; start += CHUNK) {
          const end = Math.min(total, start + CHUNK);
          const piece = sliceOf(data, start, end);
          chunks.push({
            bytes: async () => (piece instanceof Uint8Array ? piece : new Uint8Array(await piece.arrayBuffer())),
            counted: part.counted,
            size: end - start,
          });
        }
        length += total;
      }
    }
    let index = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = chunks[index++];
        if (!chunk) {
          controller.close();
          return;
        }
        controller.enqueue(await chunk.bytes());
        if (chunk.counted) {
          sent += chunk.size;
          options.onProgress?.(Math.min(sent, countedSize), countedSize);
        }
      },
    });
    const init: RequestInit & { duplex: "half" } = {
      method,
      headers: { ...headers, "Content-Length": String(length) },
      body: stream,
      duplex: "half",
      ...(options.signal ? { signal: options.signal } : {}),
    };
    const resp = await this.fetchFn(url, init);
    const text = await resp.text();
    if (!resp.ok) await errorFrom(resp.status, text, resp.headers.get("Retry-After"));
    return { status: resp.status, text, header: (n) => resp.headers.get(n) };
  }
}

/** Turn an HttpError of a retryable status back into a retry signal for `withRetry`. */
function retryable(error: unknown): never {
  if (error instanceof HttpError && (error.status === 429 || error.status >= 500)) {
    throw new Retry(error.retryAfterS, error.status, error.serverMessage);
  }
  // 409 on complete while the object is not there yet or another complete runs: retry.
  if (error instanceof HttpError && error.status === 409 && /nothing has been uploaded|already being completed/.test(error.serverMessage)) {
    throw new Retry(null, 409, error.serverMessage);
  }
  throw error;
}

function multipartBody(fields: [string, string][], file: { data: UploadSource; filename: string; contentType: string }): { boundary: string; parts: BodyPart[] } {
  const boundary = `----petspark${Math.random().toString(16).slice(2)}${Date.now().toString(16)}`;
  const quote = (s: string): string => s.replace(/[\r\n"]/g, "_");
  let head = "";
  for (const [name, value] of fields) {
    head += `--${boundary}\r\nContent-Disposition: form-data; name="${quote(name)}"\r\n\r\n${value}\r\n`;
  }
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${quote(file.filename)}"\r\nContent-Type: ${file.contentType}\r\n\r\n`;
  return {
    boundary,
    parts: [
      { data: head, counted: false },
      { data: file.data, counted: true },
      { data: `\r\n--${boundary}--\r\n`, counted: false },
    ],
  };
}
