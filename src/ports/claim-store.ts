// The system-of-record port the claim engine and strategies are written against. The guards
// (takeStock, guardUser, takeStockAtVersion) are atomic and report whether they applied; the
// plain reads and writes exist for strategies that lock first (pessimistic) or that the race
// lab uses to show a failure (naive).
import type { Campaign, Prize } from '../core/campaign.ts';
import type { Claim } from '../core/claim.ts';
import type { FencedTx } from './fence-anchor.ts';
import type { IdempotencyTx } from './idempotency-store.ts';
import type { ClaimBatchStore, KeyCompletion } from './claim-batch.ts';

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

/** What a claim takes one unit of: the campaign's stock (a coupon) or one prize's (a lottery). */
export interface StockUnit {
  campaignId: string;
  prizeId: string | null;
}

export interface StockRow {
  stock: number;
  issued: number;
  /** bumped by every takeStockAtVersion('version', …) */
  version: number;
}

/** Statements that run inside one database transaction (or, from `autocommit`, each on its own). */
export interface ClaimTx extends IdempotencyTx, FencedTx {
  /** Conditional decrement: issued += n only while issued + n <= stock. True when it applied. */
  takeStock(unit: StockUnit, n: number): Promise<boolean>;
  /** Optimistic decrement: issued += 1 (and version += 1) only while `column` still holds
   * `expected`, the value read before. True when it applied. */
  takeStockAtVersion(unit: StockUnit, column: 'version' | 'issued', expected: number): Promise<boolean>;
  /** Unconditional issued += n, as the naive seeds wrote it; false when the schema's CHECK (issued <= stock) refused it. */
  addIssued(unit: StockUnit, n: number): Promise<boolean>;
  /** Reads stock, issued and version; with forUpdate, locks the row (SELECT … FOR UPDATE). */
  readStock(unit: StockUnit, opts?: { forUpdate?: boolean }): Promise<StockRow | null>;
  /** Conditional per-user guard: counts one claim only while the total and daily limits allow
   * it. Returns the UTC day the claim counts in — never earlier than a day the user's counter
   * already moved to (a claim stamped before midnight that commits after one stamped after it
   * counts in the later day) — or null when refused. */
  guardUser(campaignId: string, userId: string, limits: UserLimits): Promise<string | null>;
  /** Locks (creating when absent) the per-user counter row and returns it. */
  lockUserCounter(campaignId: string, userId: string, day: string): Promise<UserCounter>;
  /** Reads the per-user counter without a lock (zeros when absent). */
  readUserCounter(campaignId: string, userId: string, day: string): Promise<UserCounter>;
  /** Writes the per-user counter row, creating it when absent. */
  writeUserCounter(campaignId: string, userId: string, counter: UserCounter): Promise<void>;
  /** Inserts the claim, counted in `day`, with its draw record (a lottery's proof) when it has one. */
  insertClaim(claim: Claim, day: string, idempotencyKey: string | null, draw: string | null): Promise<void>;
}

/** Everything one `conditional` claim writes, for a store that takes the whole claim in one call
 * (ClaimStore.claimConditional). */
export interface ConditionalClaim {
  claim: Claim;
  /** the unit to take, or null for a lottery miss (only the user's limits count) */
  unit: StockUnit | null;
  limits: UserLimits;
  idempotencyKey: string | null;
  /** a lottery claim's draw record */
  draw: string | null;
  /** the answer stored under the request's Idempotency-Key with the claim (null without a key):
   * what IdempotencyTx.completeIdempotency would have written in the claim's transaction */
  completion: KeyCompletion | null;
}

/** issued: every step applied and committed. user_limit, sold_out: that guard refused; key_lost:
 * a retry took the Idempotency-Key over. Anything but issued wrote nothing. */
export type ConditionalVerdict = 'issued' | 'user_limit' | 'sold_out' | 'key_lost';

export interface AuditCheck {
  name: string;
  ok: boolean;
  [detail: string]: unknown;
}

export interface ClaimStore {
  readonly dialect: string;
  /** Batches of claims in one transaction, for the group-commit strategy (absent: a store
   * that cannot, and the strategy refuses). */
  readonly batch?: ClaimBatchStore;
  /** Runs fn in one transaction; retries are the caller's business. */
  transaction<T>(fn: (tx: ClaimTx) => Promise<T>): Promise<T>;
  /**
   * The whole `conditional` claim (the user guard — whose day never moves backwards, as in
   * guardUser —, the unit, the claim row, the key's answer) atomically, in as few round trips
   * as the database allows: nothing is written unless every guard passes. Failures are thrown
   * as from `transaction`: TransientConflictError (retry), AllotError UNAVAILABLE with outcome
   * 'unknown' when the claim may have committed, 'nothing-issued' otherwise. Optional: a store
   * without it gets the step-by-step transaction.
   */
  claimConditional?(c: ConditionalClaim): Promise<ConditionalVerdict>;
  /** Runs fn with statements that each commit on their own (no transaction): only for the
   * race lab's unsafe strategies. */
  autocommit<T>(fn: (tx: ClaimTx) => Promise<T>): Promise<T>;
  /** Inserts a campaign (and a lottery's prizes and secret seed); false when the id is taken. */
  insertCampaign(c: Campaign, seedHex: string | null): Promise<boolean>;
  /** Stock and issued of one unit, read without a lock (a pre-check; the guards decide). */
  readStock(unit: StockUnit): Promise<StockRow | null>;
  /** A lottery's prizes with their current stock and issued, sorted by id. */
  listPrizes(campaignId: string): Promise<Prize[]>;
  /** stock += n, atomically beside concurrent claims; 'too_much' when the total would pass the maximum. */
  addStock(unit: StockUnit, n: number, max: number): Promise<'ok' | 'not_found' | 'too_much'>;
  /** Sets the pause flag; false when no such campaign. */
  setPaused(campaignId: string, paused: boolean): Promise<boolean>;
  /** A lottery's secret seed and when it was revealed (null while secret). */
  getSeed(campaignId: string): Promise<{ seed: string; revealedAt: number | null } | null>;
  /** Marks the seed revealed (first call wins; later calls keep the first instant). */
  revealSeed(campaignId: string, nowMs: number): Promise<void>;
  /** The draw record stored with a claim (null for a coupon claim). */
  getDraw(claimId: string): Promise<string | null>;
  getCampaign(id: string): Promise<Campaign | null>;
  listCampaigns(limit: number, afterId: string | null): Promise<Campaign[]>;
  getClaim(id: string): Promise<Claim | null>;
  listClaims(campaignId: string, userId: string | null, limit: number, afterId: string | null): Promise<Claim[]>;
  audit(campaignId: string): Promise<AuditCheck[]>;
  ping(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}
