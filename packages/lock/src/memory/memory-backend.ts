// In-process lock store with the Redis scripts' semantics: owner-checked TTL locks, per-key
// fences, a leased FIFO waiter queue (strict for fair callers), and head-targeted wake-ups. One process only.
import type { AttemptResult, ExtendResult, LockBackend, ReleaseResult, WakeSubscription } from '../types.ts';

interface Held {
  owner: string;
  expiresAt: number;
}

export class MemoryLockBackend implements LockBackend {
  readonly name = 'memory';
  readonly #locks = new Map<string, Held>();
  readonly #fences = new Map<string, bigint>();
  /** owner -> lease deadline; Map iteration order is arrival order */
  readonly #queues = new Map<string, Map<string, number>>();
  readonly #listeners = new Map<string, Set<(payload: string) => void>>();
  readonly #now: () => number;
  readonly #fenceBase: bigint;

  /** fenceBase: fences start above it. A process that fences durable writes passes
   * (epoch << 40n) with a fresh epoch from a FenceAnchor, so its fences outrank any earlier
   * process's (in-memory counters restart at every start). */
  constructor(opts: { now?: () => number; fenceBase?: bigint } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#fenceBase = opts.fenceBase ?? 0n;
  }

  #holder(key: string, now: number): Held | undefined {
    const h = this.#locks.get(key);
    if (h && h.expiresAt <= now) {
      this.#locks.delete(key);
      return undefined;
    }
    return h;
  }

  /** Drops expired entries at the head; returns the live head and its deadline. */
  #head(key: string, now: number): [string, number] | undefined {
    const q = this.#queues.get(key);
    if (!q) return undefined;
    for (const [owner, deadline] of q) {
      if (deadline > now) return [owner, deadline];
      q.delete(owner);
    }
    this.#queues.delete(key);
    return undefined;
  }

  async attempt(req: { key: string; ownerId: string; ttlMs: number; fair: boolean; waiterTtlMs: number }): Promise<AttemptResult> {
    const { key, ownerId, ttlMs, fair } = req;
    const now = this.#now();
    const held = this.#holder(key, now);
    if (held?.owner === ownerId) {
      held.expiresAt = now + ttlMs;
      return { acquired: true, fence: this.#fences.get(key) ?? 0n };
    }
    const enqueue = () => {
      let q = this.#queues.get(key);
      if (!q) this.#queues.set(key, (q = new Map()));
      q.set(ownerId, now + req.waiterTtlMs);
    };
    // Every caller that finds the lock held joins the queue, so a release wakes only the head.
    if (held) {
      enqueue();
      return { acquired: false, retryAfterMs: Math.max(1, held.expiresAt - now) };
    }
    // Free: the head takes it; a fair caller waits behind a live head, a non-fair one barges.
    const head = this.#head(key, now);
    if (head) {
      const q = this.#queues.get(key)!;
      if (head[0] !== ownerId && fair) {
        enqueue();
        return { acquired: false, retryAfterMs: Math.max(1, head[1] - now) };
      }
      q.delete(ownerId);
      if (q.size === 0) this.#queues.delete(key);
    }
    const fence = (this.#fences.get(key) ?? this.#fenceBase) + 1n;
    this.#fences.set(key, fence);
    this.#locks.set(key, { owner: ownerId, expiresAt: now + ttlMs });
    return { acquired: true, fence };
  }

  async extend(key: string, ownerId: string, ttlMs: number): Promise<ExtendResult> {
    const now = this.#now();
    const held = this.#holder(key, now);
    if (!held) return 'notHeld';
    if (held.owner !== ownerId) return 'notOwner';
    held.expiresAt = now + ttlMs;
    return 'extended';
  }

  async release(key: string, ownerId: string): Promise<ReleaseResult> {
    const now = this.#now();
    const held = this.#holder(key, now);
    if (!held) return 'notHeld';
    if (held.owner !== ownerId) return 'notOwner';
    this.#locks.delete(key);
    this.#wake(key, now);
    return 'released';
  }

  async refreshWaiter(key: string, ownerId: string, waiterTtlMs: number): Promise<void> {
    const q = this.#queues.get(key);
    if (q?.has(ownerId)) q.set(ownerId, this.#now() + waiterTtlMs);
  }

  async leaveQueue(key: string, ownerId: string): Promise<void> {
    const q = this.#queues.get(key);
    if (!q?.delete(ownerId)) return;
    if (q.size === 0) this.#queues.delete(key);
    const now = this.#now();
    if (!this.#holder(key, now)) this.#wake(key, now);
  }

  #wake(key: string, now: number): void {
    if (!this.#queues.has(key)) return; // no queue, no waiter (every waiter joins it when it fails)
    const head = this.#head(key, now);
    const payload = head ? `${head[0]} ${Math.max(1, head[1] - now)}` : '*';
    const ls = this.#listeners.get(key);
    if (!ls) return;
    // Deliver asynchronously, as a network round trip would.
    queueMicrotask(() => {
      for (const l of ls) l(payload);
    });
  }

  async subscribe(key: string, onWake: (payload: string) => void): Promise<WakeSubscription> {
    let ls = this.#listeners.get(key);
    if (!ls) this.#listeners.set(key, (ls = new Set()));
    const listener = (p: string) => onWake(p);
    ls.add(listener);
    return {
      close: () => {
        ls.delete(listener);
        if (ls.size === 0 && this.#listeners.get(key) === ls) this.#listeners.delete(key);
      },
    };
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }
}
