// Providers for replicated Redis: Sentinel (the client follows the master) and Cluster (each lock's
// keys in one hash slot). Both turn the failover guard on: fences stay strictly increasing when a
// promoted replica lacks the last fence increments of the old master.
import type { LockProvider } from '../types.ts';
import { createRedisLockProvider, type RedisLockProviderOptions } from './redis-provider.ts';

export type RedisTopologyProviderOptions = Omit<RedisLockProviderOptions, 'layout'>;

/** The client must follow the master (ioredis: `new Redis({ sentinels, name })`, fromIoredis). */
export function createRedisSentinelLockProvider(opts: RedisTopologyProviderOptions): LockProvider {
  return createRedisLockProvider({ failoverGuard: true, name: `redis-sentinel(${opts.client.kind})`, ...opts, layout: 'single' });
}

/** The client must route by slot (ioredis: `new Cluster(nodes)`, fromIoredisCluster). */
export function createRedisClusterLockProvider(opts: RedisTopologyProviderOptions): LockProvider {
  return createRedisLockProvider({ failoverGuard: true, name: `redis-cluster(${opts.client.kind})`, ...opts, layout: 'cluster' });
}
