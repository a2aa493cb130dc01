// In-process lock store with the Redis scripts' semantics: owner-checked TTL locks, fences, a
// leased FIFO waiter queue (strict for fair callers), and head-targeted wake-ups. One process only.
// State is bounded by the live keys: a free key without waiters leaves no entry behind.
import { ScriptCode, errorForCode } from '../codes.ts';
import type { AttemptResult, ExtendResult, LockBackend, ReleaseResult, WakeSubscription } from '../types.ts';

interface Held {
  owner: string;
  expiresAt: number;
  /** the fence issued with this acquisition (a same-owner retry gets it back) */
  fence: bigint;
}

/** Fences stay below fenceBase + 2^40, the counter space of one epoch (as in Redis). */
const COUNTER_LIMIT = 1n << 40n;

export class MemoryLockBackend implements LockBackend {
  readonly name = 'memory';
  readonly #locks = new Map<string, Held>();
  /** One counter for every key: strictly increasing per key without any per-key fence state. */
  #counter = 0n;
  /** map sizes (locks + queues) at which the next sweep of expired entries runs */
  #sweepAt = 1024;
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

  /** Live entries: held locks and waiter queues (for tests and metrics). */
  get size(): { locks: number; queues: number; listeners: number } {
    return { locks: this.#locks.size, queues: this.#queues.size, listeners: this.#listeners.size };
  }

  /** Drops expired locks and queues of keys nobody touched since; amortised O(1) per acquisition
   * (runs when the maps doubled since the last sweep), so memory follows the live keys. */
  #sweep(now: number): void {
    if (this.#locks.size + this.#queues.size < this.#sweepAt) return;
    for (const [key, h] of this.#locks) if (h.expiresAt <= now) this.#locks.delete(key);
    for (const key of [...this.#queues.keys()]) this.#head(key, now);
    this.#sweepAt = Math.max(1024, 2 * (this.#locks.size + this.#queues.size));
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
    this.#sweep(now);
    const held = this.#holder(key, now);
    if (held?.owner === ownerId) {
      held.expiresAt = now + ttlMs;
      return { acquired: true, fence: held.fence };
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
    // A process-wide counter: every fence exceeds every fence this backend issued before, for any
    // key, so a key's entry can go when the key is free (no per-key counter to keep).
    if (this.#counter + 1n >= COUNTER_LIMIT) throw errorForCode(ScriptCode.fenceExhausted, key, ownerId, 'acquire');
    const fence = this.#fenceBase + ++this.#counter;
    this.#locks.set(key, { owner: ownerId, expiresAt: now + ttlMs, fence });
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
