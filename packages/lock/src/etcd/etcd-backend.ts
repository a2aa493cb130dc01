// The etcd LockBackend, after etcd's concurrency/mutex.go: one lease per holder or waiter, a key
// <prefix><lock>/<leaseId> created in a txn (create_revision == 0), holders in create-revision
// order, each waiter watching only its predecessor's deletion, the create revision as the fence.
import type { AttemptResult, ExtendResult, LockBackend, ReleaseResult, WakeSubscription } from '../types.ts';
import { FenceExhaustedError } from '../errors.ts';
import type { FenceAnchor } from '../fence/fence-anchor.ts';
import { EtcdClient, type EtcdHeader, type EtcdKv, type WatchHandle } from './etcd-client.ts';

export interface EtcdLockBackendOptions {
  client: EtcdClient;
  /** close the client with the backend (default true) */
  ownsClient?: boolean;
  /** key prefix; default "allot:lock:" */
  prefix?: string;
  /** a waiter re-checks its place at least this often, whatever its watch says (a safety net: a
   * broken watch wakes it at once). Default 3000 ms. */
  recheckMs?: number;
  /** optional: fences become (epoch << 40) | revision with an epoch from this anchor, installed
   * once per etcd cluster, so they outrank fences of an earlier cluster or another lock backend
   * (the service passes its SQL anchor). Without it the fence is the create revision itself. */
  fenceAnchor?: FenceAnchor;
}

/** One acquisition known to this backend: its queue key and the lease it rides on. */
interface Entry {
  lock: string;
  ownerId: string;
  etcdKey: string;
  leaseId: string;
  /** TTL (s) the lease was granted for */
  leaseTtlS: number;
  /** create revision of etcdKey: place in the queue, and the fence once held */
  rev: bigint;
  holder: boolean;
  /** local deadline: at ttlMs (holder) or waiterTtlMs (waiter) without renewal the lease is revoked */
  timer: NodeJS.Timeout | undefined;
  watch: WatchHandle | undefined;
  watched: string | undefined;
  /** the predecessor was deleted: in the usual FIFO flow this waiter is now first */
  predGone?: boolean;
  /** watches of this waiter that failed in a row (reset when one reports a deletion) */
  watchFailures?: number;
  /** a delayed wake-up after a failed watch */
  rewatch?: NodeJS.Timeout | undefined;
}

interface TxnReply {
  header?: EtcdHeader;
  succeeded?: boolean;
  responses?: { response_range?: { kvs?: EtcdKv[]; header?: EtcdHeader } }[];
}
interface RangeReply {
  header?: EtcdHeader;
  kvs?: EtcdKv[];
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');
/** etcd leases have whole-second TTLs: never shorter than the lock's own TTL */
const ttlSeconds = (ms: number) => Math.max(1, Math.ceil(ms / 1_000));
// A wake-up addressed to one waiter; other waiters of the lock ignore it (the limit is no limit).
const NO_LIMIT = ' 2147483647';
const KEEPALIVE_BATCH_MS = 5;
/** with a fence anchor, the low bits of a fence hold the create revision */
export const FENCE_REVISION_BITS = 40n;

export class EtcdLockBackend implements LockBackend {
  readonly name = 'etcd';
  readonly #client: EtcdClient;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  readonly #recheckMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #subs = new Map<string, Set<(payload: string) => void>>();
  #closed = false;
  #kaPending = new Map<string, { resolve: (ttl: number) => void; reject: (e: unknown) => void }[]>();
  #kaTimer: NodeJS.Timeout | undefined;
  readonly #local = new Map<string, number>();
  readonly #anchor: FenceAnchor | undefined;
  #epoch: { cluster: string; epoch: bigint } | undefined;
  #epochLoading: Promise<{ cluster: string; epoch: bigint }> | undefined;

  constructor(opts: EtcdLockBackendOptions) {
    this.#client = opts.client;
    this.#ownsClient = opts.ownsClient ?? true;
    this.#prefix = opts.prefix ?? 'allot:lock:';
    this.#recheckMs = opts.recheckMs ?? 3_000;
    this.#anchor = opts.fenceAnchor;
  }

