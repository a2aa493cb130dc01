// `redis-lock`: double-checked locking with fenced writes. Check (no lock) → lock the user (and,
// opt-in, then the campaign: one global order, so never a deadlock) → re-check under the locks
// → act in one transaction whose first statements raise the locks' fences in the store. A
// holder that lost its lock (pause, expiry, Redis loss) is refused by the fence, not trusted
// to notice.
import { AllotError, TransientConflictError } from '../core/errors.ts';
import type { Claim } from '../core/claim.ts';
import type { ClaimStore } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy, StrategyOutcome } from '../ports/claim-strategy.ts';
import { LockError, StaleFenceError, type Lease } from '../ports/lock-provider.ts';
import { LockBackendError } from '@allot/lock';
import { retryPolicy, type StrategyDeps } from './deps.ts';
import { claimWithLockedCounter } from './locked-claim.ts';
import { outcome, Refused, settle } from './outcome.ts';
import { retrying } from './retry.ts';

export interface RedisLockStrategyOptions {
  /** lease of each lock; the watchdog renews it while the claim runs */
  ttlMs?: number;
  /** how long a claim waits for each lock before answering UNAVAILABLE */
  timeoutMs?: number;
  /** FIFO among the waiters of a lock (default true) */
  fair?: boolean;
  /** Also hold a per-campaign lock around the transaction (the seeds' global mutex): every
   * claim of a campaign then queues on one lock. Off by default: stock is a conditional guard
   * in the database, and the lock would only serialize the stampede. */
  campaignLock?: boolean;
  /** Race lab and tests: runs with the locks held, before the transaction (e.g. to pause the
   * holder past its lease). */
  afterLock?(leases: readonly Lease[]): Promise<void>;
  /** While the lock backend is down (a LockBackendError before a lock is held, e.g. the service's
   * circuit breaker is open): 'degrade' (default) runs the claim with the database guard only,
   * with no lock and no fence; the user's counter row lock and the conditional stock guard keep
   * it exactly-once, only slower under contention. 'refuse' answers UNAVAILABLE at once. */
  whenLocksDown?: 'degrade' | 'refuse';
  /** told each time a claim ran without its lock (degrade) or was refused for it (refuse) */
  onLocksDown?(mode: 'degrade' | 'refuse', error: LockBackendError): void;
}

export const REDIS_LOCK_STRATEGY = 'redis-lock';

export function userLockKey(campaignId: string, userId: string): string {
  return `claim:user:${campaignId}:${userId}`;
}

export function campaignLockKey(campaignId: string): string {
  return `claim:campaign:${campaignId}`;
}

export function createRedisLockStrategy(deps: StrategyDeps, opts: RedisLockStrategyOptions = {}): ClaimStrategy {
  const { locks } = deps;
  const lockOpts = { ttlMs: opts.ttlMs ?? 10_000, timeoutMs: opts.timeoutMs ?? 10_000, fair: opts.fair ?? true };
  const campaignLock = opts.campaignLock ?? false;
  const policy = retryPolicy(deps);
  const whenLocksDown = opts.whenLocksDown ?? 'degrade';

  /** The lock backend failed before the lock was held: refuse at once, or go on with the
   * database guard only (the caller then runs the claim without that lock). */
  function locksDown(error: LockBackendError): void {
    opts.onLocksDown?.(whenLocksDown, error);
    if (whenLocksDown === 'refuse') {
      throw new AllotError('UNAVAILABLE', `the lock backend is unavailable (${error.message}); nothing was issued`, { outcome: 'nothing-issued', lockError: error.code, backend: 'locks' }, { cause: error });
    }
  }

  /** Refuses hopeless requests before (and again after) queueing on a lock. */
  async function precheck(store: ClaimStore, req: ClaimRequest): Promise<void> {
    if (!req.unit) return;
    const current = await store.readStock(req.unit);
    if (current === null) throw new AllotError('CAMPAIGN_NOT_FOUND');
    if (current.issued >= current.stock) throw new Refused('sold_out');
  }

  const now = () => (deps.clock ? deps.clock.now() : Date.now());

  async function act(store: ClaimStore, req: ClaimRequest, leases: Lease[], committed: (at: number) => void): Promise<Claim> {
    await opts.afterLock?.(leases);
    // Second check, under the locks but before any write: a stampede queued on a campaign
    // that sold out meanwhile drains without a transaction each.
    await precheck(store, req);
    const claim = await store.transaction(async (tx) => {
      // Fences first: their rows stay locked until commit, so fenced writers of a resource
      // commit in fence order and a stale one is refused before it writes anything.
      for (const lease of leases) {
        if (!(await tx.raiseFence(lease.key, lease.fence, lease.ownerId))) {
          deps.onFenceRejected?.(lease.key);
          // A newer holder already wrote: this attempt rolls back and may simply be retried.
          throw new TransientConflictError(new StaleFenceError(lease.key, lease.fence));
        }
      }
      // Re-check the user's limits under the user lock (the first check ran without it).
      return claimWithLockedCounter(tx, req);
    });
    committed(now());
    return claim;
  }

  return {
    name: REDIS_LOCK_STRATEGY,
    safe: true,
    async claim(store: ClaimStore, req: ClaimRequest): Promise<StrategyOutcome> {
      const { campaign, userId } = req;
      const o = { ...lockOpts, ...(req.signal ? { signal: req.signal } : {}) };
      let fence: { resource: string; fence: bigint; committedAt: number } | undefined;
      const { value, retries } = await retrying(policy, deps, req.signal, () =>
        settle(async () => {
          await precheck(store, req);
          // Whether the user lock was taken: a backend failure before it means the backend is
          // down, and the claim may run without the lock (it has not written anything).
          let locked = false;
          try {
            return await locks.using(userLockKey(campaign.id, userId), o, async (_s, userLease) => {
              locked = true;
              const committed = (at: number) => (fence = { resource: userLease.key, fence: userLease.fence, committedAt: at });
              if (!campaignLock) return act(store, req, [userLease], committed);
              let both = false;
              try {
                return await locks.using(campaignLockKey(campaign.id), o, (_s2, campaignLease) => {
                  both = true;
                  return act(store, req, [userLease, campaignLease], committed);
                });
              } catch (error) {
                if (both || !(error instanceof LockBackendError)) throw error;
                locksDown(error);
                return act(store, req, [userLease], committed);
              }
            });
          } catch (error) {
            if (!locked && error instanceof LockBackendError) {
              locksDown(error);
              return act(store, req, [], () => undefined);
            }
            if (error instanceof LockError) {
              throw new AllotError('UNAVAILABLE', `lock not obtained: ${error.message}; nothing was issued`, { outcome: 'nothing-issued', lockError: error.code }, { cause: error });
            }
            throw error;
          }
        }),
      );
      return outcome(value, fence && !(value instanceof Refused) ? { retries, fence } : { retries });
    },
  };
}
