// The Idempotency-Key protocol (IETF draft), independent of what the request does: take the key
// (or replay, refuse a reused key, report one in progress), run the work, store its answer
// under the key — inside the work's own transaction when it makes an effect, outside when it
// was refused — and give the key back after a failure that changed nothing. Claims use it with
// the campaign id as scope; payouts reuse it unchanged with their own scope. Keys past their
// retention are deleted by KeyPurgeScheduler (one instance at a time) or `allot keys purge`.
import { AllotError, errorBody, TransientConflictError } from '../core/errors.ts';
import type { StoredResponse } from '../core/idempotency.ts';
import type { IdempotencyStore, IdempotencyTx } from '../ports/idempotency-store.ts';
import type { Clock, IdSource } from '../ports/clock.ts';
import type { RandomSource } from '../ports/random.ts';
import { KeyExistsError, type PendingKey } from '../ports/claim-strategy.ts';

export interface Answer extends StoredResponse {
  /** a stored answer, replayed for a repeated key */
  replayed: boolean;
}

/** Handed to the work: how to store its answer inside its own transaction. */
export interface IdempotencyScope {
  readonly key: string | null;
  /** Stores `response` under the key in `tx` (no-op without a key). The work must then return
   * this same response object, so the protocol knows it is already stored. */
  completeIn(tx: IdempotencyTx, response: StoredResponse, ref: string | null): Promise<void>;
  /** With `deferBegin`: the key, not taken yet, for the work's store to insert in the effect's
   * own transaction (see PendingKey). The work throws KeyExistsError when it was already there. */
  readonly pending?: PendingKey;
}

export interface RunOptions {
  /** The work's store inserts the key in its own transaction (a strategy that `takesKeys`): no
   * separate statement takes the key first. A key already present (KeyExistsError) is then
   * decided the usual way; a work that answered without reaching its store takes the key after. */
  deferBegin?: boolean;
}

export type Protocolled<T> = { kind: 'answer'; answer: Answer; value: T | null } | { kind: 'refused'; code: 'IDEMPOTENCY_KEY_REUSED' | 'IDEMPOTENCY_IN_PROGRESS'; answer: Answer };

export interface IdempotencyOptions {
  /** how long a request owns its key before a retry may take it over */
  leaseMs?: number;
  /** attempts of one key statement that the database rolled back (deadlock, serialization) */
  statementAttempts?: number;
}

export class IdempotencyProtocol {
  private readonly leaseMs: number;
  private readonly attempts: number;

  constructor(
    private readonly store: IdempotencyStore,
    private readonly clock: Clock,
    private readonly ids: IdSource,
    private readonly random: RandomSource,
    opts: IdempotencyOptions = {},
  ) {
    this.leaseMs = opts.leaseMs ?? 10_000;
    this.attempts = opts.statementAttempts ?? 5;
  }

  /**
   * Runs `work` at most once per (scope, key) with the same fingerprint. `work` returns the
   * response to give (and to store) plus a value for the caller; it throws for failures, which
   * are not stored: the key is given back unless the error says the outcome is unknown.
   */
  async run<T>(
    scope: string,
    key: string | null,
    fingerprint: string,
    work: (s: IdempotencyScope) => Promise<{ response: StoredResponse; value: T }>,
    opts: RunOptions = {},
  ): Promise<Protocolled<T>> {
    if (key === null) {
      const { response, value } = await work({ key: null, completeIn: async () => undefined });
      return { kind: 'answer', answer: { ...response, replayed: false }, value };
    }
    const owner = this.ids.next('req_');
    if (opts.deferBegin) {
      const pending: PendingKey = { scope, key, fingerprint, owner, nowMs: this.clock.now(), leaseMs: this.leaseMs, result: 'pending' };
      try {
        return await this.runOwned(scope, key, fingerprint, owner, work, pending);
      } catch (err) {
        // Another request has the key (this one changed nothing): a replay, a key in progress or
        // a reused key, decided as if it had been taken first.
        if (err instanceof KeyExistsError) return this.run(scope, key, fingerprint, work);
        throw err;
      }
    }
    const begun = await this.begin(scope, key, fingerprint, owner);
    if (begun !== null) return begun;
    return this.runOwned(scope, key, fingerprint, owner, work, null);
  }

