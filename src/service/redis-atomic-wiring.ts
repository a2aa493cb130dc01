// Wiring of the `redis-atomic` strategy: its Redis client (ioredis, connected on the first claim)
// and its SQL port. Redis comes from ServiceOptions.redisAtomic.url, else a redis:// or rediss://
// LOCKS_URL/REDIS_URL (config.locksUrl).
import { Redis } from 'ioredis';
import { fromIoredis, type RedisClient } from '@allot/lock';
import { maskUrl, type SqlConnection } from '../adapters/sql/connect.ts';
import { sqlDialect } from '../adapters/sql/dialect.ts';
import { SqlRedisAtomicStore } from '../adapters/sql/sql-redis-atomic.ts';
import type { RedisAtomicDeps, RedisAtomicMode } from '../strategies/redis-atomic/deps.ts';

export interface RedisAtomicOptions {
  /** default: config.locksUrl when it is redis:// or rediss:// */
  url?: string;
  /** default `durable` (201 after the SQL commit); `fast`: 201 after Redis (docs/strategies.md) */
  mode?: RedisAtomicMode;
  recoverEveryMs?: number;
  keyReserveMs?: number;
  /** `fast` mode: most claims answered and not yet in SQL per instance (default 2,000); beyond, a claim waits for room */
  writeBehindMax?: number;
  /** key prefix in Redis; default `<lockPrefix>ra:` (or `allot:ra:`) */
  prefix?: string;
  blockMax?: number;
  leaseTtlMs?: number;
  maxBatch?: number;
  settleMs?: number;
  inflightWaitMs?: number;
}

export function redisAtomicUrl(opts: RedisAtomicOptions | undefined, locksUrl: string | undefined): string | null {
  if (opts?.url) return opts.url;
  return locksUrl !== undefined && /^rediss?:\/\//i.test(locksUrl) ? locksUrl : null;
}

export function redisAtomicDeps(conn: SqlConnection, opts: RedisAtomicOptions | undefined, locksUrl: string | undefined, lockPrefix: string | undefined): RedisAtomicDeps {
  const url = redisAtomicUrl(opts, locksUrl);
  const { url: _url, prefix, ...rest } = opts ?? {};
  return {
    ...rest,
    prefix: prefix ?? (lockPrefix ? `${lockPrefix}ra:` : 'allot:ra:'),
    store: new SqlRedisAtomicStore(conn.db, sqlDialect(conn.family)),
    redis: url === null ? null : () => connect(url),
  };
}

async function connect(url: string): Promise<RedisClient> {
  // A command fails when its connection drops instead of waiting for Redis: a claim then answers
  // 503 (nothing issued) while Redis is down. Never sent again after a reconnection
  // (maxRetriesPerRequest 0): a command Redis may have run already (a block's HINCRBY, a claim
  // script) would run twice, and a block counted twice hands out units SQL never granted (in
  // `fast` mode, acknowledged claims then lost; seen in the Redis-restart test).
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, enableOfflineQueue: true, enableAutoPipelining: true });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${maskUrl(url)} (redis-atomic): ${(err as Error).message}`);
  }
  return fromIoredis(redis);
}
