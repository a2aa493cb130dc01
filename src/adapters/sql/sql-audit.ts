// The invariant checks of DESIGN.md section 1 for one campaign, run against the store.
import { sql, type Kysely, type Transaction } from 'kysely';
import type { AuditCheck } from '../../ports/claim-store.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any> | Transaction<any>;

async function one(db: Db, q: ReturnType<typeof sql>): Promise<Record<string, unknown>> {
  return ((await q.execute(db)).rows[0] ?? {}) as Record<string, unknown>;
}

async function count(db: Db, q: ReturnType<typeof sql>): Promise<number> {
  return Number((await one(db, q)).n ?? 0);
}

/** All checks read one snapshot (REPEATABLE READ), so claims committing meanwhile cannot make
 * issued and the claim count disagree. On PostgreSQL the audit's joins do without nested loops:
 * right after a stampede the planner's statistics still say a new campaign has a few rows
 * (bench:claims saw estimates of ~100 for 40,000), and a nested loop over the campaign's claims
 * for each of its users ran past the statement timeout (503) where a hash join takes well under
 * a second. */
export async function runAudit(db: Db, campaignId: string, family: 'pg' | 'mysql'): Promise<AuditCheck[]> {
  return db.transaction().setIsolationLevel('repeatable read').execute(async (trx) => {
    if (family === 'pg') await sql`SET LOCAL enable_nestloop = off`.execute(trx);
    return checks(trx, campaignId);
  });
}

async function checks(db: Db, campaignId: string): Promise<AuditCheck[]> {
  const c = await one(db, sql`SELECT kind, stock, issued, per_user_limit, per_user_daily_limit FROM campaigns WHERE id = ${campaignId}`);
  if (String(c.kind) === 'lottery') return [...(await prizeChecks(db, campaignId)), ...(await userChecks(db, campaignId, c))];
  const stock = Number(c.stock);
  const issued = Number(c.issued);
  const claims = await count(db, sql`SELECT count(*) AS n FROM claims WHERE campaign_id = ${campaignId}`);
  return [
    { name: 'issued<=stock', ok: issued >= 0 && issued <= stock, issued, remaining: stock - issued, stock },
    { name: 'issued=claims', ok: issued === claims, issued, claims },
    ...(await userChecks(db, campaignId, c)),
  ];
}

/** A lottery: every prize within its stock, and its issued count equal to its claims. */
async function prizeChecks(db: Db, campaignId: string): Promise<AuditCheck[]> {
  const prizes = (await sql<Record<string, unknown>>`SELECT p.id, p.stock, p.issued, (SELECT count(*) FROM claims c WHERE c.campaign_id = p.campaign_id AND c.prize_id = p.id) AS claims
    FROM prizes p WHERE p.campaign_id = ${campaignId} ORDER BY p.id`.execute(db)).rows.map((r) => ({ id: String(r.id), stock: Number(r.stock), issued: Number(r.issued), claims: Number(r.claims) }));
  const over = prizes.filter((p) => p.issued < 0 || p.issued > p.stock);
  const mismatched = prizes.filter((p) => p.issued !== p.claims);
  const stray = await count(db, sql`SELECT count(*) AS n FROM claims c WHERE c.campaign_id = ${campaignId} AND c.prize_id IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM prizes p WHERE p.campaign_id = c.campaign_id AND p.id = c.prize_id)`);
  const misses = await count(db, sql`SELECT count(*) AS n FROM claims WHERE campaign_id = ${campaignId} AND prize_id IS NULL`);
  const issued = prizes.reduce((a, p) => a + p.issued, 0);
  const stock = prizes.reduce((a, p) => a + p.stock, 0);
  return [
    { name: 'issued<=stock', ok: over.length === 0, issued, remaining: stock - issued, stock, prizesOverStock: over.map((p) => p.id), prizes: prizes.map((p) => ({ id: p.id, stock: p.stock, issued: p.issued, remaining: p.stock - p.issued })) },
    { name: 'issued=claims', ok: mismatched.length === 0 && stray === 0, issued, claimsWithPrize: prizes.reduce((a, p) => a + p.claims, 0), misses, prizesMismatched: mismatched.map((p) => p.id), claimsForUnknownPrizes: stray },
  ];
}

/** Per-user limits, counters and idempotency keys: the same for every kind of campaign. */
async function userChecks(db: Db, campaignId: string, c: Record<string, unknown>): Promise<AuditCheck[]> {
  const perUser = Number(c.per_user_limit);
  const daily = c.per_user_daily_limit === null ? null : Number(c.per_user_daily_limit);
  const claims = await count(db, sql`SELECT count(*) AS n FROM claims WHERE campaign_id = ${campaignId}`);
  const counted = await count(db, sql`SELECT coalesce(sum(total), 0) AS n FROM user_claims WHERE campaign_id = ${campaignId}`);
  const overLimit = await count(db, sql`SELECT count(*) AS n FROM (SELECT user_id FROM claims WHERE campaign_id = ${campaignId} GROUP BY user_id HAVING count(*) > ${perUser}) v`);
  const overDaily = daily === null ? 0 : await count(db, sql`SELECT count(*) AS n FROM (SELECT user_id FROM claims WHERE campaign_id = ${campaignId} GROUP BY user_id, utc_day HAVING count(*) > ${daily}) v`);
  const counterMismatch = await count(db, sql`SELECT count(*) AS n FROM user_claims u
    LEFT JOIN (SELECT user_id, count(*) AS k FROM claims WHERE campaign_id = ${campaignId} GROUP BY user_id) c ON c.user_id = u.user_id
    WHERE u.campaign_id = ${campaignId} AND u.total <> coalesce(c.k, 0)`);
  const keysWithoutClaim = await count(db, sql`SELECT count(*) AS n FROM idempotency_keys k LEFT JOIN claims c ON c.id = k.claim_id
    WHERE k.campaign_id = ${campaignId} AND k.state = 'done' AND k.status_code = 201 AND c.id IS NULL`);
  // A claim's key row may be gone (purged after its retention, and perhaps taken again by a
  // later request); the row taken before the claim, if still there, must be done and point at it.
  const claimsWithoutKey = await count(db, sql`SELECT count(*) AS n FROM claims c JOIN idempotency_keys k
      ON k.campaign_id = c.campaign_id AND k.idem_key = c.idem_key AND k.created_at <= c.created_at
    WHERE c.campaign_id = ${campaignId} AND (k.claim_id IS NULL OR k.claim_id <> c.id OR k.state <> 'done')`);
  return [
    { name: 'per-user-limit', ok: overLimit === 0, perUserLimit: perUser, usersOverLimit: overLimit },
    { name: 'per-user-daily-limit', ok: overDaily === 0, perUserDailyLimit: daily, userDaysOverLimit: overDaily },
    { name: 'user-counters=claims', ok: counterMismatch === 0 && counted === claims, countersSum: counted, claims, mismatchedUsers: counterMismatch },
    { name: 'idempotency-keys<->claims', ok: keysWithoutClaim === 0 && claimsWithoutKey === 0, keysWithoutClaim, claimsWithoutKey },
  ];
}
