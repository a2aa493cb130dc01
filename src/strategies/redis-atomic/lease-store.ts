// The port of the `redis-atomic` strategy on the system of record: the leases that bound what
// Redis may issue, and the batched write of the claims Redis took (src/adapters/sql/
// sql-redis-atomic.ts implements it). The SQL guards here are the safety; Redis only makes the
// common answers fast.
import type { BatchMember, MemberVerdict } from '../../ports/claim-batch.ts';
import type { UserLimits } from '../../ports/claim-store.ts';

/** One instance's block of a campaign's stock, as SQL has it. */
export interface LeaseRow {
  id: string;
  campaignId: string;
  fence: number;
  granted: number;
  used: number;
  state: 'open' | 'closed';
  /** a lease not renewed by then may be reclaimed (ms since the epoch) */
  expiresAt: number;
}

export interface LeaseRef {
  id: string;
  campaignId: string;
  fence: number;
}

export interface RedisAtomicStore {
  /** Inserts an open lease with nothing granted yet. */
  openLease(lease: LeaseRef, nowMs: number, ttlMs: number): Promise<void>;
  /**
   * Grants the open lease up to `max` more units (fewer near the end of the stock, so that the
   * instances share the last units): one conditional update of the campaign (issued + leased +
   * n <= stock) and the lease row, in one transaction. Returns the units granted: 0 when none
   * are free, or when the lease is closed or of another fence.
   */
  grant(lease: LeaseRef, max: number, nowMs: number, ttlMs: number): Promise<number>;
  /**
   * Writes a batch of claims (distinct users) in one transaction: each member's user guard, claim
   * row and key as group-commit does; then the lease's `used` += issued only while used + n <=
   * granted, with the same fence and still open; then the campaign's issued += n, leased -= n.
   * When the open lease has room for fewer members than the batch (Redis was ahead of SQL), the
   * first ones it has room for are written and the others get null (no unit: claim again).
   * 'lease_refused' (nothing written): the lease is closed or has another fence.
   */
  commitBatch(lease: LeaseRef, limits: UserLimits, members: BatchMember[], nowMs: number, ttlMs: number): Promise<Array<MemberVerdict | null> | 'lease_refused'>;
  readLease(id: string): Promise<LeaseRow | null>;
  /** Closes an open lease and gives its unused units back to the campaign; returns how many. */
  closeLease(lease: LeaseRef): Promise<number>;
  /** Closes the campaign's open leases expired before `nowMs` (not `keep`'s), giving their unused
   * units back; returns the leases closed and how many units each gave back. */
  reclaimExpired(campaignId: string, nowMs: number, keep: readonly string[]): Promise<Array<{ id: string; units: number }>>;
  /** Units granted to the campaign's leases and not used yet (`campaigns.leased`). */
  leased(campaignId: string): Promise<number>;
  /** The campaign's open leases (every instance's). */
  openLeases(campaignId: string): Promise<LeaseRow[]>;
  /** A page of the campaign's per-user totals, by user id after `afterUserId` (rebuilding Redis). */
  userTotals(campaignId: string, afterUserId: string | null, limit: number): Promise<Array<{ userId: string; total: number }>>;
  /** One user's committed total (0 when none). */
  userTotal(campaignId: string, userId: string): Promise<number>;
  /** Campaigns with an open lease expired before `nowMs` (an instance that died, or sits idle). */
  campaignsWithExpiredLeases(nowMs: number, limit: number): Promise<string[]>;
  /** `fast` mode: which of these claims are in SQL already (a replayed write-behind entry, a
   * batch retried after an outcome it did not learn). */
  existingClaims(campaignId: string, ids: readonly string[]): Promise<Set<string>>;
  /** `fast` mode: which of these Idempotency-Keys of the campaign SQL has (in any state). */
  presentKeys(campaignId: string, keys: readonly string[]): Promise<Set<string>>;
}
