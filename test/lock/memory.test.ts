// Runs the lock contract on the in-process provider.
import { lockContract } from './contract.ts';
import { BackendLockProvider, MemoryLockBackend } from '../../packages/lock/src/index.ts';

lockContract('memory', async () => {
  const backend = new MemoryLockBackend();
  return {
    make: (opts) => new BackendLockProvider(backend, opts),
    backend: () => backend,
    close: () => backend.close(),
  };
});
