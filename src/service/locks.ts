// The service's lock provider: Redis when LOCKS_URL / REDIS_URL is set, in-process otherwise.
// Either way fences are anchored in SQL (lock_epochs), so they outrank every fence issued
// before a Redis loss or a restart, and the store's fence guard (lock_fences) stays correct.
import { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { SqlConnection } from '../adapters/sql/connect.ts';
import { maskUrl } from '../adapters/sql/connect.ts';
import { AllotError } from '../core/errors.ts';
import { createMemoryLockProvider } from '../lock/memory/memory-provider.ts';
import type { LockMetrics } from '../lock/metrics.ts';
import { registerLockMetrics } from '../lock/prometheus.ts';
import { createRedisLockProvider } from '../lock/redis/redis-provider.ts';
import { fromIoredis } from '../lock/redis/ioredis.ts';
import { SqlFenceAnchor } from '../adapters/sql/sql-fences.ts';
import { sqlDialect } from '../adapters/sql/dialect.ts';
import type { LockEventHook, LockProvider } from '../lock/types.ts';

export interface ServiceLocks {
  provider: LockProvider;
  metrics: LockMetrics;
  /** 'redis' or 'in-process' */
  kind: string;
  displayUrl: string | null;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_LOCK_PREFIX = 'allot:lock:';

export async function openLocks(opts: { conn: SqlConnection; url?: string | undefined; prefix?: string | undefined; registry: Registry; onEvent?: LockEventHook }): Promise<ServiceLocks> {
  const prefix = opts.prefix ?? DEFAULT_LOCK_PREFIX;
  const metrics = registerLockMetrics(opts.registry);
  const anchor = new SqlFenceAnchor(opts.conn.db, sqlDialect(opts.conn.family), prefix);
  if (!opts.url) {
    // In-memory counters restart at every start: a fresh durable epoch puts this process's
    // fences above every earlier one.
    const epoch = await anchor.nextEpoch();
    const provider = createMemoryLockProvider({ fenceBase: epoch << 40n, metrics, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
    return { provider, metrics, kind: 'in-process', displayUrl: null, ping: async () => {}, close: () => provider.close() };
  }
  const redis = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 2000, enableOfflineQueue: true });
  // Without a listener a connection error would be an unhandled 'error' event; ioredis reconnects by itself.
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${maskUrl(opts.url)} (LOCKS_URL/REDIS_URL): ${(err as Error).message}`);
  }
  const provider = createRedisLockProvider({ client: fromIoredis(redis), prefix, fenceAnchor: anchor, metrics, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
  return {
    provider,
    metrics,
    kind: 'redis',
    displayUrl: maskUrl(opts.url),
    ping: async () => {
      try {
        await redis.ping();
      } catch (err) {
        throw new AllotError('UNAVAILABLE', 'Redis does not answer.', { backend: 'redis' }, { cause: err });
      }
    },
    close: async () => {
      await provider.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
