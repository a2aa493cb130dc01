// The generic LockProvider over any LockBackend: waiting (pub/sub latch or jittered backoff,
// each wait bounded by the holder's remaining TTL), waiter-queue leases, validity, metrics.
import { randomBytes } from 'node:crypto';
import { LockAbortedError, LockBackendError, LockError, LockTimeoutError, LockValidityError } from './errors.ts';
import { DEFAULT_LOCK_OPTIONS, driftMs, resolveOptions, type AcquireOptions, type LockDefaults, type ResolvedAcquireOptions } from './options.ts';
import { LeaseState, type LeaseContext } from './lease.ts';
import { NOOP_LOCK_METRICS, type LockMetrics } from './metrics.ts';
import { DeadlineSweeper, WakeLatch, jitteredBackoffMs, sleep } from './wait.ts';
import type { AttemptResult, Lease, LockBackend, LockEvent, LockEventHook, LockProvider, UsingCallback, WakeSubscription } from './types.ts';

const MIN_ATTEMPT_BUDGET_MS = 1_000;

export interface LockProviderOptions {
  defaults?: Partial<LockDefaults>;
  metrics?: LockMetrics;
  onEvent?: LockEventHook;
  /** wall clock in ms; injectable for tests */
  now?: () => number;
  /** disable pub/sub wake-ups and poll with jittered backoff (also the automatic fallback) */
  pubsub?: boolean;
  /** test hook: runs after a successful backend attempt, before the validity check */
  afterAttempt?: (key: string) => Promise<void> | void;
}

export class BackendLockProvider implements LockProvider {
  readonly backend: string;
  readonly #be: LockBackend;
  readonly #defaults: LockDefaults;
  readonly #metrics: LockMetrics;
  readonly #onEvent: LockEventHook | undefined;
  readonly #now: () => number;
  readonly #pubsub: boolean;
  readonly #afterAttempt: LockProviderOptions['afterAttempt'];
  readonly #ctx: LeaseContext;
  readonly #idPrefix = randomBytes(8).toString('hex');
  readonly #releasedAt = new Map<string, number>();
  readonly #deadlines = new DeadlineSweeper();
  #seq = 0;

