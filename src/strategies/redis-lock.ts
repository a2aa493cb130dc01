// `redis-lock`: double-checked locking with fenced writes. Check (no lock) → lock the user (and,
// opt-in, then the campaign: one global order, so never a deadlock) → re-check under the locks
// → act in one transaction whose first statements raise the locks' fences in the store. A
// holder that lost its lock (pause, expiry, Redis loss) is refused by the fence, not trusted
// to notice.
import { AllotError, TransientConflictError } from '../core/errors.ts';
import type { Claim } from '../core/claim.ts';
import { claimWithLockedCounter } from './locked-claim.ts';
import type { ClaimStore, ClaimTx } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy } from '../ports/claim-strategy.ts';
import { LockError, StaleFenceError, type FencedTx, type Lease, type LockProvider } from '../ports/lock-provider.ts';

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
}

export const REDIS_LOCK_STRATEGY = 'redis-lock';

export function userLockKey(campaignId: string, userId: string): string {
  return `claim:user:${campaignId}:${userId}`;
}

export function campaignLockKey(campaignId: string): string {
  return `claim:campaign:${campaignId}`;
}

function fenced(tx: ClaimTx): ClaimTx & FencedTx {
  if (typeof (tx as Partial<FencedTx>).checkFence !== 'function') {
    throw new AllotError('INTERNAL', 'the redis-lock strategy needs a store whose transactions can check fences (checkFence)');
  }
  return tx as ClaimTx & FencedTx;
}

export function createRedisLockStrategy(locks: LockProvider, opts: RedisLockStrategyOptions = {}): ClaimStrategy {
  const lockOpts = { ttlMs: opts.ttlMs ?? 10_000, timeoutMs: opts.timeoutMs ?? 10_000, fair: opts.fair ?? true };
  const campaignLock = opts.campaignLock ?? false;

  async function act(store: ClaimStore, req: ClaimRequest, leases: Lease[]): Promise<Claim> {
    const { campaign } = req;
    // Second check, under the locks but before any write: a stampede queued on a campaign
    // that sold out meanwhile drains without a transaction each.
    const current = await store.getCampaign(campaign.id);
    if (current === null) throw new AllotError('CAMPAIGN_NOT_FOUND');
    if (current.issued >= current.stock) throw new AllotError('SOLD_OUT');
    return store.transaction(async (raw) => {
      const tx = fenced(raw);
      // Fences first: their rows stay locked until commit, so fenced writers of a resource
      // commit in fence order and a stale one is refused before it writes anything.
      for (const lease of leases) await tx.checkFence(lease.key, lease.fence);
      // Re-check the user's limits under the user lock (the first check ran without it).
      return claimWithLockedCounter(tx, req);
    });
  }

  return {
    name: REDIS_LOCK_STRATEGY,
    safe: true,
    async claim(store: ClaimStore, req: ClaimRequest): Promise<Claim> {
      const { campaign, userId } = req;
      // Check without locks: refuse hopeless requests before queueing on a hot lock.
      const current = await store.getCampaign(campaign.id);
      if (current === null) throw new AllotError('CAMPAIGN_NOT_FOUND');
      if (current.issued >= current.stock) throw new AllotError('SOLD_OUT');
      const o = { ...lockOpts, ...(req.signal ? { signal: req.signal } : {}) };
      try {
        return await locks.using(userLockKey(campaign.id, userId), o, (_s, userLease) =>
          campaignLock
            ? locks.using(campaignLockKey(campaign.id), o, (_s2, campaignLease) => act(store, req, [userLease, campaignLease]))
            : act(store, req, [userLease]),
        );
      } catch (error) {
        // A newer holder already wrote: this attempt rolled back and may simply be retried.
        if (error instanceof StaleFenceError) throw new TransientConflictError(error);
        if (error instanceof LockError) {
          throw new AllotError('UNAVAILABLE', `lock not obtained: ${error.message}; nothing was issued`, { outcome: 'nothing-issued', lockError: error.code }, { cause: error });
        }
        throw error;
      }
    },
  };
}
