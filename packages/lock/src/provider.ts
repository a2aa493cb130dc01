// The generic LockProvider over any LockBackend: waiting (pub/sub latch or jittered backoff,
// each wait bounded by the holder's remaining TTL), waiter-queue leases, validity, metrics.
import { randomBytes } from 'node:crypto';
import { LockAbortedError, LockBackendError, LockError, LockLostError, LockTimeoutError, LockValidityError } from './errors.ts';
import { DEFAULT_LOCK_OPTIONS, checkIdentifier, driftMs, resolveOptions, type AcquireOptions, type AdoptOptions, type LockDefaults, type ResolvedAcquireOptions } from './options.ts';
import { LeaseState, type LeaseContext } from './lease.ts';
import { NOOP_LOCK_METRICS, callHook, guardMetrics, hookErrorReporter, type HookErrorHandler, type LockMetrics } from './metrics.ts';
import { DeadlineSweeper, WakeLatch, jitteredBackoffMs, sleep } from './wait.ts';
import type { AttemptResult, Lease, LockBackend, LockEvent, LockEventHook, LockProvider, UsingCallback, WakeSubscription } from './types.ts';

const MIN_ATTEMPT_BUDGET_MS = 1_000;
/** how long a waiter that gives up waits for its leaveQueue before its acquire settles */
const LEAVE_QUEUE_WAIT_MS = 1_000;

export interface LockProviderOptions {
  defaults?: Partial<LockDefaults>;
  metrics?: LockMetrics;
  onEvent?: LockEventHook;
  /** told the first time each hook (a metrics method or onEvent) throws or rejects; later failures
   * of that hook are dropped. Default: a process warning (code ALLOT_LOCK_HOOK_FAILED). A failing
   * hook never affects the lock operation that called it. */
  onHookError?: HookErrorHandler;
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
  readonly #hookError: HookErrorHandler;
  readonly #now: () => number;
  readonly #pubsub: boolean;
  readonly #afterAttempt: LockProviderOptions['afterAttempt'];
  readonly #ctx: LeaseContext;
  readonly #idPrefix = randomBytes(8).toString('hex');
  readonly #releasedAt = new Map<string, number>();
  readonly #deadlines = new DeadlineSweeper();
  /** the resolved (and validated) defaults, shared by every call that passes no options; never mutated */
  #resolvedDefaults: ResolvedAcquireOptions | undefined;
  #seq = 0;

  constructor(backend: LockBackend, opts: LockProviderOptions = {}) {
    this.#be = backend;
    this.backend = backend.name;
    this.#defaults = { ...DEFAULT_LOCK_OPTIONS, ...opts.defaults };
    this.#hookError = hookErrorReporter(opts.onHookError);
    this.#metrics = guardMetrics(opts.metrics ?? NOOP_LOCK_METRICS, this.#hookError);
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
      // Handover timing is only kept when someone listens for it.
      onReleased: this.#metrics.handover
        ? (key, released = true) => {
            if (!released) {
              this.#releasedAt.delete(key);
              return;
            }
            this.#releasedAt.set(key, performance.now());
            if (this.#releasedAt.size > 10_000) this.#releasedAt.clear();
          }
        : undefined,
    };
  }

  #options(opts: AcquireOptions | undefined): ResolvedAcquireOptions {
    return opts ? resolveOptions(this.#defaults, opts) : (this.#resolvedDefaults ??= resolveOptions(this.#defaults, undefined));
  }

