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
        if (!(await tx.raiseFence(lease.key, lease.fence))) {
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
          try {
            return await locks.using(userLockKey(campaign.id, userId), o, async (_s, userLease) => {
              const committed = (at: number) => (fence = { resource: userLease.key, fence: userLease.fence, committedAt: at });
              return campaignLock
                ? locks.using(campaignLockKey(campaign.id), o, (_s2, campaignLease) => act(store, req, [userLease, campaignLease], committed))
                : act(store, req, [userLease], committed);
            });
          } catch (error) {
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
