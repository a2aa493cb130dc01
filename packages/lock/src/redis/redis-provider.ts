// Composition for the single-node Redis lock provider.
import type { FenceAnchor } from '../fence/fence-anchor.ts';
import { BackendLockProvider, type LockProviderOptions } from '../provider.ts';
import type { LockEvent, LockProvider } from '../types.ts';
import { RedisLockBackend, type RedisLockBackendOptions } from './redis-backend.ts';
import { RedisTimeFenceAnchor } from './redis-time-fence-anchor.ts';

export interface RedisLockProviderOptions extends LockProviderOptions, Omit<RedisLockBackendOptions, 'fenceAnchor' | 'emit'> {
  /** durable epoch source; default RedisTimeFenceAnchor (weaker: trusts the server clock) */
  fenceAnchor?: FenceAnchor;
}

export function createRedisLockProvider(opts: RedisLockProviderOptions): LockProvider {
  let emit: (e: LockEvent) => void = () => undefined;
  const backend = new RedisLockBackend({ ...opts, fenceAnchor: opts.fenceAnchor ?? new RedisTimeFenceAnchor(opts.client), emit: (e) => emit(e) });
  const provider = new BackendLockProvider(backend, opts);
  emit = (e) => {
    try {
      opts.onEvent?.(e);
    } catch {
      // hooks never break the lock machinery
    }
  };
  return provider;
}
