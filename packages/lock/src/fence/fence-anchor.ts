// Durable source of fencing epochs: consulted when the lock backend has lost its state
// (restart without persistence, FLUSHALL), so fences issued afterwards still outrank old ones.

export interface FenceAnchor {
  /** Returns an epoch strictly greater than every epoch it returned before, durably. */
  nextEpoch(signal?: AbortSignal): Promise<bigint>;
}

/** A store transaction that can fence its writes. */
export interface FencedTx {
  /** Raises the resource's fence to `fence` and holds it until commit, so fenced writers of a
   * resource commit in fence order. False, changing nothing, when a newer fence was already
   * used on the resource, or the same fence by another holder: the caller must not write.
   * holder: the lease's owner id (the same lease may use its fence in several transactions). */
  raiseFence(resource: string, fence: bigint, holder: string): Promise<boolean>;
}
