// One acquisition (LeaseState) and the handles on it (LeaseHandle): expiry tracking, the
// renewal watchdog, loss signalling and reference-counted release for opt-in reentrancy.
import { LockBackendError, LockLostError } from './errors.ts';
import type { ExtendResult, Lease, LockBackend, LockEvent, ReleaseResult } from './types.ts';
import type { LockMetrics } from './metrics.ts';

export interface LeaseContext {
  backend: LockBackend;
  metrics: LockMetrics;
  emit: (e: LockEvent) => void;
  now: () => number;
  drift: (ttlMs: number) => number;
  /** set when someone measures handovers: called when release() starts (a handover is timed from
   * there, and a waiter may take the lock before the release call returns, e.g. Redlock, which
   * answers once every node did), and again with released false when the lock was not ours */
  onReleased: ((key: string, released?: boolean) => void) | undefined;
}

export class LeaseState {
  // The AbortController and the expiry timer are created lazily (first read of `signal`, or
  // the watchdog): most short critical sections never look, and they cost on the hot path.
  #controller: AbortController | undefined;
  #lost: LockLostError | undefined;
  expiresAt: number;
  #handles = 0;
  #releasing: Promise<void> | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #done = false;
  #renewing: boolean;
  readonly #renewEveryMs: number;

  constructor(
    readonly ctx: LeaseContext,
    readonly key: string,
    readonly ownerId: string,
    readonly fence: bigint,
    readonly ttlMs: number,
    startedAt: number,
    readonly autoExtend: boolean,
    /** the watchdog's interval; default ttlMs / 3 */
    renewIntervalMs?: number,
  ) {
    this.expiresAt = startedAt + ttlMs - ctx.drift(ttlMs);
    this.#renewEveryMs = renewIntervalMs ?? Math.max(1, Math.floor(ttlMs / 3));
    this.#renewing = autoExtend;
    if (autoExtend) {
      this.#armExpiry();
      this.#scheduleRenew(this.#renewEveryMs);
    }
  }

