// In-process lock provider: the full lock contract (fences, fair mode, TTL, abort) for a single process.
import { BackendLockProvider, type LockProviderOptions } from '../provider.ts';
import { MemoryLockBackend } from './memory-backend.ts';
import type { LockProvider } from '../types.ts';

export function createMemoryLockProvider(opts: LockProviderOptions & { fenceBase?: bigint } = {}): LockProvider {
  return new BackendLockProvider(new MemoryLockBackend({ ...(opts.now ? { now: opts.now } : {}), ...(opts.fenceBase !== undefined ? { fenceBase: opts.fenceBase } : {}) }), opts);
}
