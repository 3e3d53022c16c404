/**
 * Reconnect delays: exponential backoff with full jitter (PROTOCOL §7).
 *
 * The n-th consecutive failed attempt (n = 0, 1, 2, …) waits
 * `uniform(0, min(cap, base * 2**n))` seconds. The client resets n after a `welcome`.
 */
export interface BackoffOptions {
  /** Seconds; default 0.5. */
  baseS?: number;
  /** Seconds; default 30. */
  capS?: number;
  /** Injectable for tests: returns a number in [0, 1). Default `Math.random`. */
  random?: () => number;
}

export class Backoff {
  readonly baseS: number;
  readonly capS: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.baseS = options.baseS ?? 0.5;
    this.capS = options.capS ?? 30;
    this.random = options.random ?? Math.random;
    if (!(this.baseS > 0) || !(this.capS > 0)) throw new RangeError("backoff base and cap must be > 0");
  }

  /** The largest delay for attempt `attempt`: `min(cap, base * 2**attempt)` seconds. */
  ceilingS(attempt: number): number {
    return Math.min(this.capS, this.baseS * 2 ** Math.min(attempt, 64));
  }

  /** A full-jitter delay for attempt `attempt`, in seconds. */
  delayS(attempt: number): number {
    return this.random() * this.ceilingS(attempt);
  }
}
