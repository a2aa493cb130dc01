// The ClaimStore port over SQL (PGlite, PostgreSQL, MariaDB/MySQL). Each guard is one
// statement whose affected-row count decides; text that differs by dialect family is chosen
// here, never in strategies.
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Campaign, CampaignKind } from '../../core/campaign.ts';
import type { Claim } from '../../core/claim.ts';
import { AllotError, TransientConflictError } from '../../core/errors.ts';
import type { StoredResponse } from '../../core/idempotency.ts';
import type { AuditCheck, ClaimStore, ClaimTx, IdempotencyBegin, UserCounter, UserLimits } from '../../ports/claim-store.ts';
import type { FencedTx } from '../../ports/fence-anchor.ts';
import { checkFence } from '../../lock/sql/fence-guard.ts';
import type { LockMetrics } from '../../lock/metrics.ts';
import type { SqlConnection, SqlFamily } from './connect.ts';
import { isRetryable, isUnavailable, isUniqueViolation } from './errors.ts';
import { runAudit } from './sql-audit.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any> | Transaction<any>;
type Row = Record<string, unknown>;

const NO_DAILY_LIMIT = 2_147_483_647;

async function rows(db: Db, q: RawBuilder<unknown>): Promise<Row[]> {
  return (await q.execute(db)).rows as Row[];
}

async function affected(db: Db, q: RawBuilder<unknown>): Promise<number> {
  return Number((await q.execute(db)).numAffectedRows ?? 0n);
}

function toCampaign(r: Row): Campaign {
  return {
    id: String(r.id),
    kind: String(r.kind) as CampaignKind,
    name: String(r.name),
    strategy: String(r.strategy),
    stock: Number(r.stock),
    issued: Number(r.issued),
    perUserLimit: Number(r.per_user_limit),
    perUserDailyLimit: r.per_user_daily_limit === null ? null : Number(r.per_user_daily_limit),
    startsAt: r.starts_at === null ? null : Number(r.starts_at),
    endsAt: r.ends_at === null ? null : Number(r.ends_at),
    createdAt: Number(r.created_at),
  };
}

function toClaim(r: Row): Claim {
  return {
    id: String(r.id),
    campaignId: String(r.campaign_id),
    userId: String(r.user_id),
    prizeId: r.prize_id === null ? null : String(r.prize_id),
    createdAt: Number(r.created_at),
  };
}

/** Creates the per-user row if absent, changing nothing when it exists. */
function ensureUserRow(family: SqlFamily, campaignId: string, userId: string, day: string): RawBuilder<unknown> {
  return family === 'pg'
    ? sql`INSERT INTO user_claims (campaign_id, user_id, total, utc_day, day_count) VALUES (${campaignId}, ${userId}, 0, ${day}, 0) ON CONFLICT (campaign_id, user_id) DO NOTHING`
    : sql`INSERT INTO user_claims (campaign_id, user_id, total, utc_day, day_count) VALUES (${campaignId}, ${userId}, 0, ${day}, 0) ON DUPLICATE KEY UPDATE total = total`;
}

class SqlClaimTx implements ClaimTx, FencedTx {
  constructor(
    private readonly trx: Db,
    private readonly family: SqlFamily,
    private readonly lockMetrics: LockMetrics | undefined,
  ) {}

  /** Raises the resource's fence in lock_fences or throws StaleFenceError (the row stays locked to commit). */
  async checkFence(resource: string, fence: bigint): Promise<void> {
    await checkFence(this.trx, this.family, resource, fence, this.lockMetrics ? { metrics: this.lockMetrics } : {});
  }

  async takeStock(campaignId: string, n: number): Promise<boolean> {
    return (await affected(this.trx, sql`UPDATE campaigns SET issued = issued + ${n} WHERE id = ${campaignId} AND issued + ${n} <= stock`)) === 1;
  }

  async lockCampaign(campaignId: string): Promise<{ stock: number; issued: number } | null> {
    const r = (await rows(this.trx, sql`SELECT stock, issued FROM campaigns WHERE id = ${campaignId} FOR UPDATE`))[0];
    return r ? { stock: Number(r.stock), issued: Number(r.issued) } : null;
  }

  async guardUser(campaignId: string, userId: string, limits: UserLimits): Promise<boolean> {
    const daily = limits.perUserDailyLimit ?? NO_DAILY_LIMIT;
    const day = limits.day;
    if (this.family === 'pg') {
      // One statement: insert the first claim's row, or bump it only while the limits allow.
      return (await affected(this.trx, sql`
        INSERT INTO user_claims AS u (campaign_id, user_id, total, utc_day, day_count)
        VALUES (${campaignId}, ${userId}, 1, ${day}, 1)
        ON CONFLICT (campaign_id, user_id) DO UPDATE SET
          total = u.total + 1,
          day_count = CASE WHEN u.utc_day = EXCLUDED.utc_day THEN u.day_count + 1 ELSE 1 END,
          utc_day = EXCLUDED.utc_day
        WHERE u.total < ${limits.perUserLimit} AND (u.utc_day <> EXCLUDED.utc_day OR u.day_count < ${daily})`)) === 1;
    }
    await ensureUserRow(this.family, campaignId, userId, day).execute(this.trx);
    // MySQL evaluates SET left to right: day_count must read utc_day before it is overwritten.
    return (await affected(this.trx, sql`
      UPDATE user_claims SET
        day_count = CASE WHEN utc_day = ${day} THEN day_count + 1 ELSE 1 END,
        utc_day = ${day},
        total = total + 1
      WHERE campaign_id = ${campaignId} AND user_id = ${userId}
        AND total < ${limits.perUserLimit} AND (utc_day <> ${day} OR day_count < ${daily})`)) === 1;
  }

