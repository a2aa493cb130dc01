// What strategies are built from: locks, randomness for jitter, retry policies, hooks.
import type { Clock } from '../ports/clock.ts';
import type { RandomSource } from '../ports/random.ts';
import type { LockProvider } from '../ports/lock-provider.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.ts';
import type { RedisAtomicDeps } from './redis-atomic/deps.ts';

export interface StrategyDeps {
  /** Distributed (Redis) or in-process locks, for lock-based strategies. */
  locks: LockProvider;
  random: RandomSource;
  /** wall clock for the stats strategies report (default Date.now) */
  clock?: Clock;
  /** policy for deadlock and serialization retries (every strategy) */
  retry?: Partial<RetryPolicy>;
  /** the optimistic strategies' own policy (the seeds: 3 times or 100 ms) */
  optimisticRetry?: Partial<RetryPolicy>;
  /** a fenced write was refused (a stale lock holder) */
  onFenceRejected?(resource: string): void;
  /** race lab only: ms the unsafe strategies spend between their check and their write, as the
   * seeds' business logic did ("build the claim record") */
  unsafeThinkMs?: number;
  /** Redis and the SQL leases of the redis-atomic strategy (absent: it refuses every claim) */
  redisAtomic?: RedisAtomicDeps;
}

export function retryPolicy(deps: StrategyDeps): RetryPolicy {
  return { ...DEFAULT_RETRY, ...deps.retry };
}