  async acquire(key: string, opts?: AcquireOptions): Promise<Lease> {
    return (await this.#acquire(key, this.#options(opts), true)) as Lease;
  }

  async tryAcquire(key: string, opts?: AcquireOptions): Promise<Lease | null> {
    return this.#acquire(key, { ...this.#options(opts), timeoutMs: 0 }, false);
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

  async adopt(key: string, opts: AdoptOptions): Promise<Lease> {
    const { identifier } = opts;
    checkIdentifier(identifier);
    const o = this.#options({ ttlMs: opts.ttlMs, autoExtend: opts.autoExtend, renewIntervalMs: opts.renewIntervalMs, signal: opts.signal, identifier });
    if (o.signal?.aborted) throw new LockAbortedError(key, o.signal.reason);
    const started = this.#now();
    // Prove the identifier holds the lock (and renew it), then read that holding's fence: an
    // attempt by the holder returns its own fence. Should the lock have lapsed in between, that
    // attempt is a fresh acquisition with a new, higher fence: still correctly fenced.
    const renewed = await this.#call(key, 'adopt', () => this.#be.extend(key, identifier, o.ttlMs));
    if (renewed !== 'extended') throw new LockLostError(key, `cannot adopt: ${renewed === 'notOwner' ? 'held by another owner' : 'not held'} (identifier ${identifier})`);
    const r = await this.#call(key, 'adopt', () => this.#be.attempt({ key, ownerId: identifier, ttlMs: o.ttlMs, fair: false, waiterTtlMs: o.waiterTtlMs, queued: true, expectFence: opts.fence, signal: o.signal }));
    if (!r.acquired) {
      // it lapsed and another owner took it; the attempt may have queued us
      this.#be.leaveQueue(key, identifier).catch((error: unknown) => this.#emit({ type: 'backendError', error }));
      throw new LockLostError(key, `cannot adopt: held by another owner (identifier ${identifier})`);
    }
    if (opts.fence !== undefined && r.fence !== opts.fence) {
      // Held under this identifier, but by another acquisition than the one we were handed.
      throw new LockLostError(key, `cannot adopt: the lock held under identifier ${identifier} has fence ${r.fence}, not ${opts.fence}`);
    }
    const handle = new LeaseState(this.#ctx, key, identifier, r.fence, o.ttlMs, started, o.autoExtend, o.renewIntervalMs).open();
    const refused = this.#refusal(key, o, started);
    if (refused) {
      await handle.release().catch(() => undefined);
      throw refused;
    }
    return handle;
  }

  /** One backend call outside the acquire loop: errors become LockBackendError. */
  async #call<T>(key: string, operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw error instanceof LockError ? error : new LockBackendError(key, operation, error);
    }
  }

  close(): Promise<void> {
    return this.#be.close();
  }

  #emit(e: LockEvent): void {
    // a failing hook must never break the lock machinery
    const hook = this.#onEvent;
    if (hook) callHook('onEvent', () => hook(e), this.#hookError);
  }

  #newOwnerId(): string {
    return `${this.#idPrefix}:${(++this.#seq).toString(36)}`;
  }