  async lockUserCounter(campaignId: string, userId: string, day: string): Promise<UserCounter> {
    await ensureUserRow(this.family, campaignId, userId, day).execute(this.trx);
    const r = (await rows(this.trx, sql`SELECT total, utc_day, day_count FROM user_claims WHERE campaign_id = ${campaignId} AND user_id = ${userId} FOR UPDATE`))[0];
    if (!r) throw new Error('user counter row vanished inside its transaction');
    return { total: Number(r.total), day: String(r.utc_day), dayCount: Number(r.day_count) };
  }

  async writeUserCounter(campaignId: string, userId: string, c: UserCounter): Promise<void> {
    await sql`UPDATE user_claims SET total = ${c.total}, utc_day = ${c.day}, day_count = ${c.dayCount} WHERE campaign_id = ${campaignId} AND user_id = ${userId}`.execute(this.trx);
  }

  async insertClaim(claim: Claim, day: string, idempotencyKey: string | null): Promise<void> {
    await sql`INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key)
      VALUES (${claim.id}, ${claim.campaignId}, ${claim.userId}, ${claim.prizeId}, ${day}, ${claim.createdAt}, ${idempotencyKey})`.execute(this.trx);
  }

  async completeIdempotency(campaignId: string, key: string, owner: string, response: StoredResponse, claimId: string | null): Promise<void> {
    await completeKey(this.trx, campaignId, key, owner, response, claimId);
  }
}

async function completeKey(db: Db, campaignId: string, key: string, owner: string, response: StoredResponse, claimId: string | null): Promise<void> {
  const n = await affected(db, sql`UPDATE idempotency_keys SET state = 'done', status_code = ${response.status}, response = ${JSON.stringify(response.body)}, claim_id = ${claimId}
    WHERE campaign_id = ${campaignId} AND idem_key = ${key} AND owner = ${owner} AND state = 'running'`);
  // Another request took the key over after our lease ran out: our transaction must not commit.
  if (n !== 1) throw new AllotError('IDEMPOTENCY_IN_PROGRESS', 'This request lost its Idempotency-Key lease to a retry; the retry decides the outcome.');
}

/** Driver errors become the port's errors: retry the transaction, or the database is down. */
function translate(err: unknown): unknown {
  if (err instanceof AllotError || err instanceof TransientConflictError) return err;
  if (isRetryable(err)) return new TransientConflictError(err);
  if (isUnavailable(err)) return new AllotError('UNAVAILABLE', undefined, { outcome: 'nothing-issued' }, { cause: err });
  return err;
}

async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw translate(err);
  }
}

export class SqlClaimStore implements ClaimStore {
  readonly dialect: string;
  private readonly family: SqlFamily;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly db: Kysely<any>;

  private readonly lockMetrics: LockMetrics | undefined;

  constructor(conn: SqlConnection, opts: { lockMetrics?: LockMetrics } = {}) {
    this.lockMetrics = opts.lockMetrics;
    this.dialect = conn.dialect;
    this.family = conn.family;
    this.db = conn.db;
  }

  async transaction<T>(fn: (tx: ClaimTx) => Promise<T>): Promise<T> {
    let bodyDone = false;
    try {
      return await this.db.transaction().execute(async (trx) => {
        const out = await fn(new SqlClaimTx(trx, this.family, this.lockMetrics));
        bodyDone = true;
        return out;
      });
    } catch (err) {
      // The body finished but COMMIT failed on a broken connection: the database may or may
      // not have committed. Say so, so nobody is told "nothing was issued" when that is unknown.
      if (bodyDone && isUnavailable(err)) {
        throw new AllotError('UNAVAILABLE', 'The database connection failed while committing; the outcome is unknown. Retry with the same Idempotency-Key to learn it.', { outcome: 'unknown' }, { cause: err });
      }
      throw translate(err);
    }
  }

  insertCampaign(c: Campaign): Promise<boolean> {
    return guarded(async () => {
      try {
        await sql`INSERT INTO campaigns (id, kind, name, strategy, stock, issued, per_user_limit, per_user_daily_limit, starts_at, ends_at, created_at)
          VALUES (${c.id}, ${c.kind}, ${c.name}, ${c.strategy}, ${c.stock}, 0, ${c.perUserLimit}, ${c.perUserDailyLimit}, ${c.startsAt}, ${c.endsAt}, ${c.createdAt})`.execute(this.db);
        return true;
      } catch (err) {
        if (isUniqueViolation(err)) return false;
        throw err;
      }
    });
  }

