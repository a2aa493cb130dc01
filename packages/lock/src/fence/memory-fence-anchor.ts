// Process-local FenceAnchor for tests and single-process use: monotonic, not durable.
import type { FenceAnchor } from './fence-anchor.ts';

export class MemoryFenceAnchor implements FenceAnchor {
  #epoch: bigint;

  constructor(start = 0n) {
    this.#epoch = start;
  }

  async nextEpoch(signal?: AbortSignal): Promise<bigint> {
    signal?.throwIfAborted();
    return ++this.#epoch;
  }
}
