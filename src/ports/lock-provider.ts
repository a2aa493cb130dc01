// The lock port strategies are written against: the lock library's provider and lease
// contracts, and the errors a strategy must tell apart.
export type { Lease, LockProvider } from '@allot/lock';
export { LockError, StaleFenceError } from '@allot/lock';
export type { FencedTx } from './fence-anchor.ts';
