// The catalogue of claim strategies by name. A strategy that needs a dependency (locks,
// randomness) is built from it; a new strategy adds a file and a line here.
import type { ClaimStrategy } from '../ports/claim-strategy.ts';
import { createConditional } from './conditional.ts';
import { createGroupCommit, GROUP_COMMIT_STRATEGY } from './group-commit.ts';
import type { StrategyDeps } from './deps.ts';
import { createLocalMutex } from './local-mutex.ts';
import { createNaive } from './naive.ts';
import { createOptimistic } from './optimistic.ts';
import { createPessimistic } from './pessimistic.ts';
import { createRedisLockStrategy, REDIS_LOCK_STRATEGY, type RedisLockStrategyOptions } from './redis-lock.ts';
import { createRedisAtomic, REDIS_ATOMIC_STRATEGY } from './redis-atomic/redis-atomic.ts';

export type { StrategyDeps } from './deps.ts';

export const DEFAULT_STRATEGY = 'conditional';

/** Safe strategies, in the order documentation and the lab list them. */
export const SAFE_STRATEGIES = ['conditional', 'pessimistic', 'optimistic', 'optimistic-stock', REDIS_LOCK_STRATEGY, GROUP_COMMIT_STRATEGY, REDIS_ATOMIC_STRATEGY] as const;
/** Demo strategies that can oversell; refused unless the server allows unsafe strategies. */
export const UNSAFE_STRATEGIES = ['naive', 'local-mutex'] as const;

export function strategyNames(opts: { unsafe?: boolean } = {}): string[] {
  return opts.unsafe === false ? [...SAFE_STRATEGIES] : [...SAFE_STRATEGIES, ...UNSAFE_STRATEGIES];
}

export function createStrategies(deps: StrategyDeps, opts: { redisLock?: RedisLockStrategyOptions } = {}): ReadonlyMap<string, ClaimStrategy> {
  const all = [
    createConditional(deps),
    createPessimistic(deps),
    createOptimistic(deps, 'version'),
    createOptimistic(deps, 'issued'),
    createRedisLockStrategy(deps, opts.redisLock),
    createGroupCommit(deps),
    createRedisAtomic(deps),
    createNaive(deps),
    createLocalMutex(deps),
  ];
  return new Map(all.map((s) => [s.name, s]));
}
