// Public API of the lock library (named exports only).
export * from './errors.ts';
export { ScriptCode, errorForCode } from './codes.ts';
export { DEFAULT_LOCK_OPTIONS, type AcquireOptions, type LockDefaults } from './options.ts';
export type { Lease, LockProvider, LockBackend, LockEvent, LockEventHook, UsingCallback, AttemptResult, ExtendResult, ReleaseResult, WakeSubscription } from './types.ts';
export { NOOP_LOCK_METRICS, HOOK_FAILED_WARNING, type LockMetrics, type HookErrorHandler } from './metrics.ts';
export { boundedResource, MAX_RESOURCE_LENGTH } from './resource.ts';
// registerLockMetrics (prom-client) is its own entry point, @allot/lock/prometheus, so that the
// library itself needs no prom-client.
export { BackendLockProvider, type LockProviderOptions } from './provider.ts';
export { MemoryLockBackend } from './memory/memory-backend.ts';
export { createMemoryLockProvider } from './memory/memory-provider.ts';
export { MemoryFenceAnchor } from './fence/memory-fence-anchor.ts';
export type { FenceAnchor, FencedTx } from './fence/fence-anchor.ts';
export { RedisLockBackend, FENCE_COUNTER_BITS, type RedisLockBackendOptions } from './redis/redis-backend.ts';
export { createRedisLockProvider, type RedisLockProviderOptions } from './redis/redis-provider.ts';
export { RedisTimeFenceAnchor } from './redis/redis-time-fence-anchor.ts';
export { LOCK_SCRIPTS_VERSION, lockScripts } from './redis/scripts.ts';
export type { RedisClient, RedisSubscriber, RedisArg } from './redis/client.ts';
export { fromIoredis, type IoredisLike, type IoredisSubscriberLike } from './redis/ioredis.ts';
export { fromNodeRedis, type NodeRedisLike, type NodeRedisSubscriberLike } from './redis/node-redis.ts';
export { fromIoredisCluster, type IoredisClusterLike, type IoredisClusterSubscriberLike } from './redis/ioredis.ts';
export { createRedisSentinelLockProvider, createRedisClusterLockProvider, type RedisTopologyProviderOptions } from './redis/redis-topologies.ts';
export type { RedisKeyLayout, RedisLockKeys } from './redis/redis-backend.ts';
export { PostgresLockBackend, type PostgresLockBackendOptions } from './postgres/postgres-backend.ts';
export { createPostgresLockProvider, type PostgresLockProvider, type PostgresLockProviderOptions } from './postgres/postgres-provider.ts';
export { pgLockNames, pgLockSchemaSql, PG_LOCK_FUNCTIONS_VERSION, type PgLockNames } from './postgres/schema.ts';
export type { PgPoolLike, PgSessionClient, PgQueryable, PgNotification } from './postgres/client.ts';
export { RedlockBackend, type RedlockBackendOptions } from './redlock/redlock-backend.ts';
export { createRedlockProvider, type RedlockProviderOptions } from './redlock/redlock-provider.ts';
export { QuorumError, type NodeCause } from './redlock/errors.ts';
export { EtcdLockBackend, type EtcdLockBackendOptions } from './etcd/etcd-backend.ts';
export { createEtcdLockProvider, type EtcdLockProviderOptions } from './etcd/etcd-provider.ts';
export { EtcdClient, EtcdUnavailableError, EtcdRequestError, EtcdAuthError, type EtcdClientOptions } from './etcd/etcd-client.ts';
// caller-chosen identity and adoption (provider.adopt), renewal control; Mutex lives in @allot/lock/compat
export type { AdoptOptions } from './options.ts';
export { FENCE_REVISION_BITS as ETCD_FENCE_REVISION_BITS } from './etcd/etcd-backend.ts';
