// The fencing ports (durable epochs, fenced store transactions) belong to the lock library,
// @allot/lock; re-exported here so the SQL adapters and strategies name them as ports.
export type { FenceAnchor, FencedTx } from '@allot/lock';