  get client(): EtcdClient {
    return this.#client;
  }

  /** The queue directory of a lock: '/' and '%' in the name are escaped so "a" never sees "a/b"'s keys. */
  #dir(lock: string): string {
    return `${this.#prefix}${lock.replace(/%/g, '%25').replace(/\//g, '%2F')}/`;
  }

  #range(lock: string): { key: string; range_end: string } {
    const dir = this.#dir(lock);
    // '/' + 1 = '0': the end of the directory's key range
    return { key: b64(dir), range_end: b64(`${dir.slice(0, -1)}0`) };
  }

  /** the queue's head: the key with the smallest create revision */
  #first(lock: string): { request_range: Record<string, unknown> } {
    return { request_range: { ...this.#range(lock), sort_target: 'CREATE', sort_order: 'ASCEND', limit: 1 } };
  }

  async attempt(req: { key: string; ownerId: string; ttlMs: number; fair: boolean; waiterTtlMs: number; queued: boolean; signal?: AbortSignal | undefined }): Promise<AttemptResult> {
    const id = entryId(req.key, req.ownerId);
    let e = this.#entries.get(id);
    if (!e && !req.fair && !req.queued) {
      // A lock this backend already waits for or is trying is not free: no round trip.
      if (this.#local.has(req.key)) return { acquired: false, retryAfterMs: this.#recheckMs, notQueued: true };
      this.#busy(req.key, 1);
      try {
        const fast = await this.#fastPath(req);
        if (fast) return fast;
      } finally {
        this.#busy(req.key, -1);
      }
      e = this.#entries.get(id);
    }
    for (let round = 0; round < 3; round++) {
      // head: the queue's first key; pred: the key just before mine; fromRev: watch pred from here
      let view: QueueView | undefined;
      if (!e) {
        const q = await this.#enqueue(req);
        e = q.entry;
        view = q.view;
      } else if (e.predGone && !e.holder && ttlSeconds(req.ttlMs) !== e.leaseTtlS) {
        // Woken by the predecessor's deletion: most likely first now. One txn checks that and moves
        // the key onto a lease with the lock's TTL, granted after this attempt began.
        e.predGone = false;
        const ttlS = ttlSeconds(req.ttlMs);
        const leaseId = await this.#grant(ttlS, req.signal);
        const r = await this.#client.call<TxnReply>('/v3/kv/txn', {
          compare: [
            { key: b64(e.etcdKey), target: 'CREATE', result: 'EQUAL', create_revision: e.rev.toString() },
            // every key of the queue was created at or after mine: I am first
            { ...this.#range(req.key), target: 'CREATE', result: 'GREATER', create_revision: (e.rev - 1n).toString() },
          ],
          success: [{ request_put: { key: b64(e.etcdKey), value: b64(req.ownerId), lease: leaseId } }],
          failure: [this.#first(req.key), this.#pred(req.key, e.rev), { request_range: { key: b64(e.etcdKey) } }],
        }, req.signal).catch((error: unknown) => {
          this.#revoke(leaseId);
          throw error;
        });
        if (r.succeeded) {
          const old = e.leaseId;
          e.leaseId = leaseId;
          e.leaseTtlS = ttlS;
          this.#revoke(old);
          return this.#promote(e, req.ttlMs);
        }
        this.#revoke(leaseId);
        if (BigInt(kvAt(r, 2)?.create_revision ?? '0') !== e.rev) {
          this.#drop(e, false);
          e = undefined;
          continue;
        }
        view = { head: kvAt(r, 0), pred: kvAt(r, 1), fromRev: BigInt(r.header?.revision ?? '0') + 1n };
      } else {
        // Is my key still there (its lease may have lapsed), who is first, who is just before me?
        const r = await this.#client.call<TxnReply>('/v3/kv/txn', {
          compare: [{ key: b64(e.etcdKey), target: 'CREATE', result: 'EQUAL', create_revision: e.rev.toString() }],
          success: [this.#first(req.key), this.#pred(req.key, e.rev)],
          failure: [],
        }, req.signal);
        if (!r.succeeded) {
          this.#drop(e, false);
          e = undefined;
          continue;
        }
        view = { head: kvAt(r, 0), pred: kvAt(r, 1), fromRev: BigInt(r.header?.revision ?? '0') + 1n };
      }
      if (!view) continue; // a retried enqueue: look again
      const { head, pred } = view;
      if (!head || BigInt(head.create_revision ?? '0') === e.rev) return this.#promote(e, req.ttlMs);
      if (unb64(head.value) === req.ownerId) {
        // This owner id already holds the lock (acquired elsewhere, or a retry whose reply was
        // lost): leave the queue again and continue that holding, with its fence.
        this.#drop(e, true);
        const held = await this.#takeOver(req.key, req.ownerId, head, ttlSeconds(req.ttlMs));
        if (!held) return { acquired: false, retryAfterMs: 1 };
        this.#arm(held, req.ttlMs);
        return { acquired: true, fence: await this.#fence(held.rev, req.key, req.signal) };
      }
      if (!pred) continue;
      // Not first: watch the deletion of the key just before mine (not the head: no herd).
      this.#watch(e, pred.key, view.fromRev);
      return { acquired: false, retryAfterMs: this.#recheckMs };
    }
    return { acquired: false, retryAfterMs: 1 };
  }

  /** the key with the largest create revision below rev: the one a waiter at rev watches */
  #pred(lock: string, rev: bigint): { request_range: Record<string, unknown> } {
    return { request_range: { ...this.#range(lock), sort_target: 'CREATE', sort_order: 'DESCEND', limit: 1, max_create_revision: (rev - 1n).toString() } };
  }

  /** Free and nobody queued: take it in one txn; otherwise answer without joining the queue. */
  async #fastPath(req: { key: string; ownerId: string; ttlMs: number; signal?: AbortSignal | undefined }): Promise<AttemptResult | undefined> {
    const peek = await this.#client.call<RangeReply>('/v3/kv/range', { ...this.#range(req.key), limit: 1, keys_only: true, serializable: true }, req.signal);
    if (peek.kvs?.length) return { acquired: false, retryAfterMs: this.#recheckMs, notQueued: true };
    const ttlS = ttlSeconds(req.ttlMs);
    const leaseId = await this.#grant(ttlS, req.signal);
    const etcdKey = this.#dir(req.key) + BigInt(leaseId).toString(16);
    const r = await this.#client.call<TxnReply>('/v3/kv/txn', {
      compare: [{ ...this.#range(req.key), target: 'VERSION', result: 'EQUAL', version: '0' }],
      success: [{ request_put: { key: b64(etcdKey), value: b64(req.ownerId), lease: leaseId } }],
      failure: [this.#first(req.key)],
    }, req.signal).catch((error: unknown) => {
      this.#revoke(leaseId);
      throw error;
    });
    let rev: bigint | undefined;
    if (r.succeeded) rev = BigInt(r.header?.revision ?? '0');
    else {
      // A retried txn whose first try committed finds its own key at the head.
      const head = r.responses?.[0]?.response_range?.kvs?.[0];
      if (head && unb64(head.key) === etcdKey) rev = BigInt(head.create_revision ?? '0');
    }
    if (rev === undefined) {
      this.#revoke(leaseId);
      return { acquired: false, retryAfterMs: this.#recheckMs, notQueued: true };
    }
    const e: Entry = { lock: req.key, ownerId: req.ownerId, etcdKey, leaseId, leaseTtlS: ttlS, rev, holder: true, timer: undefined, watch: undefined, watched: undefined };
    this.#track(e);
    this.#arm(e, req.ttlMs);
    return { acquired: true, fence: await this.#fence(rev, req.key, req.signal) };
  }

  /** Joins the queue under a waiter lease; one txn reads the head and the predecessor, then puts the key. */
  async #enqueue(req: { key: string; ownerId: string; waiterTtlMs: number; signal?: AbortSignal | undefined }): Promise<{ entry: Entry; view: QueueView | undefined }> {
    const ttlS = ttlSeconds(req.waiterTtlMs);
    const leaseId = await this.#grant(ttlS, req.signal);
    const etcdKey = this.#dir(req.key) + BigInt(leaseId).toString(16);
    const k = b64(etcdKey);
    const r = await this.#client.call<TxnReply>('/v3/kv/txn', {
      compare: [{ key: k, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      // Ranges run before the put: the last key of the queue is my predecessor.
      success: [this.#first(req.key), { request_range: { ...this.#range(req.key), sort_target: 'CREATE', sort_order: 'DESCEND', limit: 1 } }, { request_put: { key: k, value: b64(req.ownerId), lease: leaseId } }],
      failure: [{ request_range: { key: k } }],
    }, req.signal).catch((error: unknown) => {
      this.#revoke(leaseId);
      throw error;
    });
    // A retried txn whose first try committed: my key exists, its create revision is my place.
    const rev = BigInt((r.succeeded ? r.header?.revision : kvAt(r, 0)?.create_revision) ?? '0');
    const e: Entry = { lock: req.key, ownerId: req.ownerId, etcdKey, leaseId, leaseTtlS: ttlS, rev, holder: false, timer: undefined, watch: undefined, watched: undefined };
    this.#track(e);
    this.#arm(e, req.waiterTtlMs);
    return { entry: e, view: r.succeeded ? { head: kvAt(r, 0), pred: kvAt(r, 1), fromRev: rev + 1n } : undefined };
  }

  /** First in the queue: the waiter becomes the holder, its key moved onto a lease with the lock's TTL. */
  async #promote(e: Entry, ttlMs: number): Promise<AttemptResult> {
    this.#unwatch(e);
    const ttlS = ttlSeconds(ttlMs);
    if (ttlS !== e.leaseTtlS) {
      if (!(await this.#moveLease(e, ttlS))) return { acquired: false, retryAfterMs: 1 };
    }
    if (!e.holder) this.#busy(e.lock, -1);
    e.holder = true;
    this.#arm(e, ttlMs);
    return { acquired: true, fence: await this.#fence(e.rev, e.lock) };
  }

  /** Puts the key on a new lease (the create revision, hence the fence, stays); false if the key is gone. */
  async #moveLease(e: Entry, ttlS: number): Promise<boolean> {
    const leaseId = await this.#grant(ttlS);
    const r = await this.#client.call<TxnReply>('/v3/kv/txn', {
      compare: [{ key: b64(e.etcdKey), target: 'CREATE', result: 'EQUAL', create_revision: e.rev.toString() }],
      success: [{ request_put: { key: b64(e.etcdKey), value: b64(e.ownerId), lease: leaseId } }],
      failure: [],
    }).catch((error: unknown) => {
      this.#revoke(leaseId);
      throw error;
    });
    if (!r.succeeded) {
      this.#revoke(leaseId);
      this.#drop(e, false);
      return false;
    }
    const old = e.leaseId;
    e.leaseId = leaseId;
    e.leaseTtlS = ttlS;
    this.#revoke(old);
    return true;
  }

  async extend(key: string, ownerId: string, ttlMs: number): Promise<ExtendResult> {
    let e = this.#entries.get(entryId(key, ownerId));
    if (!e || !e.holder) {
      // Held under this owner id by another process (adopt): continue it on a lease of our own.
      const head = await this.#head(key);
      if (!head || unb64(head.value) !== ownerId) return head ? 'notOwner' : 'notHeld';
      e = await this.#takeOver(key, ownerId, head, ttlSeconds(ttlMs));
      if (!e) return this.#absent(key, ownerId);
      this.#arm(e, ttlMs);
      return 'extended';
    }
    const ttlS = ttlSeconds(ttlMs);
    if (ttlS !== e.leaseTtlS) {
      if (!(await this.#moveLease(e, ttlS))) return this.#absent(key, ownerId);
    } else {
      const ka = await this.#client.call<{ TTL?: string }>('/v3/lease/keepalive', { ID: e.leaseId });
      const kv = (await this.#client.call<RangeReply>('/v3/kv/range', { key: b64(e.etcdKey) })).kvs?.[0];
      if (!(Number(ka.TTL ?? 0) > 0) || !kv || BigInt(kv.create_revision ?? '0') !== e.rev) {
        this.#drop(e, false);
        return this.#absent(key, ownerId);
      }
    }
    if (this.#entries.get(entryId(key, ownerId)) !== e) return this.#absent(key, ownerId);
    this.#arm(e, ttlMs);
    return 'extended';
  }

  async release(key: string, ownerId: string): Promise<ReleaseResult> {
    const e = this.#entries.get(entryId(key, ownerId));
    let leaseId = e?.leaseId;
    let target: { etcdKey: string; rev: bigint };
    if (e) {
      target = e;
      this.#drop(e, false);
    } else {
      // Another process's (or provider's) holding: found by the owner id stored as the value.
      const head = await this.#head(key);
      if (!head) return 'notHeld';
      if (unb64(head.value) !== ownerId) return 'notOwner';
      target = { etcdKey: unb64(head.key), rev: BigInt(head.create_revision ?? '0') };
      leaseId = head.lease;
    }
    const r = await this.#client.call<TxnReply>('/v3/kv/txn', {
      compare: [{ key: b64(target.etcdKey), target: 'CREATE', result: 'EQUAL', create_revision: target.rev.toString() }],
      success: [{ request_delete_range: { key: b64(target.etcdKey) } }],
      failure: [this.#first(key)],
    });
    if (leaseId && leaseId !== '0') this.#revoke(leaseId);
    if (r.succeeded) return 'released';
    return r.responses?.[0]?.response_range?.kvs?.length ? 'notOwner' : 'notHeld';
  }

  async refreshWaiter(key: string, ownerId: string, waiterTtlMs: number): Promise<void> {
    const e = this.#entries.get(entryId(key, ownerId));
    if (!e || e.holder) return;
    this.#arm(e, waiterTtlMs);
    const ttl = await this.#batchedKeepAlive(e.leaseId);
    // The lease lapsed: forget the entry, the next attempt queues again.
    if (!(ttl > 0) && this.#entries.get(entryId(key, ownerId)) === e && !e.holder) this.#drop(e, false);
  }

  async leaveQueue(key: string, ownerId: string): Promise<void> {
    const e = this.#entries.get(entryId(key, ownerId));
    if (!e || e.holder) return;
    this.#drop(e, true);
  }

  /** Waiters' renewals within a few ms share one keepalive request (many waiters, one round trip). */
  #batchedKeepAlive(leaseId: string): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const list = this.#kaPending.get(leaseId) ?? [];
      list.push({ resolve, reject });
      this.#kaPending.set(leaseId, list);
      if (this.#kaTimer) return;
      this.#kaTimer = setTimeout(() => {
        this.#kaTimer = undefined;
        const batch = this.#kaPending;
        this.#kaPending = new Map();
        this.#client.keepAlive([...batch.keys()]).then(
          (ttls) => {
            for (const [id, waiters] of batch) for (const w of waiters) w.resolve(ttls.get(id) ?? 0);
          },
          (error: unknown) => {
            for (const waiters of batch.values()) for (const w of waiters) w.reject(error);
          },
        );
      }, KEEPALIVE_BATCH_MS);
      this.#kaTimer.unref();
    });
  }

  async subscribe(key: string, onWake: (payload: string) => void): Promise<WakeSubscription> {
    let set = this.#subs.get(key);
    if (!set) this.#subs.set(key, (set = new Set()));
    const s = set;
    s.add(onWake);
    return {
      close: () => {
        s.delete(onWake);
        if (s.size === 0 && this.#subs.get(key) === s) this.#subs.delete(key);
      },
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const leaving: Promise<unknown>[] = [];
    for (const e of [...this.#entries.values()]) {
      this.#unwatch(e);
      clearTimeout(e.timer);
      // Waiters leave the queue; holders keep their lease until it lapses (their owner may still act).
      if (!e.holder) leaving.push(this.#client.call('/v3/lease/revoke', { ID: e.leaseId }).catch(() => undefined));
    }
    this.#entries.clear();
    this.#subs.clear();
    await Promise.all(leaving);
    if (this.#ownsClient) this.#client.close();
  }

  #wake(e: Entry): void {
    const set = this.#subs.get(e.lock);
    if (!set) return;
    for (const cb of [...set]) {
      try {
        cb(e.ownerId + NO_LIMIT);
      } catch {
        // a subscriber must not stop the others
      }
    }
  }

  #watch(e: Entry, predKey: string, fromRev: bigint): void {
    if (e.watch && e.watched === predKey) return;
    this.#unwatch(e);
    e.watched = predKey;
    e.watch = this.#client.watchDelete(predKey, fromRev, {
      onDelete: () => {
        e.watch = undefined;
        e.watched = undefined;
        e.predGone = true;
        e.watchFailures = 0;
        this.#wake(e);
      },
      // A broken stream (member killed, compaction): wake the waiter, its next attempt watches
      // again. At once the first time; after failures in a row (a watch refused every time:
      // permissions, TLS), after a delay that doubles up to recheckMs, not in a tight loop.
      onError: () => {
        e.watch = undefined;
        e.watched = undefined;
        if (this.#closed) return;
        const n = (e.watchFailures = (e.watchFailures ?? 0) + 1);
        if (n === 1) return this.#wake(e);
        clearTimeout(e.rewatch);
        e.rewatch = setTimeout(() => this.#wake(e), Math.min(this.#recheckMs, 10 * 2 ** Math.min(n - 2, 10)));
        e.rewatch.unref();
      },
    });
  }

  #unwatch(e: Entry): void {
    clearTimeout(e.rewatch);
    e.watch?.close();
    e.watch = undefined;
    e.watched = undefined;
  }

  /**
   * The lease's deadline in this process: etcd's TTL has whole seconds (at least its minimum),
   * so a lease nobody renews is revoked here at ttlMs; etcd's TTL frees it if this process dies.
   */
  #arm(e: Entry, ms: number): void {
    clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      if (this.#entries.get(entryId(e.lock, e.ownerId)) === e) this.#drop(e, true);
    }, ms);
    e.timer.unref();
  }

  #track(e: Entry): void {
    const id = entryId(e.lock, e.ownerId);
    const prev = this.#entries.get(id);
    if (prev) this.#drop(prev, prev.leaseId !== e.leaseId);
    this.#entries.set(id, e);
    if (!e.holder) this.#busy(e.lock, 1);
  }

  /**
   * How many waiters and fast-path attempts this backend has on a lock: while there are any, the
   * lock is not free and a new attempt queues without a round trip. (Holders are not counted: a
   * holding may have been adopted and released elsewhere.)
   */
  #busy(lock: string, delta: number): number {
    const n = (this.#local.get(lock) ?? 0) + delta;
    if (n > 0) this.#local.set(lock, n);
    else this.#local.delete(lock);
    return n;
  }

  #drop(e: Entry, revoke: boolean): void {
    clearTimeout(e.timer);
    this.#unwatch(e);
    const id = entryId(e.lock, e.ownerId);
    if (this.#entries.get(id) === e) {
      this.#entries.delete(id);
      if (!e.holder) this.#busy(e.lock, -1);
    }
    if (revoke) this.#revoke(e.leaseId);
  }

  async #grant(ttlS: number, signal?: AbortSignal): Promise<string> {
    const r = await this.#client.call<{ ID?: string; error?: string }>('/v3/lease/grant', { TTL: ttlS }, signal);
    if (!r.ID) throw new Error(`etcd lease grant returned no ID: ${r.error ?? 'unknown'}`);
    return r.ID;
  }

  /** Background revoke: the lease lapses by itself if this fails, so a failure is only noise. */
  #revoke(leaseId: string): void {
    if (this.#closed && this.#ownsClient) return;
    this.#client.call('/v3/lease/revoke', { ID: leaseId }).catch(() => undefined);
  }

  /**
   * The fence of an acquisition at create revision rev: rev itself, or with a fence anchor
   * (epoch << 40) | rev, the epoch stored in etcd once per cluster from the anchor, so fences
   * outrank those of an earlier cluster (revisions restart) or of another backend.
   */
  async #fence(rev: bigint, lock: string, signal?: AbortSignal): Promise<bigint> {
    if (!this.#anchor) return rev;
    if (rev >= 1n << FENCE_REVISION_BITS) throw new FenceExhaustedError(lock);
    const cluster = this.#client.clusterId ?? '';
    let ep = this.#epoch;
    if (!ep || ep.cluster !== cluster) ep = await (this.#epochLoading ??= this.#loadEpoch(signal).finally(() => (this.#epochLoading = undefined)));
    return (ep.epoch << FENCE_REVISION_BITS) | rev;
  }

  async #loadEpoch(signal?: AbortSignal): Promise<{ cluster: string; epoch: bigint }> {
    const key = b64(`${this.#prefix}epoch`);
    let kv = (await this.#client.call<RangeReply>('/v3/kv/range', { key }, signal)).kvs?.[0];
    if (!kv) {
      const epoch = await this.#anchor!.nextEpoch(signal);
      // Create-if-absent: every process of a new cluster ends up with the first epoch installed.
      const r = await this.#client.call<TxnReply>('/v3/kv/txn', {
        compare: [{ key, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
        success: [{ request_put: { key, value: b64(epoch.toString()) } }],
        failure: [{ request_range: { key } }],
      }, signal);
      kv = r.succeeded ? { key, value: b64(epoch.toString()) } : kvAt(r, 0);
    }
    const text = unb64(kv?.value);
    if (!/^\d+$/.test(text)) throw new Error(`etcd key ${this.#prefix}epoch holds "${text.slice(0, 40)}", not a fence epoch`);
    const ep = { cluster: this.#client.clusterId ?? '', epoch: BigInt(text) };
    this.#epoch = ep;
    return ep;
  }

  async #head(lock: string): Promise<EtcdKv | undefined> {
    const r = await this.#client.call<RangeReply>('/v3/kv/range', this.#first(lock).request_range);
    return r.kvs?.[0];
  }

  /**
   * Continues a holding made under ownerId by another backend: its key moves onto a lease of ours
   * (so that backend's deadline, revoking its own lease, no longer frees the lock). Keeps the fence.
   */
  async #takeOver(lock: string, ownerId: string, head: EtcdKv, ttlS: number): Promise<Entry | undefined> {
    const e: Entry = { lock, ownerId, etcdKey: unb64(head.key), leaseId: head.lease ?? '0', leaseTtlS: 0, rev: BigInt(head.create_revision ?? '0'), holder: true, timer: undefined, watch: undefined, watched: undefined };
    this.#track(e);
    const leaseId = await this.#grant(ttlS);
    const r = await this.#client.call<TxnReply>('/v3/kv/txn', {
      compare: [{ key: head.key, target: 'CREATE', result: 'EQUAL', create_revision: e.rev.toString() }],
      success: [{ request_put: { key: head.key, value: b64(ownerId), lease: leaseId } }],
      failure: [],
    }).catch((error: unknown) => {
      this.#revoke(leaseId);
      this.#drop(e, false);
      throw error;
    });
    if (!r.succeeded) {
      this.#revoke(leaseId);
      this.#drop(e, false);
      return undefined;
    }
    e.leaseId = leaseId;
    e.leaseTtlS = ttlS;
    return e;
  }

  /** extend of an acquisition this backend no longer tracks: held by someone else, or by nobody */
  async #absent(key: string, ownerId: string): Promise<'notOwner' | 'notHeld'> {
    const head = await this.#head(key);
    return head === undefined || unb64(head.value) === ownerId ? 'notHeld' : 'notOwner';
  }
}

interface QueueView {
  head: EtcdKv | undefined;
  pred: EtcdKv | undefined;
  fromRev: bigint;
}

function kvAt(r: TxnReply, i: number): EtcdKv | undefined {
  return r.responses?.[i]?.response_range?.kvs?.[0];
}

function entryId(key: string, ownerId: string): string {
  return `${key}\u0000${ownerId}`;
}
