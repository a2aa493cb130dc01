// The lock library's public contracts: the provider, the lease handle, events, and the
// narrow backend interface each store (memory, Redis, later Sentinel/Cluster/Redlock/etcd) implements.
import type { AcquireOptions, AdoptOptions } from './options.ts';
import type { LockError, LockLostError } from './errors.ts';

export interface Lease extends AsyncDisposable {
  readonly key: string;
  readonly ownerId: string;
  /** strictly greater than any earlier fence for this key; pass it to fenced writes */
  readonly fence: bigint;
  /** ms since epoch; conservative client-side estimate (acquisition start + ttl - drift) */
  readonly expiresAt: number;
  /** aborts (reason: LockLostError) when the lock is lost or can no longer be proven held */
  readonly signal: AbortSignal;
  /** renews to ttlMs (default: the acquisition's ttl); throws LockLostError if the lock is gone */
  extend(ttlMs?: number): Promise<void>;
  /**
   * Idempotent and safe in `finally`: it never throws because the lock was lost. When the lease
   * had been lost before this call (expired, renewal failed, or another owner holds the lock: that
   * holder is left alone) it resolves all the same, with `lost` true, the signal aborted with a
   * LockLostError and one 'lost' event emitted. Rejects only with a LockBackendError (the backend
   * did not answer; the TTL frees the lock). With reenter(), the lock is released when every
   * handle is released.
   */
  release(): Promise<void>;
  /** true once the lease is known lost (the signal aborted); after release(), whether it had been
   * lost before it was released */
  readonly lost: boolean;
  /** stops the watchdog (autoExtend, using()) and keeps the lease: it then lasts until expiresAt
   * unless extend() is called; the signal still aborts when that deadline passes */
  stopRenewal(): void;
  /** a child handle on the same acquisition (opt-in reentrancy, scoped to this lease) */
  reenter(): Lease;
}

export type UsingCallback<T> = (signal: AbortSignal, lease: Lease) => Promise<T>;

export interface LockProvider {
  readonly backend: string;
  /** waits up to timeoutMs; throws LockTimeoutError, LockAbortedError, LockValidityError, LockBackendError */
  acquire(key: string, opts?: AcquireOptions): Promise<Lease>;
  /** one attempt; null when another owner holds the lock */
  tryAcquire(key: string, opts?: AcquireOptions): Promise<Lease | null>;
  /** acquire with automatic renewal, run fn, release on exit; returns fn's value */
  using<T>(key: string, opts: AcquireOptions | undefined, fn: UsingCallback<T>): Promise<T>;
  /**
   * Continues a lock acquired elsewhere with `acquire(key, { identifier })` (a scheduler acquires,
   * a worker continues, extends and releases it): renews it to ttlMs and returns a lease with that
   * acquisition's fence, read from the backend. Throws LockLostError when the lock is not held
   * under the identifier, or (opts.fence given) when it is held by a different acquisition.
   */
  adopt(key: string, opts: AdoptOptions): Promise<Lease>;
  /** stops background work and closes connections the provider opened (not the client it was given) */
  close(): Promise<void>;
}

export type LockEvent =
  | { type: 'lost'; key: string; ownerId: string; fence: bigint; error: LockLostError }
  | { type: 'renewFailed'; key: string; ownerId: string; error: unknown }
  | { type: 'releaseFailed'; key: string; ownerId: string; error: unknown }
  | { type: 'waitFallback'; key: string; error: unknown }
  | { type: 'epochInstalled'; epoch: bigint; installed: boolean }
  | { type: 'backendError'; error: unknown };

export type LockEventHook = (event: LockEvent) => void;

export type AttemptResult =
  | { acquired: true; fence: bigint }
  | {
      acquired: false;
      retryAfterMs: number;
      /** this attempt did not join the waiter queue */
      notQueued?: boolean;
      /** the backend's clock (ms) when the attempt ran, if it hands locks off (LockBackend.parseHandoff) */
      serverMs?: number;
    };

export type ReleaseResult = 'released' | 'notHeld' | 'notOwner';
export type ExtendResult = 'extended' | 'notHeld' | 'notOwner';

export interface WakeSubscription {
  close(): void;
}

/** What a store must provide; the generic provider adds waiting, leases, watchdog, validity and metrics. */
export interface LockBackend {
  readonly name: string;
  /** queued: an earlier attempt of this acquisition may have put the caller in the waiter queue.
   * An attempt by the owner id that holds the lock (with queued: true) renews it to ttlMs and
   * returns the fence of that holding: the retry of an attempt whose reply was lost, and adopt().
   * `expectFence` (adopt with a fence): the fence the caller was handed for that holding; a
   * backend whose nodes may report different fences for one holding (Redlock: a node that granted
   * late was never raised to the lease's fence) answers it when one of the granting nodes holds it. */
  attempt(req: { key: string; ownerId: string; ttlMs: number; fair: boolean; waiterTtlMs: number; queued: boolean; handoff?: boolean | undefined; expectFence?: bigint | undefined; signal?: AbortSignal | undefined }): Promise<AttemptResult>;
  extend(key: string, ownerId: string, ttlMs: number): Promise<ExtendResult>;
  release(key: string, ownerId: string): Promise<ReleaseResult>;
  refreshWaiter(key: string, ownerId: string, waiterTtlMs: number): Promise<void>;
  leaveQueue(key: string, ownerId: string): Promise<void>;
  /** wake-ups for key: payload '*' (anyone) or the owner id of the fair queue's head. Throws if unavailable. */
  subscribe(key: string, onWake: (payload: string) => void): Promise<WakeSubscription>;
  /** Optional: wake-ups for one waiter, ownerId, of key (same payloads). A backend that can wake
   * the head alone (Redis: on its provider's own channel) implements it; otherwise the provider
   * uses subscribe(). Must deliver every wake-up subscribe() would deliver to that waiter: every
   * message naming ownerId, every '*', and the head's lease for the others. Throws if unavailable. */
  subscribeOwner?(key: string, ownerId: string, onWake: (payload: string) => void): Promise<WakeSubscription>;
  /**
   * Optional: direct hand-off. A backend that implements it makes a queued waiter that asked for
   * it (attempt's `handoff`, sent only while the waiter listens for wake-ups) the owner in the
   * release itself, with its fence, and tells it in the wake-up: this parses such a wake-up for
   * ownerId (undefined for any other payload). serverMs is the backend's clock at the hand-off;
   * the provider dates the lease from it through the serverMs of the waiter's last attempt. A
   * waiter that leaves the queue (leaveQueue) gives back a lock handed to it meanwhile.
   */
  parseHandoff?(payload: string, ownerId: string): { fence: bigint; serverMs: number } | undefined;
  close(): Promise<void>;
}

export type { LockError };
