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
  /** `durable` (default): 201 after the SQL commit. `fast`: 201 after Redis, the claim written to
   * SQL behind the answer (docs/strategies.md states the window in which an acknowledged claim
   * can be lost). */
  mode?: RedisAtomicMode;
  /** `fast` mode: how often each instance looks for leases of dead instances whose write-behind
   * streams it must replay before their units are reclaimed (default 1 s) */
  recoverEveryMs?: number;
  /** `fast` mode: how long an Idempotency-Key stays reserved in Redis at most (default 7 days;
   * it is deleted as soon as SQL has the key) */
  keyReserveMs?: number;
  /** `fast` mode: most claims of this instance answered 201 and not yet written to SQL (default
   * 2,000). Beyond it a claim waits for room (up to settleMs, then 503, nothing issued): it
   * bounds the instance's memory, its streams in Redis, and how many acknowledged claims a crash
   * of the instance together with a loss of Redis's data can lose. */
  writeBehindMax?: number;
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