  /** Takes the key for `owner`; null when taken, else the answer (a replay or a refusal). */
  private async begin(scope: string, key: string, fingerprint: string, owner: string): Promise<Protocolled<never> | null> {
    const begun = await this.statement(() => this.store.begin(scope, key, fingerprint, owner, this.clock.now(), this.leaseMs));
    if (begun.state === 'mismatch') return refused('IDEMPOTENCY_KEY_REUSED');
    if (begun.state === 'busy') return refused('IDEMPOTENCY_IN_PROGRESS');
    if (begun.state === 'done' && begun.response) return { kind: 'answer', answer: { ...begun.response, replayed: true }, value: null };
    return null;
  }

  /** Runs the work for `owner` (which holds the key, or will insert it itself: `pending`). */
  private async runOwned<T>(
    scope: string,
    key: string,
    fingerprint: string,
    owner: string,
    work: (s: IdempotencyScope) => Promise<{ response: StoredResponse; value: T }>,
    pending: PendingKey | null,
  ): Promise<Protocolled<T>> {
    let storedInTx: StoredResponse | null = null;
    let result: { response: StoredResponse; value: T };
    try {
      result = await work({
        key,
        completeIn: async (tx, response, ref) => {
          await tx.completeIdempotency(scope, key, owner, response, ref);
          storedInTx = response;
        },
        ...(pending ? { pending } : {}),
      });
    } catch (err) {
      if (err instanceof KeyExistsError) throw err;
      // Our lease ran out and a retry took the key over: our transaction rolled back, the retry
      // decides the outcome, and the key is no longer ours to touch.
      if (err instanceof AllotError && err.code === 'IDEMPOTENCY_IN_PROGRESS') return refused('IDEMPOTENCY_IN_PROGRESS');
      // Nothing was changed (or, for an unknown commit outcome, the key settles it later): give
      // the key back so a retry runs at once, unless the outcome is unknown. (A pending key no
      // store took has nothing to give back.)
      const unknown = err instanceof AllotError && err.details?.outcome === 'unknown';
      if (!unknown && pending?.result !== 'pending') await this.store.abandon(scope, key, owner).catch(() => undefined);
      throw err;
    }
    if (storedInTx !== result.response || pending?.result === 'pending') {
      // The work answered without its store taking the key (a refusal decided before the
      // store, say): take it now; if another request has it meanwhile, its answer stands.
      if (pending?.result === 'pending') {
        const begun = await this.begin(scope, key, fingerprint, owner);
        if (begun !== null) return begun;
      }
      try {
        await this.statement(() => this.store.complete(scope, key, owner, result.response, null));
      } catch (err) {
        if (err instanceof AllotError && err.code === 'IDEMPOTENCY_IN_PROGRESS') return refused('IDEMPOTENCY_IN_PROGRESS');
        // The refusal stands but could not be stored: give the key back rather than leave a
        // retry to meet a different answer later; the work changed nothing.
        await this.store.abandon(scope, key, owner).catch(() => undefined);
        throw err;
      }
    }
    return { kind: 'answer', answer: { ...result.response, replayed: false }, value: result.value };
  }

  /** One key statement, retried when the database rolled it back for a reason a retry cures. */
  private async statement<R>(fn: () => Promise<R>): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof TransientConflictError)) throw err;
        if (attempt >= this.attempts) {
          throw new AllotError('UNAVAILABLE', 'The Idempotency-Key record kept conflicting with other requests; nothing was issued. Retry with the same key.', { outcome: 'nothing-issued' }, { cause: err });
        }
        await new Promise((r) => setTimeout(r, this.random.next() * 5 * attempt));
      }
    }
  }
}

function refused(code: 'IDEMPOTENCY_KEY_REUSED' | 'IDEMPOTENCY_IN_PROGRESS'): Protocolled<never> {
  return { kind: 'refused', code, answer: { status: new AllotError(code).status, body: errorBody(code), replayed: false } };
}

// ---- the scheduled purge --------------------------------------------------------------------

/** Who may purge now: one holder at a time across every instance (SqlLease in allot_leases). */
export interface PurgeLease {
  /** Takes the lease until `untilMs` if it is free at `nowMs`; true when taken. */
  take(holder: string, nowMs: number, untilMs: number): Promise<boolean>;
  /** Moves the end of `holder`'s lease; false when it is no longer `holder`'s. */
  extend(holder: string, untilMs: number): Promise<boolean>;
}

