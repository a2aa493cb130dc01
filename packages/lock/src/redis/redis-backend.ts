// LockBackend on a single Redis node: every state change is one Lua script; fences are
// (epoch << 40) | per-key counter, with the epoch re-issued by a FenceAnchor when Redis lost its state.
import type { RedisClient } from './client.ts';
import type { FenceAnchor } from '../fence/fence-anchor.ts';
import { ScriptCode, errorForCode } from '../codes.ts';
import { LockBackendError, LockError } from '../errors.ts';
import type { AttemptResult, ExtendResult, LockBackend, LockEvent, ReleaseResult, WakeSubscription } from '../types.ts';
import { lockScript, lockScripts, runScript, type LockScript, type ScriptName } from './scripts.ts';
import { WakeHub } from './wake-hub.ts';
import { boundedResource } from '../resource.ts';

export const FENCE_COUNTER_BITS = 40n;

type ScriptReply = [number, ...(string | number)[]];

function releaseResult(reply: unknown): ReleaseResult {
  const code = Number(reply);
  return code === ScriptCode.ok ? 'released' : code === ScriptCode.notOwner ? 'notOwner' : 'notHeld';
}
const MAX_EPOCH_INSTALLS = 3;

export interface RedisLockBackendOptions {
  client: RedisClient;
  fenceAnchor: FenceAnchor;
  /** key prefix; default "allot:lock:" */
  prefix?: string;
  /** how long an unused wake-up channel stays subscribed; default 2000 ms */
  subscriberLingerMs?: number;
  /** bound on connecting the subscriber and on SUBSCRIBE; on expiry the waiter polls; default 1000 ms */
  subscribeTimeoutMs?: number;
  emit?: (e: LockEvent) => void;
}

export class RedisLockBackend implements LockBackend {
  readonly name: string;
  readonly prefix: string;
  readonly #client: RedisClient;
  readonly #anchor: FenceAnchor;
  readonly #hub: WakeHub;
  readonly #emit: (e: LockEvent) => void;
  readonly #scripts: Record<ScriptName, LockScript>;
  #installing: Promise<void> | undefined;

  constructor(opts: RedisLockBackendOptions) {
    this.#client = opts.client;
    this.#anchor = opts.fenceAnchor;
    this.prefix = opts.prefix ?? 'allot:lock:';
    this.name = `redis(${opts.client.kind})`;
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
  keys(name: string) {
    const p = this.prefix;
    const key = boundedResource(name);
    return { lock: `${p}l:${key}`, fence: `${p}f:${key}`, queue: `${p}q:${key}`, leases: `${p}ql:${key}`, channel: `${p}w:${key}`, epoch: `${p}epoch` };
  }

  #run(name: ScriptName, key: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    return runScript(this.#client, this.#scripts[name], keys, args, (error) => new LockBackendError(key, name, error));
  }

  attempt(req: { key: string; ownerId: string; ttlMs: number; fair: boolean; waiterTtlMs: number; queued: boolean; signal?: AbortSignal | undefined }): Promise<AttemptResult> {
    const p = this.prefix;
    const key = boundedResource(req.key);
    // A non-fair first attempt may barge, so it needs no queue: the 3-key fast path. Every other
    // attempt (fair, or after a failure, when the caller may be queued) runs the full script.
    const fast = !req.fair && !req.queued;
    const script: ScriptName = fast ? 'tryLock' : 'acquireLock';
    const keys = fast ? [`${p}l:${key}`, `${p}f:${key}`, `${p}epoch`] : [`${p}l:${key}`, `${p}f:${key}`, `${p}epoch`, `${p}q:${key}`, `${p}ql:${key}`];
    const args = fast ? [req.ownerId, req.ttlMs] : [req.ownerId, req.ttlMs, req.fair ? '1' : '0', req.waiterTtlMs, req.queued ? '1' : '0'];
    // The common case settles in one step; only a missing epoch takes the slow path.
    return this.#run(script, req.key, keys, args).then((r) => this.#attemptResult(req, script, keys, args, r as ScriptReply, 0));
  }

  #attemptResult(req: { key: string; ownerId: string; signal?: AbortSignal | undefined }, script: ScriptName, keys: string[], args: (string | number)[], r: ScriptReply, installs: number): AttemptResult | Promise<AttemptResult> {
    const code = Number(r[0]);
    if (code >= 0) return { acquired: true, fence: (BigInt(r[1]!) << FENCE_COUNTER_BITS) | BigInt(r[2]!) };
    if (code === ScriptCode.locked || code === ScriptCode.queued) return { acquired: false, retryAfterMs: Math.max(1, Number(r[1])), notQueued: script === 'tryLock' };
    if (code === ScriptCode.epochMissing && installs < MAX_EPOCH_INSTALLS) {
      return this.installEpoch(req.key, req.signal)
        .then(() => this.#run(script, req.key, keys, args))
        .then((again) => this.#attemptResult(req, script, keys, args, again as ScriptReply, installs + 1));
    }
    throw code === ScriptCode.epochMissing ? new LockBackendError(req.key, 'acquire', new Error('fence epoch vanished again right after installation')) : errorForCode(code, req.key, req.ownerId, 'acquire');
  }

  /** Obtains a new epoch from the anchor and installs it if higher; concurrent callers share one install. */
  installEpoch(key: string, signal?: AbortSignal): Promise<void> {
    this.#installing ??= (async () => {
      try {
        const epoch = await this.#anchor.nextEpoch(signal);
        if (epoch < 1n) throw new Error(`fence anchor returned epoch ${epoch}; epochs start at 1`);
        const r = (await runScript(this.#client, lockScript('installEpoch'), [this.keys(key).epoch], [epoch.toString()])) as [number, string];
        this.#emit({ type: 'epochInstalled', epoch: BigInt(r[1]), installed: Number(r[0]) === 1 });
      } catch (error) {
        throw error instanceof LockError ? error : new LockBackendError(key, 'installEpoch', error);
      } finally {
        this.#installing = undefined;
      }
    })();
    return this.#installing;
  }

  async extend(key: string, ownerId: string, ttlMs: number): Promise<ExtendResult> {
    const code = Number(await this.#run('extendLock', key, [this.keys(key).lock], [ownerId, ttlMs]));
    return code === ScriptCode.ok ? 'extended' : code === ScriptCode.notOwner ? 'notOwner' : 'notHeld';
  }

  release(key: string, ownerId: string): Promise<ReleaseResult> {
    const p = this.prefix;
    const k = boundedResource(key);
    return this.#run('releaseLock', key, [`${p}l:${k}`, `${p}q:${k}`, `${p}ql:${k}`], [ownerId, `${p}w:${k}`]).then(releaseResult);
  }

  async refreshWaiter(key: string, ownerId: string, waiterTtlMs: number): Promise<void> {
    const k = this.keys(key);
    await this.#run('refreshWaiter', key, [k.queue, k.leases], [ownerId, waiterTtlMs]);
  }

  async leaveQueue(key: string, ownerId: string): Promise<void> {
    const k = this.keys(key);
    await this.#run('leaveQueue', key, [k.lock, k.queue, k.leases], [ownerId, k.channel]);
  }

  subscribe(key: string, onWake: (payload: string) => void): Promise<WakeSubscription> {
    return this.#hub.subscribe(this.keys(key).channel, onWake);
  }

  close(): Promise<void> {
    return this.#hub.close();
  }
}
