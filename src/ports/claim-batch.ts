// The port of the `group-commit` strategy: one transaction decides a batch of claims on one
// unit (a campaign's stock, a lottery prize's, or a lottery miss that takes none), with one
// set-based statement per step instead of one round trip per claim. Each member is decided on
// its own: a user at the limit, a key whose lease was taken over or a unit that ran out refuses
// that member only.
import type { Claim } from '../core/claim.ts';
import type { StoredResponse } from '../core/idempotency.ts';
import type { StockUnit, UserLimits } from './claim-store.ts';

/** A key's answer, stored in the batch's transaction (what IdempotencyTx.completeIdempotency
 * would have written for this member alone). */
export interface KeyCompletion {
  scope: string;
  key: string;
  owner: string;
  response: StoredResponse;
  ref: string | null;
}

export interface BatchMember {
  claim: Claim;
  /** the UTC day the claim is stamped with (the counter's day never moves back: see guardUser) */
  day: string;
  idempotencyKey: string | null;
  draw: string | null;
  /** null for a claim without an Idempotency-Key */
  completion: KeyCompletion | null;
  /** The key is not taken yet: the batch inserts it (done with `completion`'s answer when the
   * member is issued; running and owned by `completion.owner` when it is refused, so its
   * request stores the refusal itself). A key already present makes the verdict `key_exists`
   * and changes nothing for that member. Requires `completion`. */
  takeKey?: { fingerprint: string; lockedUntil: number; createdAt: number };
}

export type MemberVerdict = { kind: 'issued'; day: string } | { kind: 'user_limit' } | { kind: 'sold_out' } | { kind: 'key_lost' } | { kind: 'key_exists' };

export interface ClaimBatchStore {
  /**
   * Decides `members` (distinct users, one campaign) in one transaction and returns a verdict
   * per member, in order. `all`: every member that passes its user guard takes a unit, and the
   * stock row is updated last, once, all-or-nothing (its guard and CHECK refuse an oversell);
   * when that would oversell it returns null and changes nothing (the caller runs `up-to`).
   * `up-to`: the stock row is locked first and members are issued while units remain.
   */
  commitBatch(unit: StockUnit | null, limits: UserLimits, members: BatchMember[], mode: 'all' | 'up-to'): Promise<MemberVerdict[] | null>;
}
