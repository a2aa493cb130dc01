// What the `redis-atomic` strategy is built from: a Redis client (connected on first use), its
// SQL port, and its settings.
import type { RedisClient } from '@allot/lock';
import type { RedisAtomicStore } from './lease-store.ts';

export type RedisAtomicMode = 'durable' | 'fast';

export interface RedisAtomicDeps {
  /** the Redis client, connected on first use; null when no Redis is configured (the strategy refuses) */
  redis: (() => Promise<RedisClient>) | null;
  store: RedisAtomicStore;
  /** key prefix in Redis (keys are `<prefix>{<campaign id>}:…`) */
  prefix: string;
  /** `durable` (default): 201 after the SQL commit. `fast` is not built yet, and refused. */
  mode?: RedisAtomicMode;
  /** most units one lease takes at a time (default 1024; an eighth of what is free near the end of the stock); a block is refilled in the background once it holds fewer than half of this */
  blockMax?: number;
  /** a lease not renewed (by a grant or a batch) for this long may be reclaimed by another instance (default 30 s) */
  leaseTtlMs?: number;
  /** how long one claim may keep retrying (refills lost to other instances, a rebuild) before a 503, nothing issued (default 10 s) */
  settleMs?: number;
  /** how long a claim that found no unit waits for units in flight (taken by claims not yet committed, which may come back) before SOLD_OUT (default 2 s) */
  inflightWaitMs?: number;
  /** most claims in one SQL transaction (default 256) */
  maxBatch?: number;
}
