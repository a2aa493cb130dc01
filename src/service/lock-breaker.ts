// A circuit breaker around the service's lock provider: after a run of backend errors (or a failed
// ping) it opens, and lock operations fail at once with LocksDownError instead of retrying until
// their timeout; acquisitions already waiting are cut short too. While open, a probe pings the
// backend every probeIntervalMs (half-open); the first answer closes it again.
import { Gauge, Counter, type Registry } from 'prom-client';
import { LockAbortedError, LockBackendError, LockLostError, NotOwnerError, type AcquireOptions, type Lease, type LockEvent, type LockProvider, type UsingCallback } from '@allot/lock';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface LockBreakerOptions {
  /** consecutive backend errors that open the breaker (default 5) */
  failureThreshold?: number;
  /** while open: how often a probe pings the backend (default 1000 ms) */
  probeIntervalMs?: number;
  /** a ping (a probe, or /readyz) unanswered this long counts as failed (default 1000 ms) */
  pingTimeoutMs?: number;
}

export const DEFAULT_BREAKER_OPTIONS: Readonly<Required<LockBreakerOptions>> = Object.freeze({ failureThreshold: 5, probeIntervalMs: 1000, pingTimeoutMs: 1000 });

/** A lock operation refused at once because the lock backend is down (the breaker is open). */
export class LocksDownError extends LockBackendError {
  constructor(key: string, readonly since: number, lastError: unknown) {
    super(key, 'acquire', lastError);
    this.message = `the lock backend is down (circuit breaker open since ${new Date(since).toISOString()}); lock "${key}" was not tried. Last error: ${describe(lastError)}`;
  }
}

export class LockBreaker {
  readonly #opts: Required<LockBreakerOptions>;
  readonly #ping: () => Promise<void>;
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #lastError: unknown = undefined;
  #probe: NodeJS.Timeout | undefined;
  #closed = false;
  /** acquisitions in flight: aborted when the breaker opens */
  readonly #inflight = new Set<AbortController>();
  readonly #opened: Counter | undefined;
  readonly #fastFailures: Counter | undefined;

  constructor(ping: () => Promise<void>, opts: LockBreakerOptions = {}, registry?: Registry) {
    this.#opts = { ...DEFAULT_BREAKER_OPTIONS, ...opts };
    this.#ping = ping;
    if (registry) {
      const state = () => this.#state.replace('-', '_');
      new Gauge({
        name: 'allot_lock_breaker_state',
        help: 'The lock backend\'s circuit breaker: 1 for its current state (closed: locks are used; open: the backend is down and lock operations fail at once; half_open: probing)',
        labelNames: ['state'],
        registers: [registry],
        collect() {
          for (const s of ['closed', 'open', 'half_open'] as const) this.set({ state: s }, state() === s ? 1 : 0);
        },
      });
      this.#opened = new Counter({ name: 'allot_lock_breaker_opened_total', help: 'Times the lock backend\'s circuit breaker opened (the backend went down)', registers: [registry] });
      this.#fastFailures = new Counter({ name: 'allot_lock_breaker_rejections_total', help: 'Lock operations failed at once (or cut short) because the breaker was open', registers: [registry] });
    }
  }

  get state(): BreakerState {
    return this.#state;
  }

  get openedAt(): number {
    return this.#openedAt;
  }

