// Composition for the Redlock provider: the generic provider over a RedlockBackend. Waiters are
// woken by pub/sub from a majority of the nodes, or poll with jittered backoff (pubsub: false, or
// when a majority cannot subscribe).
import { BackendLockProvider, type LockProviderOptions } from '../provider.ts';
import { callHook, hookErrorReporter } from '../metrics.ts';
import type { LockEvent, LockProvider } from '../types.ts';
import { RedlockBackend, type RedlockBackendOptions } from './redlock-backend.ts';

export interface RedlockProviderOptions extends LockProviderOptions, Omit<RedlockBackendOptions, 'emit'> {}

export function createRedlockProvider(opts: RedlockProviderOptions): LockProvider {
  const onHookError = hookErrorReporter(opts.onHookError);
  const onEvent = opts.onEvent;
  // hooks never break the lock machinery
  const emit = (e: LockEvent) => (onEvent ? callHook('onEvent', () => onEvent(e), onHookError) : undefined);
  const backend = new RedlockBackend({ ...opts, emit });
  return new BackendLockProvider(backend, { ...opts, onHookError });
}
