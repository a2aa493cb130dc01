// Composition for the single-node Redis lock provider.
import type { FenceAnchor } from '../fence/fence-anchor.ts';
import { BackendLockProvider, type LockProviderOptions } from '../provider.ts';
import { callHook, hookErrorReporter } from '../metrics.ts';
import type { LockEvent, LockProvider } from '../types.ts';
import { RedisLockBackend, type RedisLockBackendOptions } from './redis-backend.ts';
import { RedisTimeFenceAnchor } from './redis-time-fence-anchor.ts';

export interface RedisLockProviderOptions extends LockProviderOptions, Omit<RedisLockBackendOptions, 'fenceAnchor' | 'emit'> {
  /** durable epoch source; default RedisTimeFenceAnchor (weaker: trusts the server clock) */
  fenceAnchor?: FenceAnchor;
}

export function createRedisLockProvider(opts: RedisLockProviderOptions): LockProvider {
  // One reporter for the backend's events and the provider's hooks: each hook reported once.
  const onHookError = hookErrorReporter(opts.onHookError);
  const onEvent = opts.onEvent;
  // hooks never break the lock machinery
  const emit = (e: LockEvent) => (onEvent ? callHook('onEvent', () => onEvent(e), onHookError) : undefined);
  const backend = new RedisLockBackend({ ...opts, fenceAnchor: opts.fenceAnchor ?? new RedisTimeFenceAnchor(opts.client), emit });
  return new BackendLockProvider(backend, { ...opts, onHookError });
}
