// LockBackend on Redis (one node, Sentinel or Cluster): every state change is one Lua script;
// fences are (epoch << 40) | per-key counter, with the epoch re-issued by a FenceAnchor when Redis
// lost its state, when it expired (epochTtlMs: bounded fencing state), or (failover guard) when
// the master changed since the epoch was installed.
import type { RedisClient } from './client.ts';
import type { FenceAnchor } from '../fence/fence-anchor.ts';
import { ScriptCode, errorForCode } from '../codes.ts';
import { LockBackendError, LockError } from '../errors.ts';
import type { AttemptResult, ExtendResult, LockBackend, LockEvent, ReleaseResult, WakeSubscription } from '../types.ts';
import { lockScripts, runScript, type LockScript, type ScriptName } from './scripts.ts';
import { WakeHub } from './wake-hub.ts';
import { boundedResource } from '../resource.ts';

export const FENCE_COUNTER_BITS = 40n;

type ScriptReply = [number, ...(string | number)[]];

function releaseResult(reply: unknown): ReleaseResult {
  const code = Number(reply);
  return code === ScriptCode.ok ? 'released' : code === ScriptCode.notOwner ? 'notOwner' : 'notHeld';
}
const MAX_EPOCH_INSTALLS = 3;

/** An owner id a provider generated, "<16 hex provider id>:<seq>": the pattern includes/wakeNext.lua
 * matches to wake it on its provider's own channel. */
const PROVIDER_OWNER_ID = /^([0-9A-Fa-f]{16}):[0-9A-Za-z]+$/;

/** Fencing state expiry defaults (docs/locks.md, "Bounded fencing state"). */
export const REDIS_FENCE_TTL_DEFAULTS = Object.freeze({ epochTtlMs: 3_600_000, fenceTtlMs: 3_600_000 });

/** How the keys are laid out: 'single' (one node or Sentinel: one epoch key per prefix) or
 * 'cluster' (every key of a lock in one hash slot, the epoch key included). */
export type RedisKeyLayout = 'single' | 'cluster';

export interface RedisLockKeys {
  lock: string;
  fence: string;
  queue: string;
  leases: string;
  /** hand-off requests of the queued waiters (hash owner id -> ttl ms) */
  handoff: string;
  channel: string;
  epoch: string;
}

/** The channels a waiter listens on (docs/locks.md, "Waiting: pub/sub wake-ups"). */
export interface RedisWakeChannels {
  /** the lock's channel */
  key: string;
  /** its provider's own channel; undefined for a caller-chosen identifier */
  owner: string | undefined;
}

export interface RedisLockBackendOptions {
  client: RedisClient;
  fenceAnchor: FenceAnchor;
  /** key prefix; default "allot:lock:" */
  prefix?: string;
  /** default 'single'; 'cluster' puts each lock's keys, its epoch included, in one hash slot */
  layout?: RedisKeyLayout;
  /** Treat an epoch installed on another master as missing (a failover or a restart may have lost
   * the last fence increments). One INFO per acquisition script; default: true for 'cluster' and
   * for providers built for Sentinel, false for a single node. */
  failoverGuard?: boolean;
  /** How long an installed epoch lives; when it expires the next acquisition installs a newer one
   * from the anchor (one anchor call per epochTtlMs: per prefix, or per lock in the cluster layout).
   * 0: epochs never expire (and fence counters then never either). Default 1 hour. */
  epochTtlMs?: number;
  /** How long a lock's fence counter lives after its last fence, and never less than the epoch it
   * was issued under: an idle lock leaves no key behind, and a counter that restarts does so under
   * a newer epoch. 0: counters never expire. Default 1 hour. Keep it above the longest holding that
   * may be adopted (adopt compares the counter). */
  fenceTtlMs?: number;
  /** name shown in metrics and errors; default "redis(<client kind>)" */
  name?: string;
  /** how long an unused wake-up channel stays subscribed; default 2000 ms */
  subscriberLingerMs?: number;
  /** bound on connecting the subscriber and on SUBSCRIBE; on expiry the waiter polls; default 1000 ms */
  subscribeTimeoutMs?: number;
  emit?: (e: LockEvent) => void;
}

/** A lock name inside a hash tag: braces and '%' percent-encoded, so every key of one lock hashes
 * to one slot whatever the name holds, and distinct names stay distinct. */
