// The `redis-atomic` strategy's port over SQL (src/strategies/redis-atomic/lease-store.ts): the
// leases that bound what Redis may issue, and the batched write of the claims Redis took. A batch
// is group-commit's transaction (src/adapters/sql/sql-batch.ts, its steps 1-4 with no stock step)
// followed by the lease guard and the campaign's counters, the hot row last.
import { sql, type Kysely } from 'kysely';
import { AllotError, TransientConflictError } from '../../core/errors.ts';
import type { BatchMember, MemberVerdict } from '../../ports/claim-batch.ts';
import type { StockUnit, UserLimits } from '../../ports/claim-store.ts';
import type { LeaseRef, LeaseRow, RedisAtomicStore } from '../../strategies/redis-atomic/lease-store.ts';
import type { SqlFamily } from './connect.ts';
import type { SqlDialect } from './dialect.ts';
import { isUnavailable } from './errors.ts';
import { affected, byKeys, rows, type Db } from './exec.ts';
import { SqlClaimBatchStore } from './sql-batch.ts';
import { translate } from './translate.ts';

class LeaseRefused extends Error {}

const leaseRow = (r: Record<string, unknown>): LeaseRow => ({
  id: String(r.id), campaignId: String(r.campaign_id), fence: Number(r.fence), granted: Number(r.granted), used: Number(r.used), state: r.state === 'open' ? 'open' : 'closed', expiresAt: Number(r.expires_at),
});

/** group-commit's per-member steps, run inside a transaction of ours. (SqlClaimBatchStore keeps
 * `decide` private; it would be exported if a third caller appeared.) */
interface Decider {
  decide(trx: Db, unit: StockUnit | null, limits: UserLimits, members: BatchMember[], mode: 'all' | 'up-to'): Promise<MemberVerdict[]>;
}

export class SqlRedisAtomicStore implements RedisAtomicStore {
  private readonly decider: Decider;

  private readonly family: SqlFamily;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(private readonly db: Kysely<any>, dialect: SqlDialect) {
    this.family = dialect.family;
    this.decider = new SqlClaimBatchStore(db, dialect) as unknown as Decider;
  }

  async openLease(lease: LeaseRef, nowMs: number, ttlMs: number): Promise<void> {
    await this.run(() => sql`INSERT INTO redis_leases (id, campaign_id, fence, granted, used, state, expires_at, created_at)
      VALUES (${lease.id}, ${lease.campaignId}, ${lease.fence}, 0, 0, 'open', ${nowMs + ttlMs}, ${nowMs})`.execute(this.db));
  }

  grant(lease: LeaseRef, max: number, nowMs: number, ttlMs: number): Promise<number> {
    return this.txRetried(async (trx) => {
      // Lock order everywhere: the lease row, then the campaign row.
      const l = (await rows(trx, sql`SELECT fence, state FROM redis_leases WHERE id = ${lease.id} FOR UPDATE`))[0];
      if (!l || Number(l.fence) !== lease.fence || l.state !== 'open') return 0;
      const c = (await rows(trx, sql`SELECT stock, issued, leased FROM campaigns WHERE id = ${lease.campaignId} FOR UPDATE`))[0];
      if (!c) return 0;
      const free = Number(c.stock) - Number(c.issued) - Number(c.leased);
      if (free <= 0) return 0;
      // Blocks shrink near the end (an eighth of what is free), so no instance sits on the last units.
      const n = Math.min(max, Math.max(1, Math.ceil(free / 8)));
      if ((await affected(trx, sql`UPDATE campaigns SET leased = leased + ${n} WHERE id = ${lease.campaignId} AND issued + leased + ${n} <= stock`)) !== 1) return 0;
      await sql`UPDATE redis_leases SET granted = granted + ${n}, expires_at = ${nowMs + ttlMs} WHERE id = ${lease.id}`.execute(trx);
      return n;
    });
  }

