// `group-commit`: claims on one unit (a campaign's stock, a lottery prize's, a lottery miss)
// queue in-process and commit in batches, one transaction per batch and one set-based
// statement per step (src/adapters/sql/sql-batch.ts). The batch size adapts by itself: while
// one batch commits, the next requests queue, and the next batch takes them all (up to
// `maxBatch`); a lone request goes at once, never waiting for company. One batch per unit is
// in flight per instance; instances batch independently and the stock row's lock orders their
// batches. Each member is decided on its own (a user at the limit, a key taken over by a retry,
// a unit that ran out), and a 201 is answered only after its batch committed. A request's
// Idempotency-Key is inserted by its batch (takesKeys): one write, already done with the answer.
import type { Claim } from '../core/claim.ts';
import { AllotError } from '../core/errors.ts';
import type { BatchMember, ClaimBatchStore, MemberVerdict } from '../ports/claim-batch.ts';
import type { ClaimStore } from '../ports/claim-store.ts';
import { KeyExistsError, type ClaimRequest, type ClaimStrategy, type StrategyOutcome } from '../ports/claim-strategy.ts';
import { retryPolicy, type StrategyDeps } from './deps.ts';
import { collectCompletion } from './collect-completion.ts';
import { newClaim } from './outcome.ts';
import { retrying } from './retry.ts';

export const GROUP_COMMIT_STRATEGY = 'group-commit';

export interface GroupCommitOptions {
  /** most claims in one transaction (default 256) */
  maxBatch?: number;
}

interface Waiter {
  req: ClaimRequest;
  resolve(o: StrategyOutcome): void;
  reject(err: unknown): void;
}

interface Queue {
  waiting: Waiter[];
  running: boolean;
}

/** A store that can commit batches (the SQL store can). */
export function batchStoreOf(store: ClaimStore): ClaimBatchStore {
  const b = store.batch;
  if (!b) throw new AllotError('UNAVAILABLE', `the ${GROUP_COMMIT_STRATEGY} strategy needs a store that commits batches (the SQL store); nothing was issued`, { outcome: 'nothing-issued' });
  return b;
}

export function createGroupCommit(deps: StrategyDeps, opts: GroupCommitOptions = {}): ClaimStrategy {
  const policy = retryPolicy(deps);
  const maxBatch = opts.maxBatch ?? 256;
  // One queue per (store, unit): stores differ between services in one process (tests).
  const queues = new WeakMap<ClaimStore, Map<string, Queue>>();

  const queueOf = (store: ClaimStore, req: ClaimRequest): Queue => {
    let byUnit = queues.get(store);
    if (!byUnit) queues.set(store, (byUnit = new Map()));
    const k = req.unit === null ? `${req.campaign.id}\u0000miss` : `${req.campaign.id}\u0000${req.unit.prizeId ?? ''}`;
    let q = byUnit.get(k);
    if (!q) byUnit.set(k, (q = { waiting: [], running: false }));
    return q;
  };

  /** Takes the next batch: the first request of each user, up to maxBatch; a user's second
   * request waits for the next batch (one multi-row upsert cannot touch a row twice). */
  const take = (q: Queue): Waiter[] => {
    const batch: Waiter[] = [];
    const rest: Waiter[] = [];
    const users = new Set<string>();
    for (const w of q.waiting) {
      if (w.req.signal?.aborted) {
        w.reject(new AllotError('UNAVAILABLE', 'the request was aborted before its batch; nothing was issued', { outcome: 'nothing-issued' }));
        continue;
      }
      if (batch.length < maxBatch && !users.has(w.req.userId)) {
        users.add(w.req.userId);
        batch.push(w);
      } else rest.push(w);
    }
    q.waiting = rest;
    return batch;
  };

  const runBatch = async (store: ClaimStore, batch: Waiter[]): Promise<void> => {
    const first = batch[0]!.req;
    const members: BatchMember[] = batch.map((w) => ({ claim: newClaim(w.req), day: w.req.day, idempotencyKey: w.req.idempotencyKey, draw: w.req.draw, completion: null }));
    // Each member's answer, to be stored in the batch's transaction.
    await Promise.all(batch.map(async (w, i) => {
      const m = members[i]!;
      m.completion = await collectCompletion(w.req, m.claim, GROUP_COMMIT_STRATEGY);
      // A key nobody took yet goes into the batch's transaction with the claim.
      const p = w.req.pendingKey;
      if (p?.result === 'pending' && m.completion !== null) m.takeKey = { fingerprint: p.fingerprint, lockedUntil: p.nowMs + p.leaseMs, createdAt: p.nowMs };
    }));
    const limits = { perUserLimit: first.campaign.perUserLimit, perUserDailyLimit: first.campaign.perUserDailyLimit, day: first.day };
    const bs = batchStoreOf(store);
    let verdicts: MemberVerdict[];
    let retries = 0;
    try {
      const r = await retrying(policy, deps, undefined, async () => (await bs.commitBatch(first.unit, limits, members, 'all')) ?? bs.commitBatch(first.unit, limits, members, 'up-to'));
      if (r.value === null) throw new Error('group-commit: an up-to batch cannot oversell, yet the store reported it would');
      verdicts = r.value;
      retries = r.retries;
    } catch (err) {
      for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => {
      const v = verdicts[i]!;
      const stats = { retries };
      if (members[i]!.takeKey !== undefined && v.kind !== 'key_exists') w.req.pendingKey!.result = 'taken';
      if (v.kind === 'key_exists') w.reject(new KeyExistsError());
      else if (v.kind === 'issued') w.resolve({ kind: 'issued', claim: members[i]!.claim as Claim, stats });
      else if (v.kind === 'key_lost') w.reject(new AllotError('IDEMPOTENCY_IN_PROGRESS', 'This request lost its Idempotency-Key lease to a retry; the retry decides the outcome.'));
      else w.resolve({ kind: v.kind, stats });
    });
  };

  const drain = async (store: ClaimStore, q: Queue): Promise<void> => {
    q.running = true;
    try {
      while (q.waiting.length > 0) {
        const batch = take(q);
        if (batch.length > 0) await runBatch(store, batch);
      }
    } finally {
      q.running = false;
    }
  };

  return {
    name: GROUP_COMMIT_STRATEGY,
    safe: true,
    takesKeys: true,
    claim(store: ClaimStore, req: ClaimRequest): Promise<StrategyOutcome> {
      const q = queueOf(store, req);
      const p = new Promise<StrategyOutcome>((resolve, reject) => q.waiting.push({ req, resolve, reject }));
      if (!q.running) {
        // The first batch waits for the rest of this turn of the event loop, so claims that
        // arrive together share it.
        q.running = true;
        setImmediate(() => void drain(store, q));
      }
      return p;
    },
  };
}