function hashTagged(key: string): string {
  return /[{}%]/.test(key) ? key.replace(/[{}%]/g, (c) => (c === '{' ? '%7B' : c === '}' ? '%7D' : '%25')) : key;
}

function ttlArg(name: string, ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`${name} must be a whole number of ms >= 0, got ${ms}`);
  return String(ms);
}

export class RedisLockBackend implements LockBackend {
  readonly name: string;
  readonly prefix: string;
  readonly #client: RedisClient;
  readonly #anchor: FenceAnchor;
  readonly #hub: WakeHub;
  readonly #emit: (e: LockEvent) => void;
  readonly #scripts: Record<ScriptName, LockScript>;
  readonly #cluster: boolean;
  /** '1' when the failover guard is on: the scripts' guard argument */
  readonly #guard: '0' | '1';
  readonly #epochTtl: string;
  readonly #fenceTtl: string;
  /** prefix of the providers' own wake-up channels (classic pub/sub: every node of a cluster
   * carries every channel, so they need no hash tag) */
  readonly #ownerChannels: string;
  #fetching: Promise<bigint> | undefined;
  #nextFetch: Promise<bigint> | undefined;

  constructor(opts: RedisLockBackendOptions) {
    this.#client = opts.client;
    this.#anchor = opts.fenceAnchor;
    this.prefix = opts.prefix ?? 'allot:lock:';
    this.#cluster = opts.layout === 'cluster';
    this.#ownerChannels = `${this.prefix}w@`;
    this.#guard = (opts.failoverGuard ?? this.#cluster) ? '1' : '0';
    this.#epochTtl = ttlArg('epochTtlMs', opts.epochTtlMs ?? REDIS_FENCE_TTL_DEFAULTS.epochTtlMs);
    this.#fenceTtl = ttlArg('fenceTtlMs', opts.fenceTtlMs ?? REDIS_FENCE_TTL_DEFAULTS.fenceTtlMs);
    this.name = opts.name ?? `redis(${opts.client.kind})`;
    this.#emit = opts.emit ?? (() => undefined);
    this.#scripts = Object.fromEntries([...lockScripts()]) as Record<ScriptName, LockScript>;
    this.#hub = new WakeHub(opts.client, {
      lingerMs: opts.subscriberLingerMs ?? 2_000,
      subscribeTimeoutMs: opts.subscribeTimeoutMs ?? 1_000,
      onError: (error) => this.#emit({ type: 'backendError', error }),
    });
  }

  /** The Redis keys of a lock; distinct single-letter namespaces keep user keys from colliding.
   * A lock key longer than 200 characters appears in them in its bounded form (boundedResource). */
  keys(name: string): RedisLockKeys {
    const p = this.prefix;
    const key = boundedResource(name);
    if (this.#cluster) {
      // Everything up to the closing brace is common to the lock's keys: one slot for all of them.
      const t = `${p}{${hashTagged(key)}}`;
      return { lock: `${t}:l`, fence: `${t}:f`, queue: `${t}:q`, leases: `${t}:ql`, handoff: `${t}:qh`, channel: `${t}:w`, epoch: `${t}:e` };
    }
    return { lock: `${p}l:${key}`, fence: `${p}f:${key}`, queue: `${p}q:${key}`, leases: `${p}ql:${key}`, handoff: `${p}qh:${key}`, channel: `${p}w:${key}`, epoch: `${p}epoch` };
  }

  #run(name: ScriptName, key: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    return runScript(this.#client, this.#scripts[name], keys, args, (error) => new LockBackendError(key, name, error));
  }

  attempt(req: { key: string; ownerId: string; ttlMs: number; fair: boolean; waiterTtlMs: number; queued: boolean; handoff?: boolean | undefined; signal?: AbortSignal | undefined }): Promise<AttemptResult> {
    // A non-fair first attempt may barge, so it needs no queue: the 3-key fast path. Every other
    // attempt (fair, or after a failure, when the caller may be queued) runs the full script.
    const fast = !req.fair && !req.queued;
    const script: ScriptName = fast ? 'tryLock' : 'acquireLock';
    let keys: string[];
    if (this.#cluster) {
      const k = this.keys(req.key);
      keys = fast ? [k.lock, k.fence, k.epoch] : [k.lock, k.fence, k.epoch, k.queue, k.leases, k.handoff];
    } else {
      const p = this.prefix;
      const key = boundedResource(req.key);
      keys = fast ? [`${p}l:${key}`, `${p}f:${key}`, `${p}epoch`] : [`${p}l:${key}`, `${p}f:${key}`, `${p}epoch`, `${p}q:${key}`, `${p}ql:${key}`, `${p}qh:${key}`];
    }
    const args = fast
      ? [req.ownerId, req.ttlMs, this.#guard, this.#fenceTtl]
      : [req.ownerId, req.ttlMs, req.fair ? '1' : '0', req.waiterTtlMs, req.queued ? '1' : '0', this.#guard, this.#fenceTtl, req.handoff ? '1' : '0'];
    // The common case settles in one step; only a missing epoch takes the slow path.
    return this.#run(script, req.key, keys, args).then((r) => this.#attemptResult(req, script, keys, args, r as ScriptReply, 0));
  }

  #attemptResult(req: { key: string; ownerId: string; signal?: AbortSignal | undefined }, script: ScriptName, keys: string[], args: (string | number)[], r: ScriptReply, installs: number): AttemptResult | Promise<AttemptResult> {
    const code = Number(r[0]);
    if (code >= 0) return { acquired: true, fence: (BigInt(r[1]!) << FENCE_COUNTER_BITS) | BigInt(r[2]!) };
    if (code === ScriptCode.locked || code === ScriptCode.queued) {
      return script === 'tryLock' ? { acquired: false, retryAfterMs: Math.max(1, Number(r[1])), notQueued: true } : { acquired: false, retryAfterMs: Math.max(1, Number(r[1])), serverMs: Number(r[2]) };
    }
    if (code === ScriptCode.epochMissing && installs < MAX_EPOCH_INSTALLS) {
      return this.installEpoch(req.key, req.signal)
        .then(() => this.#run(script, req.key, keys, args))
        .then((again) => this.#attemptResult(req, script, keys, args, again as ScriptReply, installs + 1));
    }
    throw code === ScriptCode.epochMissing ? new LockBackendError(req.key, 'acquire', new Error('fence epoch vanished again right after installation')) : errorForCode(code, req.key, req.ownerId, 'acquire');
  }

  /**
   * Installs a fresh epoch from the anchor on the key's epoch key (the one key of a single node,
   * or the lock's own in a cluster), unless a valid equal or higher one is there already. Call it
   * after an attempt found the epoch missing (or, guarded, from another master).
   */
  async installEpoch(key: string, signal?: AbortSignal): Promise<void> {
    const epochKey = this.keys(key).epoch;
    try {
      for (let tries = 0; ; tries++) {
        const epoch = await this.#freshEpoch(signal);
        const r = (await runScript(this.#client, this.#scripts.installEpoch, [epochKey], [epoch.toString(), this.#guard, this.#epochTtl])) as [number, string];
        const code = Number(r[0]);
        this.#emit({ type: 'epochInstalled', epoch: BigInt(r[1]), installed: code === 1 });
        // -3: a higher epoch from a previous master is there (another client fetched it after
        // this one's fetch began): only a newer fetch can outrank it.
        if (code >= 0) return;
        if (tries + 1 >= MAX_EPOCH_INSTALLS) throw new Error(`epoch ${r[1]} from another master outranks ${MAX_EPOCH_INSTALLS} fresh epochs in a row`);
      }
    } catch (error) {
      throw error instanceof LockError ? error : new LockBackendError(key, 'installEpoch', error);
    }
  }

  /**
   * An epoch from the anchor whose request began after this call: so it outranks every epoch
   * installed before the caller saw its epoch missing (a request already in flight may have been
   * answered before one of those was issued). Concurrent callers share one request.
   */
  #freshEpoch(signal?: AbortSignal): Promise<bigint> {
    if (!this.#fetching) return this.#startFetch(signal);
    this.#nextFetch ??= this.#fetching
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        this.#nextFetch = undefined;
        return this.#startFetch(signal);
      });
    return this.#nextFetch;
  }

  #startFetch(signal?: AbortSignal): Promise<bigint> {
    const p = this.#anchor.nextEpoch(signal).then((epoch) => {
      if (epoch < 1n) throw new Error(`fence anchor returned epoch ${epoch}; epochs start at 1`);
      return epoch;
    });
    this.#fetching = p;
    const clear = () => {
      if (this.#fetching === p) this.#fetching = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  async extend(key: string, ownerId: string, ttlMs: number): Promise<ExtendResult> {
    const code = Number(await this.#run('extendLock', key, [this.keys(key).lock], [ownerId, ttlMs]));
    return code === ScriptCode.ok ? 'extended' : code === ScriptCode.notOwner ? 'notOwner' : 'notHeld';
  }

  release(key: string, ownerId: string): Promise<ReleaseResult> {
    if (this.#cluster) {
      const k = this.keys(key);
      return this.#run('releaseLock', key, [k.lock, k.queue, k.leases, k.handoff, k.fence, k.epoch], [ownerId, k.channel, this.#ownerChannels, this.#guard, this.#fenceTtl]).then(releaseResult);
    }
    const p = this.prefix;
    const k = boundedResource(key);
    return this.#run('releaseLock', key, [`${p}l:${k}`, `${p}q:${k}`, `${p}ql:${k}`, `${p}qh:${k}`, `${p}f:${k}`, `${p}epoch`], [ownerId, `${p}w:${k}`, this.#ownerChannels, this.#guard, this.#fenceTtl]).then(
      releaseResult,
    );
  }

  /**
   * A wake-up that hands this waiter the lock (includes/wakeNext.lua): "<owner id> <ttl ms>
   * <epoch> <counter> <server ms>". Returns the fence and the server time of the hand-off, or
   * undefined for any other wake-up (or one naming another waiter).
   */
  parseHandoff(payload: string, ownerId: string): { fence: bigint; serverMs: number } | undefined {
    const f = payload.split(' ');
    if (f.length !== 5 || f[0] !== ownerId) return undefined;
    return { fence: (BigInt(f[2]!) << FENCE_COUNTER_BITS) | BigInt(f[3]!), serverMs: Number(f[4]) };
  }

  /** The channels a waiter with this owner id listens on: its provider's own channel (owner ids a
   * provider generated) and the lock's channel, which carries the rest. */
  wakeChannels(key: string, ownerId: string): RedisWakeChannels {
    const m = PROVIDER_OWNER_ID.exec(ownerId);
    return { key: this.keys(key).channel, owner: m ? this.#ownerChannels + m[1] : undefined };
  }

  async refreshWaiter(key: string, ownerId: string, waiterTtlMs: number): Promise<void> {
    const k = this.keys(key);
    await this.#run('refreshWaiter', key, [k.queue, k.leases], [ownerId, waiterTtlMs]);
  }

  /** giveBack (default true): a lock held under ownerId, handed to it while it was giving up, is
   * released too (leaveQueue-6.lua); Redlock passes false for its nodes. */
  async leaveQueue(key: string, ownerId: string, giveBack = true): Promise<void> {
    const k = this.keys(key);
    await this.#run('leaveQueue', key, [k.lock, k.queue, k.leases, k.handoff, k.fence, k.epoch], [ownerId, k.channel, this.#ownerChannels, this.#guard, this.#fenceTtl, giveBack ? '1' : '0']);
  }

  subscribe(key: string, onWake: (payload: string) => void): Promise<WakeSubscription> {
    return this.#hub.subscribe(this.keys(key).channel, onWake);
  }

  /**
   * Wake-ups for one waiter: a release wakes a head whose owner id a provider generated on that
   * provider's own channel (one delivery per release whatever the number of waiting processes),
   * and uses the lock's channel for everything else (caller-chosen identifiers, '*', a head
   * nobody received the message for). So the waiter listens on both; the shared subscriber
   * connection subscribes to each channel once.
   */
  async subscribeOwner(key: string, ownerId: string, onWake: (payload: string) => void): Promise<WakeSubscription> {
    const ch = this.wakeChannels(key, ownerId);
    if (ch.owner === undefined) return this.#hub.subscribe(ch.key, onWake);
    const subs = await Promise.allSettled([this.#hub.subscribe(ch.key, onWake), this.#hub.subscribe(ch.owner, onWake, ownerId)]);
    const failed = subs.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    const close = () => {
      for (const s of subs) if (s.status === 'fulfilled') s.value.close();
    };
    if (failed) {
      close();
      throw failed.reason;
    }
    return { close };
  }

  close(): Promise<void> {
    return this.#hub.close();
  }
}