export interface KeyPurgeOptions {
  /** How often an instance tries to purge; across instances a purge is due one interval after
   * the last one started (the lease records it). 0: never. */
  intervalMs: number;
  /** Keys created longer ago than this are purged (the API promises at least 24 h). */
  retentionMs: number;
  /** Keys deleted per statement (default 1000): one short statement at a time, so claims are
   * never held up behind a long delete (PGlite has one connection for everything). */
  batchSize?: number;
  /** Pause between two batches (default 20 ms). */
  pauseMs?: number;
  /** How long a purge holds the lease before it must extend it (default 60 s): if its instance
   * dies mid-purge, another takes over after this long. */
  leaseMs?: number;
  /** Delay of the first attempt after start (default the interval, at most 60 s). */
  firstRunMs?: number;
}

export interface KeyPurgeRun {
  holder: string;
  startedAt: number;
  finishedAt: number;
  deleted: number;
  /** the lease was lost mid-purge (it ran longer than leaseMs without extending it) */
  lostLease: boolean;
}

export interface KeyPurgeEvents {
  /** This instance took the lease and starts purging. */
  onStart?: (holder: string) => void;
  /** A purge ran on this instance (deleted may be 0); called before the lease is handed on. */
  onRun?: (run: KeyPurgeRun) => void;
  /** A purge attempt failed (the database was unreachable, say); the next interval retries. */
  onError?: (err: unknown) => void;
}

/**
 * Deletes idempotency keys past their retention, in the background: every `intervalMs` each
 * instance tries to take the purge lease, and the one that gets it deletes expired keys in
 * short batches, extending the lease between batches. Its timers never keep the process alive;
 * close() stops them and waits for a purge in progress to finish its batch.
 */
export class KeyPurgeScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<KeyPurgeRun | null> | null = null;
  private closed = false;
  private readonly batchSize: number;
  private readonly pauseMs: number;
  private readonly leaseMs: number;

  constructor(
    private readonly store: Pick<IdempotencyStore, 'purge'>,
    private readonly lease: PurgeLease,
    private readonly clock: Clock,
    private readonly ids: IdSource,
    private readonly opts: KeyPurgeOptions,
    private readonly events: KeyPurgeEvents = {},
  ) {
    this.batchSize = opts.batchSize ?? 1000;
    this.pauseMs = opts.pauseMs ?? 20;
    this.leaseMs = opts.leaseMs ?? 60_000;
  }

  start(): void {
    if (this.opts.intervalMs <= 0 || this.timer !== null || this.closed) return;
    this.schedule(this.opts.firstRunMs ?? Math.min(this.opts.intervalMs, 60_000));
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runOnce()
        .catch((err: unknown) => this.events.onError?.(err))
        .finally(() => this.schedule(this.opts.intervalMs));
    }, delayMs);
    this.timer.unref();
  }

  /** One attempt: purges when this instance gets the lease; null when another holds it (or
   * the purge is not due yet). */
  runOnce(): Promise<KeyPurgeRun | null> {
    this.running ??= this.purge().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async purge(): Promise<KeyPurgeRun | null> {
    const holder = this.ids.next('purge_');
    const startedAt = this.clock.now();
    if (!(await this.lease.take(holder, startedAt, startedAt + this.leaseMs))) return null;
    this.events.onStart?.(holder);
    let deleted = 0;
    let lostLease = false;
    // A failure leaves the lease to run out: another instance (or the next interval) retries.
    while (!this.closed) {
      const now = this.clock.now();
      const n = await this.store.purge(now - this.opts.retentionMs, now, this.batchSize);
      deleted += n;
      if (n < this.batchSize) break;
      if (this.pauseMs > 0) await new Promise((r) => setTimeout(r, this.pauseMs));
      if (!(await this.lease.extend(holder, this.clock.now() + this.leaseMs))) {
        lostLease = true;
        break;
      }
    }
    const run = { holder, startedAt, finishedAt: this.clock.now(), deleted, lostLease };
    this.events.onRun?.(run);
    // Hand the lease on: the next purge is due one interval after this one started, on
    // whichever instance tries first.
    if (!lostLease) await this.lease.extend(holder, startedAt + this.opts.intervalMs).catch(() => undefined);
    return run;
  }

  /** Stops the timer; a purge in progress stops after its current batch. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }
}
