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
