/**
 * Where the client keeps `last_seq` (the highest durable seq handed to the application)
 * so that a reload resumes instead of starting over. `load()` runs before each connect;
 * `save()` after every processed durable event.
 *
 * Key a persistent store by user (e.g. `petspark.last_seq.<user id>`): a seq means
 * nothing for another account.
 */
export interface SeqStore {
  load(): number | null | Promise<number | null>;
  save(seq: number): void | Promise<void>;
}

/** The default: lives as long as the `Client` (a reload starts with live events only). */
export class MemorySeqStore implements SeqStore {
  private seq: number | null;
  constructor(initial: number | null = null) {
    this.seq = initial;
  }
  load(): number | null {
    return this.seq;
  }
  save(seq: number): void {
    this.seq = seq;
  }
}

/** The subset of the Web Storage API the adapter uses (`window.localStorage` has it). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Keeps `last_seq` in `localStorage` (or any `StorageLike`) under `key`. A value that is
 * not a non-negative integer reads as "no state". Storage errors (quota, privacy mode)
 * are swallowed: the client then behaves like the memory store. */
export class LocalStorageSeqStore implements SeqStore {
  private readonly storage: StorageLike | null;
  private fallback: number | null = null;

  constructor(
    readonly key: string = "petspark.last_seq",
    storage?: StorageLike,
  ) {
    const global = globalThis as { localStorage?: StorageLike };
    this.storage = storage ?? global.localStorage ?? null;
  }

  load(): number | null {
    let raw: string | null = null;
    try {
      raw = this.storage?.getItem(this.key) ?? null;
    } catch {
      return this.fallback;
    }
    if (raw === null) return this.fallback;
    const seq = Number(raw);
    return Number.isSafeInteger(seq) && seq >= 0 ? seq : null;
  }

  save(seq: number): void {
    this.fallback = seq;
    try {
      this.storage?.setItem(this.key, String(seq));
    } catch {
      // Quota or privacy mode: keep it in memory.
    }
  }
}
