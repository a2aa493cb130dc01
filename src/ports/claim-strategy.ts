// A claim strategy decides how one claim is made safe. It owns the transaction boundary (a
// lock-based strategy locks around it, a batching one shares it) and its retry policy, and
// must call `beforeCommit` inside the transaction that inserts the claim, so the request's
// idempotency record commits with it. Business refusals are outcomes; exceptions are for
// infrastructure (and for give-ups, as AllotError UNAVAILABLE: nothing was issued).
import type { Campaign } from '../core/campaign.ts';
import type { Claim } from '../core/claim.ts';
import type { ClaimStore, ClaimTx, StockUnit } from './claim-store.ts';

/** An Idempotency-Key that no request has taken yet, for a strategy that `takesKeys`: its store
 * inserts the key in the claim's own transaction (one write, no separate take and no lease to
 * check) instead of the protocol taking it beforehand. */
export interface PendingKey {
  readonly scope: string;
  readonly key: string;
  readonly fingerprint: string;
  readonly owner: string;
  readonly nowMs: number;
  readonly leaseMs: number;
  /** Set once the claim's transaction committed: 'taken' when the row went in as ours (done
   * with the answer when the claim was issued, running and ours otherwise). Stays 'pending'
   * when no transaction committed. A key another request holds makes the strategy throw
   * KeyExistsError instead, with nothing changed. */
  result: 'pending' | 'taken';
}

/** Thrown by a strategy when the request's PendingKey is already in the store: nothing was
 * changed, and the Idempotency-Key protocol decides the request the usual way (a replay, a key
 * in progress or a reused key). */
export class KeyExistsError extends Error {
  constructor() {
    super('the Idempotency-Key is already taken; nothing was changed');
    this.name = 'KeyExistsError';
  }
}

export interface ClaimRequest {
  campaign: Campaign;
  userId: string;
  claimId: string;
  nowMs: number;
  day: string;
  idempotencyKey: string | null;
  /** The unit to take: the campaign's stock, a lottery prize's, or null for a lottery miss
   * (nothing to take: only the user's limits count). */
  unit: StockUnit | null;
  /** A lottery claim's draw record, stored with the claim. */
  draw: string | null;
  /** Runs inside the claim's transaction, after the claim row is written and before COMMIT. A
   * strategy whose store writes the whole claim in one call runs it beforehand against a tx
   * that only collects the key's answer (collectCompletion), and has the store write that answer
   * with the claim. */
  beforeCommit(tx: ClaimTx, claim: Claim): Promise<void>;
  signal?: AbortSignal;
  /** Only for a strategy that `takesKeys`, and only while no store took the key: the key to
   * insert in the claim's transaction (see PendingKey). */
  pendingKey?: PendingKey;
}

export interface StrategyStats {
  /** attempts rolled back and run again (deadlocks, optimistic conflicts, stale fences) */
  retries: number;
  /** the lock fence that authorized an issued claim's write, and when that write committed
   * (epoch ms, taken while the lock was still held) */
  fence?: { resource: string; fence: bigint; committedAt: number };
}

export type StrategyOutcome =
  | { kind: 'issued'; claim: Claim; stats: StrategyStats }
  | { kind: 'sold_out'; stats: StrategyStats }
  | { kind: 'user_limit'; stats: StrategyStats };

export interface ClaimStrategy {
  readonly name: string;
  /** False for demo strategies that the race lab uses to show a failure. */
  readonly safe: boolean;
  /** True when the strategy inserts a request's Idempotency-Key in the claim's own transaction
   * (ClaimRequest.pendingKey); the protocol then does not take it beforehand. */
  readonly takesKeys?: boolean;
  claim(store: ClaimStore, req: ClaimRequest): Promise<StrategyOutcome>;
}
