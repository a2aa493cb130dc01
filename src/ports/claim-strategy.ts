// A claim strategy decides how one claim is made safe. Strategies own the transaction
// boundary (a lock-based strategy locks around it, a batching one shares it), and must call
// `onCommit` inside the transaction that inserts the claim so its idempotency record commits
// with it.
import type { Campaign } from '../core/campaign.ts';
import type { Claim } from '../core/claim.ts';
import type { ClaimStore, ClaimTx } from './claim-store.ts';

export interface ClaimRequest {
  campaign: Campaign;
  userId: string;
  claimId: string;
  nowMs: number;
  day: string;
  idempotencyKey: string | null;
  /** Called inside the claim's transaction after the claim row is written. */
  onCommit(tx: ClaimTx, claim: Claim): Promise<void>;
  signal?: AbortSignal;
}

export interface ClaimStrategy {
  readonly name: string;
  /** False for demo strategies that the race lab uses to show a failure. */
  readonly safe: boolean;
  /** Issues one claim or throws AllotError SOLD_OUT / USER_LIMIT_REACHED. */
  claim(store: ClaimStore, req: ClaimRequest): Promise<Claim>;
}