  /** A backend error (from an event, an operation or a ping). */
  failure(error: unknown): void {
    this.#lastError = error;
    if (this.#state !== 'closed') return;
    if (++this.#failures >= this.#opts.failureThreshold) this.open(error);
  }

  /** The backend answered an operation. */
  success(): void {
    if (this.#state === 'closed') this.#failures = 0;
  }

  /** Opens now (a failed ping, or the threshold reached): waiting acquisitions are cut short. */
  open(error: unknown): void {
    this.#lastError = error;
    if (this.#state === 'open' || this.#closed) return;
    const wasClosed = this.#state === 'closed';
    this.#state = 'open';
    if (wasClosed) {
      this.#openedAt = Date.now();
      this.#opened?.inc();
    }
    const reason = new LocksDownError('*', this.#openedAt, error);
    for (const ac of this.#inflight) ac.abort(reason);
    this.#inflight.clear();
    this.#scheduleProbe();
  }

  /** Throws LocksDownError unless the breaker is closed. */
  check(key: string): void {
    if (this.#state === 'closed') return;
    this.#fastFailures?.inc();
    throw new LocksDownError(key, this.#openedAt, this.#lastError);
  }

  /** Pings the backend within pingTimeoutMs; a failure opens the breaker, an answer while open closes it. */
  async ping(): Promise<void> {
    try {
      await withTimeout(this.#ping(), this.#opts.pingTimeoutMs);
    } catch (err) {
      this.open(err);
      throw err;
    }
    if (this.#state !== 'closed') this.#close();
  }

  /** Registers an acquisition: its controller is aborted when the breaker opens. */
  track(ac: AbortController): () => void {
    this.#inflight.add(ac);
    return () => this.#inflight.delete(ac);
  }

  /** Stops probing (the service is closing). */
  stop(): void {
    this.#closed = true;
    clearTimeout(this.#probe);
  }

  /** Counts a lock event that reports a backend failure. */
  onEvent(e: LockEvent): void {
    if (e.type === 'backendError') this.failure(e.error);
    else if ((e.type === 'renewFailed' || e.type === 'releaseFailed') && isBackendFailure(e.error)) this.failure(e.error);
  }

  #close(): void {
    this.#state = 'closed';
    this.#failures = 0;
    clearTimeout(this.#probe);
    this.#probe = undefined;
  }

  #scheduleProbe(): void {
    clearTimeout(this.#probe);
    if (this.#closed) return;
    this.#probe = setTimeout(() => {
      this.#probe = undefined;
      if (this.#state !== 'open' || this.#closed) return;
      this.#state = 'half-open';
      this.ping().catch(() => undefined);
    }, this.#opts.probeIntervalMs);
    this.#probe.unref();
  }
}

/** The provider behind the breaker: fails fast while it is open, and cuts short the acquisitions
 * that are waiting when it opens. A release while the backend is down is left to run in the
 * background (the lease's TTL frees the lock anyway). */
export function breakerProvider(p: LockProvider, breaker: LockBreaker): LockProvider {
  const acquire = async (key: string, o: AcquireOptions | undefined, once: boolean): Promise<Lease | null> => {
    breaker.check(key);
    const caller = o?.signal;
    const ac = new AbortController();
    const forward = () => ac.abort(caller?.reason);
    if (caller?.aborted) forward();
    else caller?.addEventListener('abort', forward, { once: true });
    const untrack = breaker.track(ac);
    try {
      const opts = { ...o, signal: ac.signal };
      const lease = once ? await p.tryAcquire(key, opts) : await p.acquire(key, opts);
      breaker.success();
      return lease;
    } catch (err) {
      const reason: unknown = ac.signal.reason;
      if (err instanceof LockAbortedError && reason instanceof LocksDownError && !caller?.aborted) throw new LocksDownError(key, reason.since, reason.cause);
      if (err instanceof LockBackendError) breaker.failure(err);
      throw err;
    } finally {
      untrack();
      caller?.removeEventListener('abort', forward);
    }
  };
  return {
    get backend() {
      return p.backend;
    },
    acquire: async (key, o) => (await acquire(key, o, false))!,
    tryAcquire: (key, o) => acquire(key, o, true),
    using: async <T>(key: string, o: AcquireOptions | undefined, fn: UsingCallback<T>): Promise<T> => {
      const lease = (await acquire(key, { ...o, autoExtend: true }, false))!;
      try {
        return await fn(lease.signal, lease);
      } finally {
        const released = lease.release().catch((err: unknown) => {
          if (isBackendFailure(err)) breaker.failure(err);
        });
        if (breaker.state === 'closed') await released;
      }
    },
    adopt: async (key, o) => {
      breaker.check(key);
      try {
        const lease = await p.adopt(key, o);
        breaker.success();
        return lease;
      } catch (err) {
        if (err instanceof LockBackendError) breaker.failure(err);
        throw err;
      }
    },
    close: () => {
      breaker.stop();
      return p.close();
    },
  };
}

function isBackendFailure(err: unknown): boolean {
  return !(err instanceof NotOwnerError || err instanceof LockLostError);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.message;
  return value === undefined ? 'none' : String(value);
}
