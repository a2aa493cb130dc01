// One Redis (redis:// and rediss://) as the service's lock backend, through ioredis. Fences are
// anchored in SQL (ctx.anchor), so they outrank every fence issued before a Redis loss.
import { Redis } from 'ioredis';
import { createRedisLockProvider, fromIoredis } from '@allot/lock';
import { maskUrl } from '../../adapters/sql/connect.ts';
import type { LockBackendOpener } from './types.ts';

export const open: LockBackendOpener = async (url, ctx) => {
  const href = url;
  // maxRetriesPerRequest: a command fails after two reconnection attempts rather than waiting for
  // Redis to return; the provider retries, and the service's breaker turns a run of failures
  // into fast answers.
  const redis = new Redis(href, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 2000, enableOfflineQueue: true });
  // Without a listener a connection error would be an unhandled 'error' event; ioredis reconnects
  // by itself. Once connected, each failed reconnection is reported as a backend error: the
  // service's circuit breaker then opens within a few reconnect attempts, even on an idle instance.
  let connected = false;
  redis.on('error', (error: unknown) => {
    if (connected) ctx.onEvent?.({ type: 'backendError', error });
  });
  try {
    await redis.connect();
    connected = true;
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${maskUrl(href)} (LOCKS_URL/REDIS_URL): ${(err as Error).message}`);
  }
  const provider = createRedisLockProvider({ client: fromIoredis(redis), prefix: ctx.prefix, fenceAnchor: ctx.anchor, metrics: ctx.metrics, ...(ctx.onEvent ? { onEvent: ctx.onEvent } : {}) });
  return {
    provider,
    kind: 'redis',
    displayUrl: maskUrl(href),
    ping: async () => {
      await redis.ping();
    },
    close: async () => {
      await provider.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
};
