// LockBackend over N independent Redis masters (the Redlock algorithm): every operation goes to
// all nodes in parallel with a short per-node timeout and counts only with a majority. Each node
// runs the single-Redis scripts (through a RedisLockBackend per node); fences are the maximum of
// the majority's per-node fences, written back so that a majority always holds the latest fence.
import type { RedisClient } from '../redis/client.ts';
import type { FenceAnchor } from '../fence/fence-anchor.ts';
import { FENCE_COUNTER_BITS, REDIS_FENCE_TTL_DEFAULTS, RedisLockBackend } from '../redis/redis-backend.ts';
import { runScript } from '../redis/scripts.ts';
import type { AttemptResult, ExtendResult, LockBackend, LockEvent, ReleaseResult, WakeSubscription } from '../types.ts';
import { QuorumError, type NodeCause } from './errors.ts';
import { causeOf, quorumRound, type NodeOutcome } from './quorum.ts';
import { redlockScript } from './scripts.ts';

const COUNTER_MASK = (1n << FENCE_COUNTER_BITS) - 1n;

export interface RedlockBackendOptions {
  /** one client per independent Redis master; an odd number (3 or 5) */
  clients: RedisClient[];
  /** names for errors and events, one per client (e.g. "10.0.0.1:6379"); default "node0", "node1", … */
  nodeNames?: string[];
  fenceAnchor: FenceAnchor;
  /** key prefix on every node; default "allot:lock:" */
  prefix?: string;
  /** how long one node may take to answer an acquisition attempt; default 100 ms. Release, extend
   * and waiter upkeep wait longer for a node unless a majority already decided: 10x, at least 1 s. */
  nodeTimeoutMs?: number;
  /** Treat a node's epoch as missing after the node restarted (its replication id changed), so a
   * restart that kept only part of the data (AOF everysec) cannot bring back lower fence
   * counters; one INFO per acquisition script. Default true. */
  failoverGuard?: boolean;
  /** Each node's epoch and fence counter expiry (bounded fencing state, as RedisLockBackend's;
   * the fence write-back keeps them too). Default 1 hour each; 0: never. */
  epochTtlMs?: number;
  fenceTtlMs?: number;
  emit?: (e: LockEvent) => void;
}

interface Node {
  name: string;
  client: RedisClient;
  be: RedisLockBackend;
}

type AttemptReq = Parameters<LockBackend['attempt']>[0];

export class RedlockBackend implements LockBackend {
  readonly name: string;
  readonly quorum: number;
  readonly nodeTimeoutMs: number;
  /** the bound of non-acquisition rounds (release, extend, waiter upkeep) */
  readonly opTimeoutMs: number;
  readonly #nodes: Node[];
  readonly #emit: (e: LockEvent) => void;
  /** the write-back's TTL arguments: epoch, fence counter (ms, decimal) */
  readonly #ttls: [string, string];
  /** per acquisition in progress (key, owner id): each node's last op, see #inOrder */
  readonly #chains = new Map<string, { ops: Array<Promise<void> | undefined>; pending: number }>();