  async #acquire(key: string, o: ResolvedAcquireOptions, throwOnTimeout: boolean): Promise<Lease | null> {
    const signal = o.signal;
    if (signal?.aborted) throw new LockAbortedError(key, signal.reason);
    const started = this.#now();
    const deadline = started + o.timeoutMs;
    const ownerId = o.identifier ?? this.#newOwnerId();
    let attempts = 0;
    let waitedMs = 0;
    let latch: WakeLatch | undefined;
    let sub: WakeSubscription | undefined;
    let subscribeFailed = !this.#pubsub;
    let refresher: NodeJS.Timeout | undefined;
    // attempted: an earlier attempt may have queued the caller (or taken the lock, if its reply
    // was lost); queued: the caller may be in the waiter queue and must leave it on exit.
    let attempted = false;
    let queued = false;
    let backendFailures = 0;
    // Direct hand-off (LockBackend.parseHandoff): a release made this waiter the owner and said so
    // in its wake-up. The lease is dated from the local start of the last attempt that queued it
    // plus the backend time that passed between that attempt and the hand-off (less the drift
    // factor): no later than the hand-off itself on this clock.
    const parseHandoff = this.#be.parseHandoff?.bind(this.#be);
    let handed: { fence: bigint; serverMs: number } | undefined;
    let queuedAtLocal = 0;
    let queuedAtServer: number | undefined;
    try {
      while (true) {
        if (handed) {
          queued = false;
          attempts++;
          const start = queuedAtLocal + Math.max(0, handed.serverMs - queuedAtServer!) * (1 - o.driftFactor);
          return await this.#granted(key, ownerId, handed.fence, o, start, started, waitedMs, attempts);
        }
        latch?.arm();
        const attemptStart = this.#now();
        const mayBeQueued = attempted;
        attempted = true;
        queued = true;
        // A hung backend must not hold the caller past its deadline (at least a short budget,
        // so tryAcquire still gets one real attempt).
        const budget = Math.max(deadline - attemptStart, Math.min(o.ttlMs - driftMs(o.ttlMs, o), MIN_ATTEMPT_BUDGET_MS));
        let r: AttemptResult;
        try {
          r = await this.#boundedAttempt(key, ownerId, o, budget, mayBeQueued, latch !== undefined && parseHandoff !== undefined);
        } catch (error) {
          // Transient backend failures (connection lost, Redis restarting) are retried with
          // backoff until the deadline; the last one is what the caller sees. A permanent one
          // (a missing command, no permission: see permanentBackendCause) fails at once.
          const left = deadline - this.#now();
          if (!(error instanceof LockBackendError) || error.permanent || left <= 0) throw error;
          this.#emit({ type: 'backendError', error });
          await this.#pause(key, Math.min(left, jitteredBackoffMs(++backendFailures, o.retryBaseDelayMs * 4, o.retryMaxDelayMs)), signal);
          continue;
        }
        attempts++;
        // The fast path of a first attempt reports that it did not touch the queue.
        if (!r.acquired && r.notQueued && !mayBeQueued) queued = false;
        if (r.acquired) {
          queued = false;
          return await this.#granted(key, ownerId, r.fence, o, attemptStart, started, waitedMs, attempts);
        }
        if (r.serverMs !== undefined && Number.isFinite(r.serverMs)) {
          queuedAtLocal = attemptStart;
          queuedAtServer = r.serverMs;
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
            const onWake = (payload: string) => {
              // Wake-ups name the queue's head (and its lease, in ms): only the head retries, the
              // others shorten their wait to that lease, so a dead head costs at most one lease.
              // A hand-off names the new owner and its ttl: when it is this waiter, it holds the
              // lock (dated through an attempt's backend time; without one, it retries, and the
              // attempt, finding it the holder, returns the same fence).
              const sp = payload.indexOf(' ');
              const target = sp < 0 ? payload : payload.slice(0, sp);
              if (target === '*') return l.signal();
              if (target === ownerId) {
                const h = parseHandoff?.(payload, ownerId);
                if (h && queuedAtServer !== undefined) handed ??= h;
                return l.signal();
              }
              const sp2 = payload.indexOf(' ', sp + 1);
              l.limit(Number(sp2 < 0 ? payload.slice(sp + 1) : payload.slice(sp + 1, sp2)) || o.waiterTtlMs);
            };
            // A backend that can wake this waiter alone (Redis: on this provider's own channel)
            // spares every other waiting process the message.
            sub = await (this.#be.subscribeOwner ? this.#be.subscribeOwner(key, ownerId, onWake) : this.#be.subscribe(key, onWake));
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
      if (queued) await this.#leaveQueue(key, ownerId);
    }
  }

  /**
   * Takes a waiter that gives up out of the queue before its acquire settles, so that a release
   * the caller makes after seeing the timeout (or abort) can no longer hand the lock to it; should
   * one have crossed it, the backend gives the lock back here. Bounded: an unreachable backend
   * delays the caller by at most LEAVE_QUEUE_WAIT_MS (the queue lease then drops the entry).
   */
  async #leaveQueue(key: string, ownerId: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const left = this.#be.leaveQueue(key, ownerId).catch((error: unknown) => this.#emit({ type: 'backendError', error }));
    await Promise.race([left, new Promise<void>((resolve) => (timer = setTimeout(resolve, LEAVE_QUEUE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  async #pause(key: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await sleep(ms, signal);
    } catch {
      throw new LockAbortedError(key, signal?.reason);
    }
  }

  /** A lease for a lock the backend granted (an attempt, or a hand-off), dated from start; given
   * back with LockValidityError when too much of its ttl went by, or LockAbortedError. */
  async #granted(key: string, ownerId: string, fence: bigint, o: ResolvedAcquireOptions, start: number, started: number, waitedMs: number, attempts: number): Promise<Lease> {
    if (this.#afterAttempt) await this.#runAfterAttempt(key);
    const handle = new LeaseState(this.#ctx, key, ownerId, fence, o.ttlMs, start, o.autoExtend, o.renewIntervalMs).open();
    const refused = this.#refusal(key, o, start);
    if (refused) {
      await handle.release().catch(() => undefined);
      throw refused;
    }
    if (this.#metrics.acquired || this.#metrics.handover) this.#recordAcquired(key, o, started, waitedMs, attempts);
    return handle;
  }

  #boundedAttempt(key: string, ownerId: string, o: ResolvedAcquireOptions, budgetMs: number, queued: boolean, handoff: boolean): Promise<AttemptResult> {
    const pending = this.#be.attempt(handoff ? { key, ownerId, ttlMs: o.ttlMs, fair: o.fair, waiterTtlMs: o.waiterTtlMs, queued, handoff, signal: o.signal } : { key, ownerId, ttlMs: o.ttlMs, fair: o.fair, waiterTtlMs: o.waiterTtlMs, queued, signal: o.signal });
    // One promise and one small object per attempt, no timer and no closures (this is the hot
    // path; a shared sweeper watches the budgets): settles with the reply, or rejects at the
    // budget / on abort while the late reply is cleaned up in the background.
    return new Promise<AttemptResult>((resolve, reject) => {
      new BoundedAttempt(this.#be, this.#deadlines, this.#ctx.emit, key, ownerId, o.signal, budgetMs, pending, resolve, reject);
    });
  }

  async #runAfterAttempt(key: string): Promise<void> {
    try {
      await this.#afterAttempt?.(key);
    } catch {
      // test hook only
    }
  }

  /** Why a lease that was just granted must be given back, if it must. */
  #refusal(key: string, o: ResolvedAcquireOptions, attemptStart: number): LockError | undefined {
    const elapsed = this.#now() - attemptStart;
    const drift = driftMs(o.ttlMs, o);
    if (elapsed >= o.ttlMs - drift) return new LockValidityError(key, elapsed, o.ttlMs, drift);
    if (o.signal?.aborted) return new LockAbortedError(key, o.signal.reason);
    return undefined;
  }

  #recordAcquired(key: string, o: ResolvedAcquireOptions, started: number, waitedMs: number, attempts: number): void {
    const end = this.#now();
    this.#metrics.acquired?.({ backend: this.backend, key, latencyMs: end - started, waitMs: waitedMs, attempts, fair: o.fair });
    if (attempts > 1) {
      const releasedAt = this.#releasedAt.get(key);
      if (releasedAt !== undefined) {
        this.#releasedAt.delete(key);
        this.#metrics.handover?.({ backend: this.backend, key, latencyMs: performance.now() - releasedAt });
      }
    }
  }

  #startWaiterRefresh(key: string, ownerId: string, waiterTtlMs: number): NodeJS.Timeout {
    const t = setInterval(() => {
      this.#be.refreshWaiter(key, ownerId, waiterTtlMs).catch((error: unknown) => this.#emit({ type: 'backendError', error }));
    }, Math.max(1, Math.floor(waiterTtlMs / 3)));
    t.unref();
    return t;
  }
}

/**
 * One in-flight attempt raced against its budget (a DeadlineSweeper item) and the caller's
 * signal (an EventListener object): whichever comes first settles it.
 */
class BoundedAttempt {
  readonly at: number;
  #settled = false;

  constructor(
    readonly be: LockBackend,
    readonly deadlines: DeadlineSweeper,
    readonly emit: (e: LockEvent) => void,
    readonly key: string,
    readonly ownerId: string,
    readonly signal: AbortSignal | undefined,
    readonly budgetMs: number,
    readonly pending: Promise<AttemptResult>,
    readonly resolve: (r: AttemptResult) => void,
    readonly reject: (e: unknown) => void,
  ) {
    this.at = performance.now() + budgetMs;
    deadlines.add(this);
    signal?.addEventListener('abort', this, { once: true });
    pending.then(
      (r) => this.#settle(r, undefined),
      (error: unknown) => this.#settle(undefined, error instanceof LockError ? error : new LockBackendError(key, 'acquire', error)),
    );
  }

  #settle(r: AttemptResult | undefined, error: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.deadlines.remove(this);
    this.signal?.removeEventListener('abort', this);
    if (r) this.resolve(r);
    else this.reject(error);
  }

  #giveUp(error: LockError): void {
    if (this.#settled) return;
    this.#settle(undefined, error);
    // Whatever the late reply turns out to be, do not leave an orphaned lock behind.
    this.pending
      .then(
        (r) => (r.acquired ? this.be.release(this.key, this.ownerId) : undefined),
        () => undefined,
      )
      .catch((e: unknown) => this.emit({ type: 'backendError', error: e }));
  }

  /** the sweeper: the budget ran out */
  fire(): void {
    this.#giveUp(new LockBackendError(this.key, 'acquire', new Error(`no reply within ${this.budgetMs} ms`)));
  }

  /** the caller's signal aborted */
  handleEvent(): void {
    this.#giveUp(new LockAbortedError(this.key, this.signal?.reason));
  }
}