  getCampaign(id: string): Promise<Campaign | null> {
    return guarded(async () => {
      const r = (await rows(this.db, sql`SELECT * FROM campaigns WHERE id = ${id}`))[0];
      return r ? toCampaign(r) : null;
    });
  }

  listCampaigns(limit: number, afterId: string | null): Promise<Campaign[]> {
    const after = afterId === null ? sql`` : sql` WHERE id > ${afterId}`;
    return guarded(async () => (await rows(this.db, sql`SELECT * FROM campaigns${after} ORDER BY id LIMIT ${limit}`)).map(toCampaign));
  }

  getClaim(id: string): Promise<Claim | null> {
    return guarded(async () => {
      const r = (await rows(this.db, sql`SELECT * FROM claims WHERE id = ${id}`))[0];
      return r ? toClaim(r) : null;
    });
  }

  listClaims(campaignId: string, userId: string | null, limit: number, afterId: string | null): Promise<Claim[]> {
    const user = userId === null ? sql`` : sql` AND user_id = ${userId}`;
    const after = afterId === null ? sql`` : sql` AND id > ${afterId}`;
    return guarded(async () => (await rows(this.db, sql`SELECT * FROM claims WHERE campaign_id = ${campaignId}${user}${after} ORDER BY id LIMIT ${limit}`)).map(toClaim));
  }

  beginIdempotency(campaignId: string, key: string, fp: string, owner: string, nowMs: number, leaseMs: number): Promise<IdempotencyBegin> {
    return guarded(async () => {
      const until = nowMs + leaseMs;
      if (await this.insertKey(campaignId, key, fp, owner, until, nowMs)) return { state: 'owner' };
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = (await rows(this.db, sql`SELECT fingerprint, state, locked_until, status_code, response FROM idempotency_keys WHERE campaign_id = ${campaignId} AND idem_key = ${key}`))[0];
        if (!r) {
          // Abandoned between our insert and read: try to take it again.
          if (await this.insertKey(campaignId, key, fp, owner, until, nowMs)) return { state: 'owner' };
          continue;
        }
        if (String(r.fingerprint) !== fp) return { state: 'mismatch' };
        if (r.state === 'done') {
          return { state: 'done', response: { status: Number(r.status_code), body: JSON.parse(String(r.response)) as unknown } };
        }
        if (Number(r.locked_until) > nowMs) return { state: 'busy' };
        // The first request's lease ran out (it crashed, or the database failed under it); its
        // claim, if any, would have marked the key done in the same transaction. Take over.
        const took = await affected(this.db, sql`UPDATE idempotency_keys SET owner = ${owner}, locked_until = ${until}
          WHERE campaign_id = ${campaignId} AND idem_key = ${key} AND state = 'running' AND locked_until <= ${nowMs}`);
        if (took === 1) return { state: 'owner' };
      }
      return { state: 'busy' };
    });
  }

  private async insertKey(campaignId: string, key: string, fp: string, owner: string, until: number, nowMs: number): Promise<boolean> {
    const values = sql`(${campaignId}, ${key}, ${fp}, 'running', ${owner}, ${until}, ${nowMs})`;
    if (this.family === 'pg') {
      return (await affected(this.db, sql`INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, created_at) VALUES ${values} ON CONFLICT DO NOTHING`)) === 1;
    }
    try {
      await sql`INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, created_at) VALUES ${values}`.execute(this.db);
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  completeIdempotency(campaignId: string, key: string, owner: string, response: StoredResponse, claimId: string | null): Promise<void> {
    return guarded(() => completeKey(this.db, campaignId, key, owner, response, claimId));
  }

  abandonIdempotency(campaignId: string, key: string, owner: string): Promise<void> {
    return guarded(async () => {
      await sql`DELETE FROM idempotency_keys WHERE campaign_id = ${campaignId} AND idem_key = ${key} AND owner = ${owner} AND state = 'running'`.execute(this.db);
    });
  }

  purgeIdempotencyKeys(beforeMs: number, nowMs: number, limit: number): Promise<number> {
    return guarded(async () => {
      const stale = sql`created_at < ${beforeMs} AND (state = 'done' OR locked_until <= ${nowMs})`;
      if (this.family === 'mysql') return affected(this.db, sql`DELETE FROM idempotency_keys WHERE ${stale} ORDER BY created_at LIMIT ${limit}`);
      return affected(this.db, sql`DELETE FROM idempotency_keys WHERE (campaign_id, idem_key) IN (SELECT campaign_id, idem_key FROM idempotency_keys WHERE ${stale} ORDER BY created_at LIMIT ${limit})`);
    });
  }

  audit(campaignId: string): Promise<AuditCheck[]> {
    return guarded(() => runAudit(this.db, campaignId));
  }

  ping(): Promise<void> {
    return guarded(async () => {
      await sql`SELECT 1`.execute(this.db);
    });
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