  constructor(opts: RedlockBackendOptions) {
    const n = opts.clients.length;
    if (n < 1 || n % 2 === 0) throw new RangeError(`Redlock needs an odd number of independent Redis masters (3 or 5), got ${n}`);
    if (opts.nodeNames && opts.nodeNames.length !== n) throw new RangeError(`nodeNames has ${opts.nodeNames.length} names for ${n} clients`);
    this.quorum = Math.floor(n / 2) + 1;
    this.nodeTimeoutMs = opts.nodeTimeoutMs ?? 100;
    if (!(this.nodeTimeoutMs > 0)) throw new RangeError(`nodeTimeoutMs must be > 0, got ${this.nodeTimeoutMs}`);
    this.opTimeoutMs = Math.max(this.nodeTimeoutMs * 10, 1_000);
    this.#emit = opts.emit ?? (() => undefined);
    // (RedisLockBackend validates them)
    const ttls = { epochTtlMs: opts.epochTtlMs ?? REDIS_FENCE_TTL_DEFAULTS.epochTtlMs, fenceTtlMs: opts.fenceTtlMs ?? REDIS_FENCE_TTL_DEFAULTS.fenceTtlMs };
    this.#nodes = opts.clients.map((client, i) => ({
      name: opts.nodeNames?.[i] ?? `node${i}`,
      client,
      be: new RedisLockBackend({ client, fenceAnchor: opts.fenceAnchor, prefix: opts.prefix ?? 'allot:lock:', failoverGuard: opts.failoverGuard ?? true, epochTtlMs: ttls.epochTtlMs, fenceTtlMs: ttls.fenceTtlMs, emit: this.#emit }),
    }));
    this.#ttls = [String(ttls.epochTtlMs), String(ttls.fenceTtlMs)];
    this.name = `redlock(${n} nodes)`;
  }

  get nodeNames(): string[] {
    return this.#nodes.map((n) => n.name);
  }

  #round<T>(op: (node: Node) => Promise<T>, decided: (outcomes: readonly NodeOutcome<T>[]) => boolean, timeoutMs: number) {
    const nodes = this.#nodes;
    return quorumRound(nodes.length, (i) => op(nodes[i]!), decided, timeoutMs);
  }

  /**
   * Runs `op` on node `i` once every earlier op of this acquisition (`key`, `ownerId`) on that
   * node has settled. The attempts of one acquisition share its owner id, and a failed attempt's
   * clean-up (releasing what it was granted) runs in the background: without this order, a
   * clean-up that reached a node late (its script was sent again after NOSCRIPT, say) deleted
   * the grant the NEXT attempt had just won there, and another caller took the lock while this
   * one went on to hold it (the contract test's fence order caught it under load).
   */
  #inOrder<T>(key: string, ownerId: string, i: number, op: () => Promise<T>): Promise<T> {
    const id = `${key}\u0000${ownerId}`;
    let chain = this.#chains.get(id);
    if (!chain) this.#chains.set(id, (chain = { ops: this.#nodes.map(() => undefined), pending: 0 }));
    const c = chain;
    const prev = c.ops[i];
    const run = prev ? prev.then(op, op) : op();
    const tail = run.then(() => undefined, () => undefined);
    c.ops[i] = tail;
    c.pending++;
    void tail.then(() => {
      if (c.ops[i] === tail) c.ops[i] = undefined;
      if (--c.pending === 0 && this.#chains.get(id) === c) this.#chains.delete(id);
    });
    return run;
  }

  #causes<T>(outcomes: readonly NodeOutcome<T>[], timeoutMs: number, describeOk: (value: T) => string): NodeCause[] {
    return outcomes.map((o, i) => causeOf(this.#nodes[i]!.name, o, timeoutMs, describeOk));
  }

  #background(p: Promise<unknown>): void {
    p.catch((error: unknown) => this.#emit({ type: 'backendError', error }));
  }

  async attempt(req: AttemptReq): Promise<AttemptResult> {
    const first = await this.#attemptRound(req, req.fair);
    if (first !== 'barge') return first;
    // Fair mode: each node grants a free lock only to its own queue's head. Waiters that raced
    // can sit in different orders on different nodes, so that no head wins a majority; then this
    // caller, which won some nodes, barges for the rest once (its grants stay its own), and the
    // jittered retries of the others break the tie.
    return (await this.#attemptRound({ ...req, fair: false, queued: true }, false)) as AttemptResult;
  }

  async #attemptRound(req: AttemptReq, mayBarge: boolean): Promise<AttemptResult | 'barge'> {
    const n = this.#nodes.length;
    const q = this.quorum;
    const count = (os: readonly NodeOutcome<AttemptResult>[]) => {
      let grants = 0;
      let refused = 0;
      let errors = 0;
      for (const o of os) {
        if (o.state === 'ok') {
          if (o.value.acquired) grants++;
          else refused++;
        } else if (o.state === 'error') errors++;
      }
      return { grants, refused, errors };
    };
    const { outcomes } = await quorumRound(
      n,
      // never a node's own hand-off: a lock handed over on one node is not a quorum
      (i) => this.#inOrder(req.key, req.ownerId, i, () => this.#nodes[i]!.be.attempt(req.handoff ? { ...req, handoff: false } : req)),
      (os) => {
        const c = count(os);
        // a majority granted; or contention is certain; or a majority can no longer answer
        return c.grants >= q || c.refused > n - q || c.errors > n - q;
      },
      this.nodeTimeoutMs,
    );
    const describe = (r: AttemptResult) => (r.acquired ? 'granted' : 'locked by another owner');
    const c = count(outcomes);
    if (c.grants >= q) {
      const settled = await this.#settleFence(req.key, outcomes, req.expectFence);
      if (typeof settled === 'bigint') {
        this.#leaveOtherQueues(req, outcomes);
        return { acquired: true, fence: settled };
      }
      this.#unlockAll(req.key, req.ownerId, outcomes);
      throw new QuorumError(req.key, 'acquire (fence write-back)', { nodes: n, quorum: q, succeeded: settled.atMax }, settled.causes);
    }
    if (mayBarge && c.grants > 0 && c.grants + c.refused >= q) return 'barge';
    this.#unlockAll(req.key, req.ownerId, outcomes);
    if (c.grants + c.refused < q) throw new QuorumError(req.key, 'acquire', { nodes: n, quorum: q, succeeded: c.grants }, this.#causes(outcomes, this.nodeTimeoutMs, describe));
    let retryAfterMs = Infinity;
    for (const o of outcomes) if (o.state === 'ok' && !o.value.acquired) retryAfterMs = Math.min(retryAfterMs, o.value.retryAfterMs);
    if (!Number.isFinite(retryAfterMs)) retryAfterMs = 1;
    return !req.fair && !req.queued ? { acquired: false, retryAfterMs, notQueued: true } : { acquired: false, retryAfterMs };
  }

  /**
   * The lease's fence: the highest fence among the granting nodes. It outranks every earlier fence
   * because every earlier lease left a majority at or above its own fence, and any two majorities
   * share a node. To keep that true, granting nodes below the maximum are raised to it; the fence
   * is valid only once a majority holds it; otherwise the per-node causes of the failed write-back.
   * `expect` (adopt with the acquisition's fence): a holding re-read later may count a node that
   * granted it late, after the round had its majority, and so was never raised; its counter can
   * be above the lease's fence. When a granting node holds `expect`, that is the holding's fence:
   * the acquisition's majority is at or above it since (counters only rise), and every majority
   * shares a node with it. (Identifiers are unique per acquisition. Should a later acquisition
   * under the same identifier be taken for this one, the adopter carries the lower fence: its
   * writes can only be refused, never let through past a newer holder.)
   */
  async #settleFence(key: string, outcomes: readonly NodeOutcome<AttemptResult>[], expect?: bigint): Promise<bigint | { atMax: number; causes: NodeCause[] }> {
    if (expect !== undefined && outcomes.some((o) => o.state === 'ok' && o.value.acquired && o.value.fence === expect)) return expect;
    let max = -1n;
    for (const o of outcomes) if (o.state === 'ok' && o.value.acquired && o.value.fence > max) max = o.value.fence;
    let atMax = 0;
    const lower: Node[] = [];
    outcomes.forEach((o, i) => {
      if (o.state !== 'ok' || !o.value.acquired) return;
      if (o.value.fence === max) atMax++;
      else lower.push(this.#nodes[i]!);
    });
    if (atMax >= this.quorum) return max;
    const epoch = (max >> FENCE_COUNTER_BITS).toString();
    const counter = (max & COUNTER_MASK).toString();
    const script = redlockScript('raiseFence');
    const raisedOk = (o: NodeOutcome<number>) => o.state === 'ok' && o.value >= 0;
    const { outcomes: raised } = await quorumRound(
      lower.length,
      (i) => {
        const node = lower[i]!;
        const k = node.be.keys(key);
        return runScript(node.client, script, [k.fence, k.epoch], [epoch, counter, ...this.#ttls]).then(Number);
      },
      (os) => atMax + os.filter(raisedOk).length >= this.quorum,
      this.nodeTimeoutMs,
    );
    const ok = raised.filter(raisedOk).length;
    if (atMax + ok >= this.quorum) return max;
    // Each node's cause: its write-back if it had one, else its answer to the attempt.
    const causes = this.#causes(outcomes, this.nodeTimeoutMs, (r) => (r.acquired ? 'granted' : 'locked by another owner'));
    raised.forEach((o, i) => {
      const at = this.#nodes.indexOf(lower[i]!);
      causes[at] = causeOf(lower[i]!.name, o, this.nodeTimeoutMs, (v) => (v >= 0 ? 'granted, fence raised' : 'granted, but lost its state before the fence write-back'));
    });
    return { atMax: atMax + ok, causes };
  }

  /**
   * Gives back whatever this failed attempt took, on every node that did not refuse it, nodes that
   * have not answered included: on one connection the release runs after the attempt. No second
   * release on a late reply: by then a retry of the same owner may hold that node, and releasing it
   * would hand the lock to a second owner. (Only an attempt that first had to install an epoch
   * re-runs its script later; a grant left that way expires with its TTL.)
   */
  #unlockAll(key: string, ownerId: string, outcomes: readonly NodeOutcome<AttemptResult>[]): void {
    outcomes.forEach((o, i) => {
      if (o.state === 'ok' && !o.value.acquired) return;
      this.#background(this.#inOrder(key, ownerId, i, () => this.#nodes[i]!.be.release(key, ownerId)));
    });
  }

  /** A fair or retrying caller may sit in the queues of nodes that did not grant: leave them. */
  #leaveOtherQueues(req: AttemptReq, outcomes: readonly NodeOutcome<AttemptResult>[]): void {
    if (!req.fair && !req.queued) return;
    outcomes.forEach((o, i) => {
      if (o.state === 'ok' && o.value.acquired) return;
      this.#background(this.#inOrder(req.key, req.ownerId, i, () => this.#nodes[i]!.be.leaveQueue(req.key, req.ownerId, false)));
    });
  }

  async extend(key: string, ownerId: string, ttlMs: number): Promise<ExtendResult> {
    const n = this.#nodes.length;
    const q = this.quorum;
    const { outcomes } = await this.#round(
      (node) => node.be.extend(key, ownerId, ttlMs),
      (os) => {
        const ok = os.filter((o) => o.state === 'ok' && o.value === 'extended').length;
        const no = os.filter((o) => o.state !== 'pending' && !(o.state === 'ok' && o.value === 'extended')).length;
        return ok >= q || no > n - q;
      },
      this.opTimeoutMs,
    );
    let extended = 0;
    let notOwner = 0;
    let unknown = 0;
    for (const o of outcomes) {
      if (o.state !== 'ok') unknown++;
      else if (o.value === 'extended') extended++;
      else if (o.value === 'notOwner') notOwner++;
    }
    if (extended >= q) return 'extended';
    // Nodes that did not answer might still hold it: undecided, so the watchdog retries until the deadline.
    if (extended + unknown >= q) throw new QuorumError(key, 'extend', { nodes: n, quorum: q, succeeded: extended }, this.#causes(outcomes, this.opTimeoutMs, (r) => r));
    return notOwner > 0 ? 'notOwner' : 'notHeld';
  }

  async release(key: string, ownerId: string): Promise<ReleaseResult> {
    const n = this.#nodes.length;
    const q = this.quorum;
    // Waits for every node (each bounded by the per-node timeout), not only a majority: a caller
    // that acquires again, or stops nodes, right after release() must not race a release still in
    // flight to the last node (it would find that node still locked).
    const { outcomes } = await this.#round((node) => node.be.release(key, ownerId), () => false, this.opTimeoutMs);
    let released = 0;
    let notOwner = 0;
    let answered = 0;
    for (const o of outcomes) {
      if (o.state === 'pending') this.#background(o.late);
      if (o.state !== 'ok') continue;
      answered++;
      if (o.value === 'released') released++;
      else if (o.value === 'notOwner') notOwner++;
    }
    if (notOwner >= q) return 'notOwner';
    if (released > 0) return 'released';
    if (answered < q) throw new QuorumError(key, 'release', { nodes: n, quorum: q, succeeded: answered }, this.#causes(outcomes, this.opTimeoutMs, (r) => r));
    return 'notHeld';
  }

  async refreshWaiter(key: string, ownerId: string, waiterTtlMs: number): Promise<void> {
    await this.#everywhere(key, 'refreshWaiter', (node) => node.be.refreshWaiter(key, ownerId, waiterTtlMs));
  }

  async leaveQueue(key: string, ownerId: string): Promise<void> {
    await this.#everywhere(key, 'leaveQueue', (node) => node.be.leaveQueue(key, ownerId, false));
  }

  async #everywhere(key: string, operation: string, op: (node: Node) => Promise<void>): Promise<void> {
    const { outcomes } = await this.#round(op, (os) => os.filter((o) => o.state === 'ok').length >= this.quorum, this.opTimeoutMs);
    const ok = outcomes.filter((o) => o.state === 'ok').length;
    for (const o of outcomes) if (o.state === 'pending') this.#background(o.late);
    if (ok < this.quorum) throw new QuorumError(key, operation, { nodes: this.#nodes.length, quorum: this.quorum, succeeded: ok }, this.#causes(outcomes, this.opTimeoutMs, () => 'ok'));
  }

  /**
   * Wake-ups from every node (each node's release publishes on its own channel): ready once a
   * majority subscribed; a node that subscribes late joins, one that cannot is left out. A waiter
   * may be woken once per node; each wake-up only causes a retry.
   */
  async subscribe(key: string, onWake: (payload: string) => void): Promise<WakeSubscription> {
    let closed = false;
    const { outcomes } = await this.#round(
      (node) => node.be.subscribe(key, onWake),
      (os) => os.filter((o) => o.state === 'ok').length >= this.quorum,
      this.opTimeoutMs,
    );
    const subs: WakeSubscription[] = [];
    for (const o of outcomes) {
      if (o.state === 'ok') subs.push(o.value);
      else if (o.state === 'pending') {
        o.late.then(
          (sub) => (closed ? sub.close() : subs.push(sub)),
          () => undefined,
        );
      }
    }
    const close = () => {
      closed = true;
      for (const sub of subs.splice(0)) sub.close();
    };
    if (subs.length < this.quorum) {
      close();
      throw new QuorumError(key, 'subscribe', { nodes: this.#nodes.length, quorum: this.quorum, succeeded: subs.length }, this.#causes(outcomes, this.opTimeoutMs, () => 'subscribed'));
    }
    return { close };
  }

  async close(): Promise<void> {
    await Promise.all(this.#nodes.map((n) => n.be.close()));
  }
}
