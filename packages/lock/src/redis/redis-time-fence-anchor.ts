// Fallback FenceAnchor: epochs from the Redis server clock (TIME, in ms). Survives restarts and
// FLUSHALL without another store, but is only monotonic while the server clock never steps back
// (NTP step, VM restore, failover to a host with a slower clock). Prefer a durable anchor (SQL).
import type { RedisClient } from './client.ts';
import type { FenceAnchor } from '../fence/fence-anchor.ts';

export class RedisTimeFenceAnchor implements FenceAnchor {
  readonly #client: RedisClient;
  #last = 0n;

  constructor(client: RedisClient) {
    this.#client = client;
  }

  async nextEpoch(signal?: AbortSignal): Promise<bigint> {
    signal?.throwIfAborted();
    const reply = (await this.#client.command(['TIME'])) as [string | number, string | number];
    const ms = BigInt(reply[0]) * 1000n + BigInt(reply[1]) / 1000n;
    // Two state losses within one millisecond from this process still get distinct epochs.
    this.#last = ms > this.#last ? ms : this.#last + 1n;
    return this.#last;
  }
}
