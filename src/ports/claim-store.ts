// The system-of-record port the claim engine and strategies are written against.
// Every method that changes stock or limits is an atomic guard whose result is checked.
import type { Campaign } from '../core/campaign.ts';
import type { Claim } from '../core/claim.ts';
import type { StoredResponse } from '../core/idempotency.ts';

export interface UserLimits {
  perUserLimit: number;
  perUserDailyLimit: number | null;
  day: string; // UTC day, YYYY-MM-DD
}

export interface UserCounter {
  total: number;
  day: string;
  dayCount: number;
}

/** Statements that run inside one database transaction. */
export interface ClaimTx {
  /** Conditional decrement: issued += n only while issued + n <= stock. True when it applied. */
  takeStock(campaignId: string, n: number): Promise<boolean>;
  /** Locks the campaign row (SELECT … FOR UPDATE) and returns stock and issued. */
  lockCampaign(campaignId: string): Promise<{ stock: number; issued: number } | null>;
  /** Conditional per-user guard: counts one claim only while the total and daily limits allow it. */
  guardUser(campaignId: string, userId: string, limits: UserLimits): Promise<boolean>;
  /** Locks (creating when absent) the per-user counter row and returns it. */
  lockUserCounter(campaignId: string, userId: string, day: string): Promise<UserCounter>;
  /** Writes the per-user counter row locked by lockUserCounter. */
  writeUserCounter(campaignId: string, userId: string, counter: UserCounter): Promise<void>;
  insertClaim(claim: Claim, day: string, idempotencyKey: string | null): Promise<void>;
  /** Records the final response under an idempotency key this request owns. */
  completeIdempotency(campaignId: string, key: string, owner: string, response: StoredResponse, claimId: string | null): Promise<void>;
}

export interface IdempotencyBegin {
  /** 'owner': this request now owns the key; 'done': a stored response; 'busy': another request runs it. */
  state: 'owner' | 'done' | 'busy' | 'mismatch';
  response?: StoredResponse;
}

export interface AuditCheck {
  name: string;
  ok: boolean;
  [detail: string]: unknown;
}

export interface ClaimStore {
  readonly dialect: string;
  /** Runs fn in one transaction; retries are the caller's business. */
  transaction<T>(fn: (tx: ClaimTx) => Promise<T>): Promise<T>;
  /** Inserts a campaign; false when the id is taken. */
  insertCampaign(c: Campaign): Promise<boolean>;
  getCampaign(id: string): Promise<Campaign | null>;
  listCampaigns(limit: number, afterId: string | null): Promise<Campaign[]>;
  getClaim(id: string): Promise<Claim | null>;
  listClaims(campaignId: string, userId: string | null, limit: number, afterId: string | null): Promise<Claim[]>;
  /** Phase 1 of an idempotent request: take the key, or learn what it holds. */
  beginIdempotency(campaignId: string, key: string, fingerprint: string, owner: string, nowMs: number, leaseMs: number): Promise<IdempotencyBegin>;
  /** Records a refusal under a key this request owns (outside the refused transaction). */
  completeIdempotency(campaignId: string, key: string, owner: string, response: StoredResponse, claimId: string | null): Promise<void>;
  /** Gives a key back after a failure that issued nothing, so a retry can run at once. */
  abandonIdempotency(campaignId: string, key: string, owner: string): Promise<void>;
  audit(campaignId: string): Promise<AuditCheck[]>;
  /** Deletes idempotency keys created before `beforeMs` (finished ones, and running ones whose
   * lease ran out), at most `limit`; returns how many. */
  purgeIdempotencyKeys(beforeMs: number, nowMs: number, limit: number): Promise<number>;
  ping(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}
