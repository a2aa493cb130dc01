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
  /** most units one lease takes at a time (default 256; fewer near the end of the stock) */
  blockMax?: number;
  /** a lease not renewed (by a grant or a batch) for this long may be reclaimed by another instance (default 30 s) */
  leaseTtlMs?: number;
  /** most claims in one SQL transaction (default 256) */
  maxBatch?: number;
}