  async commitBatch(lease: LeaseRef, limits: UserLimits, members: BatchMember[], nowMs: number, ttlMs: number): Promise<Array<MemberVerdict | null> | 'lease_refused'> {
    let take = members;
    for (let pass = 0; ; pass++) {
      const out = await this.commitAll(lease, limits, take, nowMs, ttlMs);
      if (out !== null) return [...out, ...members.slice(take.length).map(() => null)];
      // The lease has less room than the batch (Redis was ahead of SQL: a block restored from
      // an older state, or a unit given back twice): commit the members it has room for, and
      // the rest have no unit (null: they claim again).
      const row = await this.readLease(lease.id);
      if (!row || row.state !== 'open' || row.fence !== lease.fence) return 'lease_refused';
      const room = row.granted - row.used;
      if (room <= 0 || pass >= 3) return members.map(() => null);
      take = members.slice(0, Math.min(room, take.length - 1));
    }
  }

  /** The whole batch under the lease guard, or null when the guard refused (nothing written). */
  private async commitAll(lease: LeaseRef, limits: UserLimits, members: BatchMember[], nowMs: number, ttlMs: number): Promise<MemberVerdict[] | null> {
    try {
      return await this.tx(async (trx) => {
        const verdicts = await this.decider.decide(trx, null, limits, members, 'all');
        const n = verdicts.filter((v) => v.kind === 'issued').length;
        // The lease guard: never more claims than SQL granted this lease, and only while it is
        // open with this fence (a reclaimed or closed lease has another fence or state).
        const took = await affected(trx, sql`UPDATE redis_leases SET used = used + ${n}, expires_at = ${nowMs + ttlMs}
          WHERE id = ${lease.id} AND fence = ${lease.fence} AND state = 'open' AND used + ${n} <= granted`);
        if (took !== 1) throw new LeaseRefused();
        if (n > 0 && (await affected(trx, sql`UPDATE campaigns SET issued = issued + ${n}, leased = leased - ${n} WHERE id = ${lease.campaignId} AND leased >= ${n}`)) !== 1) {
          throw new LeaseRefused();
        }
        return verdicts;
      });
    } catch (err) {
      if (err instanceof LeaseRefused) return null;
      throw err;
    }
  }

  async readLease(id: string): Promise<LeaseRow | null> {
    const r = (await this.run(() => rows(this.db, sql`SELECT id, campaign_id, fence, granted, used, state, expires_at FROM redis_leases WHERE id = ${id}`)))[0];
    return r ? leaseRow(r) : null;
  }

  closeLease(lease: LeaseRef): Promise<number> {
    return this.txRetried((trx) => this.closeIn(trx, lease.id, lease.fence));
  }

  async reclaimExpired(campaignId: string, nowMs: number, keep: readonly string[]): Promise<Array<{ id: string; units: number }>> {
    const expired = (await this.run(() => rows(this.db, sql`SELECT id, fence FROM redis_leases WHERE campaign_id = ${campaignId} AND state = 'open' AND expires_at < ${nowMs}`)))
      .filter((r) => !keep.includes(String(r.id)));
    const out: Array<{ id: string; units: number }> = [];
    for (const r of expired) {
      const units = await this.txRetried(async (trx) => {
        // Re-checked under the row lock: its holder may have renewed it since.
        const l = (await rows(trx, sql`SELECT expires_at FROM redis_leases WHERE id = ${String(r.id)} AND state = 'open' FOR UPDATE`))[0];
        return l && Number(l.expires_at) < nowMs ? this.closeIn(trx, String(r.id), Number(r.fence)) : null;
      });
      if (units !== null) out.push({ id: String(r.id), units });
    }
    return out;
  }

  async leased(campaignId: string): Promise<number> {
    const r = (await this.run(() => rows(this.db, sql`SELECT leased FROM campaigns WHERE id = ${campaignId}`)))[0];
    return r ? Number(r.leased) : 0;
  }

