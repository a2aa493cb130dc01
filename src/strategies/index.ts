// The catalogue of claim strategies by name. A strategy that needs a dependency (a lock
// provider) is built from it; later strategies only add a file and a line here.
import type { ClaimStrategy } from '../ports/claim-strategy.ts';
import type { LockProvider } from '../ports/lock-provider.ts';
import { conditional } from './conditional.ts';
import { pessimistic } from './pessimistic.ts';
import { createRedisLockStrategy, REDIS_LOCK_STRATEGY } from './redis-lock.ts';

export interface StrategyDeps {
  /** Distributed (Redis) or in-process locks, for lock-based strategies. */
  locks: LockProvider;
}

export const DEFAULT_STRATEGY = conditional.name;

const NAMES = [conditional.name, pessimistic.name, REDIS_LOCK_STRATEGY] as const;

export function strategyNames(): string[] {
  return [...NAMES];
}

export function createStrategies(deps: StrategyDeps): ReadonlyMap<string, ClaimStrategy> {
  const all = [conditional, pessimistic, createRedisLockStrategy(deps.locks)];
  return new Map(all.map((s) => [s.name, s]));
}