  constructor(backend: LockBackend, opts: LockProviderOptions = {}) {
    this.#be = backend;
    this.backend = backend.name;
    this.#defaults = { ...DEFAULT_LOCK_OPTIONS, ...opts.defaults };
    this.#metrics = opts.metrics ?? NOOP_LOCK_METRICS;
    this.#onEvent = opts.onEvent;
    this.#now = opts.now ?? Date.now;
    this.#pubsub = opts.pubsub ?? true;
    this.#afterAttempt = opts.afterAttempt;
    this.#ctx = {
      backend,
      metrics: this.#metrics,
      emit: (e) => this.#emit(e),
      now: this.#now,
      drift: (ttl) => driftMs(ttl, this.#defaults),
      onReleased: (key) => {
        this.#releasedAt.set(key, performance.now());
        if (this.#releasedAt.size > 10_000) this.#releasedAt.clear();
      },
    };
  }

  async acquire(key: string, opts?: AcquireOptions): Promise<Lease> {
    const o = resolveOptions(this.#defaults, opts);
    return (await this.#acquire(key, o, true)) as Lease;
  }

  async tryAcquire(key: string, opts?: AcquireOptions): Promise<Lease | null> {
    const o = resolveOptions(this.#defaults, opts);
    return this.#acquire(key, { ...o, timeoutMs: 0 }, false);
  }

  async using<T>(key: string, opts: AcquireOptions | undefined, fn: UsingCallback<T>): Promise<T> {
    const lease = await this.acquire(key, { ...opts, autoExtend: true });
    try {
      return await fn(lease.signal, lease);
    } finally {
      try {
        await lease.release();
      } catch (error) {
        // The callback's outcome stands; a failed release is reported, the TTL frees the lock.
        this.#emit({ type: 'releaseFailed', key, ownerId: lease.ownerId, error });
      }
    }
  }

  close(): Promise<void> {
    return this.#be.close();
  }

  #emit(e: LockEvent): void {
    try {
      this.#onEvent?.(e);
    } catch {
      // a throwing hook must never break the lock machinery
    }
  }

  #newOwnerId(): string {
    return `${this.#idPrefix}:${(++this.#seq).toString(36)}`;
  }

  async #acquire(key: string, o: ResolvedAcquireOptions, throwOnTimeout: boolean): Promise<Lease | null> {
    const signal = o.signal;
    if (signal?.aborted) throw new LockAbortedError(key, signal.reason);
    const started = this.#now();
    const deadline = started + o.timeoutMs;
    const ownerId = this.#newOwnerId();
    let attempts = 0;
    let waitedMs = 0;
    let latch: WakeLatch | undefined;
    let sub: WakeSubscription | undefined;
    let subscribeFailed = !this.#pubsub;
    let refresher: NodeJS.Timeout | undefined;
    let queued = false;
    let backendFailures = 0;
    try {
      while (true) {
        latch?.arm();
        const attemptStart = this.#now();
        const mayBeQueued = queued;
        queued = true;
        // A hung backend must not hold the caller past its deadline (at least a short budget,
        // so tryAcquire still gets one real attempt).
        const budget = Math.max(deadline - attemptStart, Math.min(o.ttlMs - driftMs(o.ttlMs, o), MIN_ATTEMPT_BUDGET_MS));
        let r: AttemptResult;
        try {
          r = await this.#boundedAttempt(key, ownerId, o, budget, mayBeQueued);
        } catch (error) {
          // Transient backend failures (connection lost, Redis restarting) are retried with
          // backoff until the deadline; the last one is what the caller sees.
          const left = deadline - this.#now();
          if (!(error instanceof LockBackendError) || left <= 0) throw error;
          this.#emit({ type: 'backendError', error });
          await this.#pause(key, Math.min(left, jitteredBackoffMs(++backendFailures, o.retryBaseDelayMs * 4, o.retryMaxDelayMs)), signal);
          continue;
        }
        attempts++;
        if (r.acquired) {
          queued = false;
          return await this.#grant(key, ownerId, r.fence, o, attemptStart, started, waitedMs, attempts);
        }
        if (signal?.aborted) throw new LockAbortedError(key, signal.reason);
        if (this.#now() >= deadline) {
          this.#metrics.timedOut?.({ backend: this.backend, key });
          if (!throwOnTimeout) return null;
          throw new LockTimeoutError(key, o.timeoutMs, attempts);
        }
        if (!refresher) refresher = this.#startWaiterRefresh(key, ownerId, o.waiterTtlMs);
        if (!sub && !subscribeFailed) {
          // Subscribe, then retry at once: a release between the failed attempt and the
          // subscription would otherwise go unnoticed until the holder's TTL ran out.
          const l = new WakeLatch();
          try {
            sub = await this.#be.subscribe(key, (payload) => {
              // Wake-ups name the queue's head (and its lease, in ms): only the head retries, the
              // others shorten their wait to that lease, so a dead head costs at most one lease.
              const sp = payload.indexOf(' ');
              const target = sp < 0 ? payload : payload.slice(0, sp);
              if (target === '*' || target === ownerId) l.signal();
              else l.limit(Number(payload.slice(sp + 1)) || o.waiterTtlMs);
            });
            latch = l;
            continue;
          } catch (error) {
            subscribeFailed = true;
            this.#emit({ type: 'waitFallback', key, error });
          }
        }
        const bound = Math.max(1, Math.min(r.retryAfterMs, deadline - this.#now()));
        const t0 = this.#now();
        if (latch) {
          try {
            await latch.wait(bound, signal);
          } catch {
            throw new LockAbortedError(key, signal?.reason);
          }
        } else await this.#pause(key, Math.min(bound, jitteredBackoffMs(attempts, o.retryBaseDelayMs, o.retryMaxDelayMs)), signal);
        waitedMs += this.#now() - t0;
      }
    } finally {
      clearInterval(refresher);
      sub?.close();
      if (queued) this.#be.leaveQueue(key, ownerId).catch((error: unknown) => this.#emit({ type: 'backendError', error }));
    }
  }

  async #pause(key: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await sleep(ms, signal);
    } catch {
      throw new LockAbortedError(key, signal?.reason);
    }
  }

  #boundedAttempt(key: string, ownerId: string, o: ResolvedAcquireOptions, budgetMs: number, queued: boolean): Promise<AttemptResult> {
    const signal = o.signal;
    const pending = this.#be.attempt({ key, ownerId, ttlMs: o.ttlMs, fair: o.fair, waiterTtlMs: o.waiterTtlMs, queued, signal });
    // One promise per attempt and no timer (this is the hot path; a shared sweeper watches the
    // budgets): settles with the reply, or rejects at the budget / on abort while the late
    // reply is cleaned up in the background.
    return new Promise<AttemptResult>((resolve, reject) => {
      let settled = false;
      const giveUp = (error: LockError) => {
        if (settled) return;
        settled = true;
        this.#deadlines.remove(deadline);
        signal?.removeEventListener('abort', onAbort);
        // Whatever the late reply turns out to be, do not leave an orphaned lock behind.
        pending.then(
          (r) => (r.acquired ? this.#be.release(key, ownerId) : undefined),
          () => undefined,
        ).catch((e: unknown) => this.#emit({ type: 'backendError', error: e }));
        reject(error);
      };
      const onAbort = () => giveUp(new LockAbortedError(key, signal?.reason));
      const deadline = this.#deadlines.add(budgetMs, () => giveUp(new LockBackendError(key, 'acquire', new Error(`no reply within ${budgetMs} ms`))));
      signal?.addEventListener('abort', onAbort, { once: true });
      pending.then(
        (r) => {
          if (settled) return;
          settled = true;
          this.#deadlines.remove(deadline);
          signal?.removeEventListener('abort', onAbort);
          resolve(r);
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          this.#deadlines.remove(deadline);
          signal?.removeEventListener('abort', onAbort);
          reject(error instanceof LockError ? error : new LockBackendError(key, 'acquire', error));
        },
      );
    });
  }

  async #grant(key: string, ownerId: string, fence: bigint, o: ResolvedAcquireOptions, attemptStart: number, started: number, waitedMs: number, attempts: number): Promise<Lease> {
    if (this.#afterAttempt) {
      try {
        await this.#afterAttempt(key);
      } catch {
        // test hook only
      }
    }
    const state = new LeaseState(this.#ctx, key, ownerId, fence, o.ttlMs, attemptStart, o.autoExtend);
    const handle = state.open();
    const elapsed = this.#now() - attemptStart;
    const drift = driftMs(o.ttlMs, o);
    if (elapsed >= o.ttlMs - drift) {
      await handle.release().catch(() => undefined);
      throw new LockValidityError(key, elapsed, o.ttlMs, drift);
    }
    if (o.signal?.aborted) {
      await handle.release().catch(() => undefined);
      throw new LockAbortedError(key, o.signal.reason);
    }
    const end = this.#now();
    this.#metrics.acquired?.({ backend: this.backend, key, latencyMs: end - started, waitMs: waitedMs, attempts, fair: o.fair });
    if (attempts > 1) {
      const releasedAt = this.#releasedAt.get(key);
      if (releasedAt !== undefined) {
        this.#releasedAt.delete(key);
        this.#metrics.handover?.({ backend: this.backend, key, latencyMs: performance.now() - releasedAt });
      }
    }
    return handle;
  }

  #startWaiterRefresh(key: string, ownerId: string, waiterTtlMs: number): NodeJS.Timeout {
    const t = setInterval(() => {
      this.#be.refreshWaiter(key, ownerId, waiterTtlMs).catch((error: unknown) => this.#emit({ type: 'backendError', error }));
    }, Math.max(1, Math.floor(waiterTtlMs / 3)));
    t.unref();
    return t;
  }
}