  async openLeases(campaignId: string): Promise<LeaseRow[]> {
    return (await this.run(() => rows(this.db, sql`SELECT id, campaign_id, fence, granted, used, state, expires_at FROM redis_leases WHERE campaign_id = ${campaignId} AND state = 'open'`))).map(leaseRow);
  }

  async userTotals(campaignId: string, afterUserId: string | null, limit: number): Promise<Array<{ userId: string; total: number }>> {
    const after = afterUserId === null ? sql`` : sql` AND user_id > ${afterUserId}`;
    return (await this.run(() => rows(this.db, sql`SELECT user_id, total FROM user_claims WHERE campaign_id = ${campaignId}${after} AND total > 0 ORDER BY user_id LIMIT ${limit}`)))
      .map((r) => ({ userId: String(r.user_id), total: Number(r.total) }));
  }

  async userTotal(campaignId: string, userId: string): Promise<number> {
    const r = (await this.run(() => rows(this.db, sql`SELECT total FROM user_claims WHERE campaign_id = ${campaignId} AND user_id = ${userId}`)))[0];
    return r ? Number(r.total) : 0;
  }

  async campaignsWithExpiredLeases(nowMs: number, limit: number): Promise<string[]> {
    return (await this.run(() => rows(this.db, sql`SELECT DISTINCT campaign_id FROM redis_leases WHERE state = 'open' AND expires_at < ${nowMs} ORDER BY campaign_id LIMIT ${limit}`))).map((r) => String(r.campaign_id));
  }

  async existingClaims(campaignId: string, ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    return new Set((await this.run(() => rows(this.db, byKeys(this.family, 'claims', ['id'], { col: 'campaign_id', value: campaignId }, 'id', ids, { keyIsUnique: true })))).map((r) => String(r.id)));
  }

  async presentKeys(campaignId: string, keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    return new Set((await this.run(() => rows(this.db, byKeys(this.family, 'idempotency_keys', ['idem_key'], { col: 'campaign_id', value: campaignId }, 'idem_key', keys)))).map((r) => String(r.idem_key)));
  }

  /** Closes one lease (locked or about to be) and returns its unused units to the campaign. */
  private async closeIn(trx: Db, id: string, fence: number): Promise<number> {
    const l = (await rows(trx, sql`SELECT campaign_id, granted, used FROM redis_leases WHERE id = ${id} AND fence = ${fence} AND state = 'open' FOR UPDATE`))[0];
    if (!l) return 0;
    const unused = Number(l.granted) - Number(l.used);
    await sql`UPDATE redis_leases SET state = 'closed', fence = fence + 1 WHERE id = ${id}`.execute(trx);
    if (unused > 0) await sql`UPDATE campaigns SET leased = leased - ${unused} WHERE id = ${String(l.campaign_id)}`.execute(trx);
    return unused;
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translate(err);
    }
  }

  /** A lease transaction (grant, close, reclaim), run again when the database rolled it back for
   * a reason a retry cures (a deadlock, a serialization failure); nothing of it was kept. The
   * claims' batches are retried by the strategy instead, under its retry policy. */
  private async txRetried<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.tx(fn);
      } catch (err) {
        if (!(err instanceof TransientConflictError) || attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
      }
    }
  }

  private async tx<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    let bodyDone = false;
    try {
      return await this.db.transaction().execute(async (trx) => {
        const out = await fn(trx);
        bodyDone = true;
        return out;
      });
    } catch (err) {
      if (err instanceof LeaseRefused) throw err;
      if (bodyDone && isUnavailable(err)) {
        throw new AllotError('UNAVAILABLE', 'The database connection failed while committing redis-atomic claims; the outcome is unknown. Retry with the same Idempotency-Key to learn it.', { outcome: 'unknown' }, { cause: err });
      }
      throw translate(err);
    }
  }
}