  /** Stops the watchdog; the lease stays, and is lost at expiresAt unless extended by hand. */
  stopRenewal(): void {
    this.#renewing = false;
    clearTimeout(this.#renewTimer);
    this.#renewTimer = undefined;
  }

  get done(): boolean {
    return this.#done;
  }

  get lost(): boolean {
    return this.#lost !== undefined;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#lost) this.#controller.abort(this.#lost);
      else if (!this.#done) {
        if (this.ctx.now() >= this.expiresAt) this.#expire();
        else if (!this.#expiryTimer) this.#armExpiry();
      }
    }
    return this.#controller.signal;
  }

  open(): LeaseHandle {
    this.#handles++;
    return new LeaseHandle(this);
  }

  async extend(ttlMs: number = this.ttlMs): Promise<void> {
    if (this.#done) throw new LockLostError(this.key, this.#lost ? 'lease already lost' : 'lease already released');
    const started = this.ctx.now();
    let result: ExtendResult;
    try {
      result = await this.ctx.backend.extend(this.key, this.ownerId, ttlMs);
    } catch (error) {
      throw error instanceof LockBackendError ? error : new LockBackendError(this.key, 'extend', error);
    }
    if (result !== 'extended') {
      const err = new LockLostError(this.key, result === 'notOwner' ? 'held by another owner' : 'expired');
      this.lose(err);
      throw err;
    }
    if (this.#done) return;
    this.expiresAt = started + ttlMs - this.ctx.drift(ttlMs);
    if (this.#controller || this.autoExtend) this.#armExpiry();
  }

  /** Called by each handle once; the last one releases the lock. */
  releaseOne(): Promise<void> {
    this.#handles--;
    if (this.#handles > 0) return Promise.resolve();
    this.#releasing ??= this.#release();
    return this.#releasing;
  }

  // Release after a loss is not an error (redis-semaphore users call it in `finally`): it resolves,
  // and the loss is reported once, here or earlier by the watchdog, expiry timer or extend().
  #release(): Promise<void> {
    this.#stop();
    this.#done = true;
    // A promise chain rather than async/await: one fewer promise on every release.
    let pending: Promise<ReleaseResult>;
    this.ctx.onReleased?.(this.key);
    try {
      pending = this.ctx.backend.release(this.key, this.ownerId);
    } catch (error) {
      return Promise.reject(error instanceof LockBackendError ? error : new LockBackendError(this.key, 'release', error));
    }
    return pending.then(
      (result) => {
        // released while lost: still held, but past a deadline it could no longer prove (reported then)
        if (result === 'released') return;
        this.ctx.onReleased?.(this.key, false);
        // notHeld: it expired (nobody took it since); notOwner: another owner holds it, left alone.
        this.#reportLoss(new LockLostError(this.key, result === 'notOwner' ? 'held by another owner when released' : 'expired before it was released'));
      },
      (error: unknown) => {
        throw error instanceof LockBackendError ? error : new LockBackendError(this.key, 'release', error);
      },
    );
  }

  lose(error: LockLostError): void {
    if (this.#done) return;
    this.#done = true;
    this.#stop();
    this.#reportLoss(error);
  }

  /** Records the loss and tells the signal, metrics and event hook, once per acquisition. */
  #reportLoss(error: LockLostError): void {
    if (this.#lost) return;
    this.#lost = error;
    this.#controller?.abort(error);
    this.ctx.metrics.lost?.({ backend: this.ctx.backend.name, key: this.key, reason: error.reason });
    this.ctx.emit({ type: 'lost', key: this.key, ownerId: this.ownerId, fence: this.fence, error });
  }

  #stop(): void {
    clearTimeout(this.#expiryTimer);
    clearTimeout(this.#renewTimer);
    this.#expiryTimer = undefined;
    this.#renewTimer = undefined;
  }

  #armExpiry(): void {
    clearTimeout(this.#expiryTimer);
    const ms = this.expiresAt - this.ctx.now();
    this.#expiryTimer = setTimeout(() => this.#expire(), Math.max(0, ms));
    this.#expiryTimer.unref();
  }

  #expire(): void {
    this.lose(new LockLostError(this.key, 'lease deadline passed without a successful renewal'));
  }

  #scheduleRenew(ms: number): void {
    clearTimeout(this.#renewTimer);
    if (this.#done || !this.#renewing) return;
    // Referenced on purpose: a held, auto-extended lease is live work that keeps the process up.
    this.#renewTimer = setTimeout(() => void this.#renew(), ms);
  }

  // Never throws: failures are retried until the lease deadline, then the expiry timer loses it.
  async #renew(): Promise<void> {
    if (this.#done || !this.#renewing) return;
    try {
      await this.extend();
      this.ctx.metrics.renewed?.({ backend: this.ctx.backend.name, key: this.key });
      this.#scheduleRenew(this.#renewEveryMs);
    } catch (error) {
      if (this.#done) return;
      this.ctx.metrics.renewFailed?.({ backend: this.ctx.backend.name, key: this.key });
      try {
        this.ctx.emit({ type: 'renewFailed', key: this.key, ownerId: this.ownerId, error });
      } catch {
        // an event hook must not stop the watchdog
      }
      // A failure no retry can fix: the lease cannot be proven held any more, say so now.
      if (error instanceof LockBackendError && error.permanent) {
        this.lose(new LockLostError(this.key, `renewal impossible: ${error.message}`, { cause: error }));
        return;
      }
      const remaining = this.expiresAt - this.ctx.now();
      if (remaining <= 0) return; // expiry timer fires now
      this.#scheduleRenew(Math.max(1, Math.min(Math.floor(this.ttlMs / 10), Math.floor(remaining / 2))));
    }
  }
}

export class LeaseHandle implements Lease {
  #released: Promise<void> | undefined;

  constructor(readonly state: LeaseState) {}

  get key(): string {
    return this.state.key;
  }
  get ownerId(): string {
    return this.state.ownerId;
  }
  get fence(): bigint {
    return this.state.fence;
  }
  get expiresAt(): number {
    return this.state.expiresAt;
  }
  get signal(): AbortSignal {
    return this.state.signal;
  }

  extend(ttlMs?: number): Promise<void> {
    if (this.#released) return Promise.reject(new LockLostError(this.key, 'this handle was released'));
    return this.state.extend(ttlMs);
  }

  release(): Promise<void> {
    this.#released ??= this.state.releaseOne();
    return this.#released;
  }

  get lost(): boolean {
    return this.state.lost;
  }

  stopRenewal(): void {
    this.state.stopRenewal();
  }

  reenter(): Lease {
    if (this.#released) throw new LockLostError(this.key, 'cannot reenter through a released handle');
    if (this.state.done) throw new LockLostError(this.key, this.state.lost ? 'lease already lost' : 'lease already released');
    return this.state.open();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
