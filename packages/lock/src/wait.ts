// Waiting primitives: a counting wake latch (no lost wake-ups) and abortable, jittered sleeps.

/**
 * Counts wake-ups. arm() before each attempt; a wake-up that lands during the attempt or
 * before wait() is counted, so wait() then returns at once instead of sleeping through it.
 */
export class WakeLatch {
  #count = 0;
  #resolve: (() => void) | undefined;
  #limit: ((ms: number) => void) | undefined;
  #limitMs: number | undefined;

  arm(): void {
    this.#count = 0;
    this.#limitMs = undefined;
  }

  /** Shortens the current (or next) wait to at most ms, without counting as a wake-up. */
  limit(ms: number): void {
    this.#limitMs = Math.min(this.#limitMs ?? Infinity, ms);
    this.#limit?.(ms);
  }

  signal(): void {
    this.#count++;
    const r = this.#resolve;
    this.#resolve = undefined;
    r?.();
  }

  /** Resolves true on a wake-up, false when boundMs elapses; rejects with signal.reason on abort. */
  wait(boundMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#count > 0) {
      this.#count = 0;
      return Promise.resolve(true);
    }
    if (this.#limitMs !== undefined) boundMs = Math.min(boundMs, this.#limitMs);
    return new Promise<boolean>((resolve, reject) => {
      const startedAt = performance.now();
      let until = startedAt + boundMs;
      const done = (woken: boolean) => {
        this.#limit = undefined;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#resolve = undefined;
        this.#count = 0;
        resolve(woken);
      };
      const onAbort = () => {
        clearTimeout(timer);
        this.#resolve = undefined;
        this.#limit = undefined;
        reject(signal?.reason);
      };
      let timer = setTimeout(() => done(false), Math.max(0, boundMs));
      this.#resolve = () => done(true);
      this.#limit = (ms) => {
        const t = performance.now() + ms;
        if (t >= until) return;
        until = t;
        clearTimeout(timer);
        timer = setTimeout(() => done(false), Math.max(0, ms));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Full jitter: uniform in [1, min(max, base * 2^attempt)]. */
export function jitteredBackoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.max(1, Math.floor(random() * cap));
}

/** Something a DeadlineSweeper fires once performance.now() passes `at`. */
export interface SweepItem {
  readonly at: number;
  fire(): void;
}

/**
 * Deadlines for in-flight operations without a timer each: one shared interval (running only
 * while something is pending) fires the overdue ones. Precision is the sweep interval.
 */
export class DeadlineSweeper {
  readonly #items = new Set<SweepItem>();
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(intervalMs = 20) {
    this.#intervalMs = intervalMs;
  }

  add(item: SweepItem): void {
    this.#items.add(item);
    if (!this.#timer) {
      // Referenced: a pending operation is live work; the interval stops when nothing is pending.
      this.#timer = setInterval(() => this.#sweep(), this.#intervalMs);
    }
  }

  remove(item: SweepItem): void {
    this.#items.delete(item);
  }

  #sweep(): void {
    const now = performance.now();
    for (const item of this.#items) {
      if (item.at > now) continue;
      this.#items.delete(item);
      try {
        item.fire();
      } catch {
        // a deadline callback must not stop the others
      }
    }
    if (this.#items.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
