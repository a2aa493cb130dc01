// Durable source of fencing epochs: consulted when the lock backend has lost its state
// (restart without persistence, FLUSHALL), so fences issued afterwards still outrank old ones.

export interface FenceAnchor {
  /** Returns an epoch strictly greater than every epoch it returned before, durably. */
  nextEpoch(signal?: AbortSignal): Promise<bigint>;
}

/** A store transaction that can fence its writes: raises the resource's fence or refuses a stale one. */
export interface FencedTx {
  /** Throws StaleFenceError when a newer fence was already used on resource. */
  checkFence(resource: string, fence: bigint): Promise<void>;
}
