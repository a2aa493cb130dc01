// The ClaimStore port over SQL (PGlite, PostgreSQL, MariaDB/MySQL). Each guard is one
// statement whose affected-row count decides; text that differs by dialect comes from the
// dialect object, never from strategies.
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Campaign, CampaignKind, Prize } from '../../core/campaign.ts';
import type { Claim } from '../../core/claim.ts';
import { AllotError } from '../../core/errors.ts';
import type { StoredResponse } from '../../core/idempotency.ts';
import type { AuditCheck, ClaimStore, ClaimTx, ConditionalClaim, ConditionalVerdict, StockRow, StockUnit, UserCounter, UserLimits } from '../../ports/claim-store.ts';
import type { ClaimBatchStore, KeyCompletion } from '../../ports/claim-batch.ts';
import type { SqlConnection } from './connect.ts';
import { sqlDialect, type SqlDialect } from './dialect.ts';
import { isCheckViolation, isUnavailable, isUniqueViolation } from './errors.ts';
import { runAudit } from './sql-audit.ts';
import { SqlClaimBatchStore } from './sql-batch.ts';
import { raiseFence } from './sql-fences.ts';
import { completeKey } from './sql-idempotency-store.ts';
import { guarded, translate } from './translate.ts';
import { affected, rows, stockTarget, type Db, type Row } from './exec.ts';


const NO_DAILY_LIMIT = 2_147_483_647;
const USER_COLUMNS = ['campaign_id', 'user_id', 'total', 'utc_day', 'day_count'] as const;

function toPrize(r: Row): Prize {
  return { id: String(r.id), name: String(r.name), stock: Number(r.stock), issued: Number(r.issued), weight: Number(r.weight) };
}

/** A campaign row; a lottery's stock and issued are its prizes' sums. */
function toCampaign(r: Row, prizes: Prize[] = []): Campaign {
  const lottery = String(r.kind) === 'lottery';
  return {
    id: String(r.id),
    kind: String(r.kind) as CampaignKind,
    name: String(r.name),
    strategy: String(r.strategy),
    stock: lottery ? prizes.reduce((a, p) => a + p.stock, 0) : Number(r.stock),
    issued: lottery ? prizes.reduce((a, p) => a + p.issued, 0) : Number(r.issued),
    perUserLimit: Number(r.per_user_limit),
    perUserDailyLimit: r.per_user_daily_limit === null ? null : Number(r.per_user_daily_limit),
    startsAt: r.starts_at === null ? null : Number(r.starts_at),
    endsAt: r.ends_at === null ? null : Number(r.ends_at),
    createdAt: Number(r.created_at),
    paused: Number(r.paused) !== 0,
    missWeight: Number(r.miss_weight ?? 0),
    fallbackPrizeId: r.fallback_prize_id === null || r.fallback_prize_id === undefined ? null : String(r.fallback_prize_id),
    seedCommitment: r.seed_commitment === null || r.seed_commitment === undefined ? null : String(r.seed_commitment),
    prizes,
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

async function readStock(db: Db, unit: StockUnit, forUpdate: boolean): Promise<StockRow | null> {
  const t = stockTarget(unit);
  const lock = forUpdate ? sql` FOR UPDATE` : sql``;
  const r = (await rows(db, sql`SELECT stock, issued, version FROM ${t.table} WHERE ${t.where}${lock}`))[0];
  return r ? { stock: Number(r.stock), issued: Number(r.issued), version: Number(r.version) } : null;
}

/** A `conditional` step refused: thrown to roll the claim's transaction back. */
class Refusal extends Error {
  constructor(readonly verdict: Exclude<ConditionalVerdict, 'issued'>) {
    super(verdict);
    this.name = 'Refusal';
  }
}

/** PostgreSQL division_by_zero: how the one-statement claim rolls itself back (see claimInOneStatement). */
const STATEMENT_ABORTED = '22012';

/**
 * The whole `conditional` claim as ONE PostgreSQL statement, which commits on its own. Each
 * step runs only when the ones before it applied (it reads their RETURNING rows):
 *   owned     the Idempotency-Key row, still this request's and running, locked FOR UPDATE
 *             (a retry that took it over wins: then nothing else runs);
 *   room      the unit had a unit left in the statement's snapshot (a unit seen sold out
 *             refuses before anything is written; at_limit then reads whether the user's guard
 *             would have refused first, which is the answer then);
 *   counted   guardUser's upsert: the user's counter, only while the limits allow, its day never
 *             moving backwards;
 *   inserted  the claim row, in the day the counter holds;
 *   completed completeKey's owner-checked UPDATE, storing the answer;
 *   took      takeStock's guarded UPDATE, LAST: the hot row is locked only from there to the end
 *             of the statement.
 * Every sub-statement runs and commits together, so a step refusing after an earlier one wrote
 * (took finding the last unit gone once its row lock was granted: room read an older snapshot)
 * must not let the statement complete: the last column then divides by zero, the statement
 * fails and none of its writes commits. A lottery miss (no unit) has no room, at_limit and took;
 * a claim without a key has no owned and completed.
 */
function oneStatementClaim(c: ConditionalClaim): RawBuilder<Row> {
  const { claim, unit, limits, completion: k } = c;
  const daily = limits.perUserDailyLimit ?? NO_DAILY_LIMIT;
  const ctes: RawBuilder<unknown>[] = [];
  const before: string[] = [];
  if (k) {
    ctes.push(sql`owned AS (
      SELECT 1 FROM idempotency_keys
      WHERE campaign_id = ${k.scope} AND idem_key = ${k.key} AND owner = ${k.owner} AND state = 'running'
      FOR UPDATE)`);
    before.push('owned');
  }
  const t = unit ? stockTarget(unit) : null;
  if (t) {
    ctes.push(sql`room AS (SELECT 1 FROM ${t.table} WHERE ${t.where} AND issued + 1 <= stock)`);
    before.push('room');
    // Read only, for the answer when there is no room: the user's guard refusing comes first,
    // as in the step-by-step claim (USER_LIMIT_REACHED rather than SOLD_OUT).
    ctes.push(sql`at_limit AS (
      SELECT 1 FROM user_claims
      WHERE campaign_id = ${claim.campaignId} AND user_id = ${claim.userId}
        AND NOT (total < ${limits.perUserLimit} AND (utc_day < ${limits.day} OR day_count < ${daily})))`);
  }
  const from = before.length > 0 ? sql` FROM ${sql.raw(before.join(', '))}` : sql``;
  ctes.push(sql`counted AS (
    INSERT INTO user_claims AS u (campaign_id, user_id, total, utc_day, day_count)
    SELECT CAST(${claim.campaignId} AS text), CAST(${claim.userId} AS text), 1, CAST(${limits.day} AS text), 1${from}
    ON CONFLICT (campaign_id, user_id) DO UPDATE SET
      total = u.total + 1,
      day_count = CASE WHEN u.utc_day >= EXCLUDED.utc_day THEN u.day_count + 1 ELSE 1 END,
      utc_day = GREATEST(u.utc_day, EXCLUDED.utc_day)
    WHERE u.total < ${limits.perUserLimit} AND (u.utc_day < EXCLUDED.utc_day OR u.day_count < ${daily})
    RETURNING utc_day)`);
  ctes.push(sql`inserted AS (
    INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key, draw)
    SELECT CAST(${claim.id} AS text), CAST(${claim.campaignId} AS text), CAST(${claim.userId} AS text), CAST(${claim.prizeId} AS text),
      counted.utc_day, CAST(${claim.createdAt} AS bigint), CAST(${c.idempotencyKey} AS text), CAST(${c.draw} AS text)
    FROM counted
    RETURNING 1)`);
  if (k) {
    ctes.push(sql`completed AS (
      UPDATE idempotency_keys SET state = 'done', status_code = ${k.response.status}, response = ${JSON.stringify(k.response.body)}, claim_id = ${k.ref}
      WHERE campaign_id = ${k.scope} AND idem_key = ${k.key} AND owner = ${k.owner} AND state = 'running' AND EXISTS (SELECT 1 FROM inserted)
      RETURNING 1)`);
  }
  if (t) {
    ctes.push(sql`took AS (
      UPDATE ${t.table} SET issued = issued + 1
      WHERE ${t.where} AND issued + 1 <= stock AND EXISTS (SELECT 1 FROM ${sql.raw(k ? 'completed' : 'inserted')})
      RETURNING 1)`);
  }
  const count = (cte: string, present: unknown) => (present ? sql.raw(`(SELECT CAST(count(*) AS integer) FROM ${cte})`) : sql.raw('1'));
  return sql<Row>`WITH ${sql.join(ctes, sql`,\n`)}
    SELECT owned, room, at_limit, day, 1 / (CASE WHEN day IS NULL OR (inserted = 1 AND completed = 1 AND took = 1) THEN 1 ELSE 0 END) AS whole
    FROM (SELECT ${count('owned', k)} AS owned, ${count('room', t)} AS room, ${t ? sql.raw('(SELECT CAST(count(*) AS integer) FROM at_limit)') : sql.raw('0')} AS at_limit,
      (SELECT utc_day FROM counted) AS day, ${count('inserted', true)} AS inserted, ${count('completed', k)} AS completed, ${count('took', t)} AS took) AS steps`;
}

class SqlClaimTx implements ClaimTx {
  /** statements that wrote (for autocommit: after one, a failure's outcome is unknown) */
  writes = 0;

  constructor(
    private readonly db: Db,
    private readonly dialect: SqlDialect,
  ) {}

  raiseFence(resource: string, fence: bigint, holder: string): Promise<boolean> {
    this.writes++;
    return raiseFence(this.db, this.dialect, resource, fence, holder);
  }

  async takeStock(unit: StockUnit, n: number): Promise<boolean> {
    this.writes++;
    const t = stockTarget(unit);
    return (await affected(this.db, sql`UPDATE ${t.table} SET issued = issued + ${n} WHERE ${t.where} AND issued + ${n} <= stock`)) === 1;
  }

  async takeStockAtVersion(unit: StockUnit, column: 'version' | 'issued', expected: number): Promise<boolean> {
    this.writes++;
    const t = stockTarget(unit);
    const guard = column === 'version' ? sql`version = ${expected}` : sql`issued = ${expected}`;
    return (await affected(this.db, sql`UPDATE ${t.table} SET issued = issued + 1, version = version + 1 WHERE ${t.where} AND ${guard}`)) === 1;
  }

  async addIssued(unit: StockUnit, n: number): Promise<boolean> {
    this.writes++;
    const t = stockTarget(unit);
    try {
      await sql`UPDATE ${t.table} SET issued = issued + ${n} WHERE ${t.where}`.execute(this.db);
      return true;
    } catch (err) {
      // The schema's backstop, CHECK (issued <= stock), refused the oversell.
      if (isCheckViolation(err)) return false;
      throw err;
    }
  }

  readStock(unit: StockUnit, opts: { forUpdate?: boolean } = {}): Promise<StockRow | null> {
    return readStock(this.db, unit, opts.forUpdate === true);
  }

  async guardUser(campaignId: string, userId: string, limits: UserLimits): Promise<string | null> {
    this.writes++;
    const daily = limits.perUserDailyLimit ?? NO_DAILY_LIMIT;
    const day = limits.day;
    // The counter's day never moves backwards: a claim stamped before midnight that commits
    // after one stamped after it counts in the later day (and its daily limit), rather than
    // resetting the count and letting a second claim into that day.
    if (this.dialect.capabilities.guardedUpsert) {
      // One statement: insert the first claim's row, or bump it only while the limits allow.
      const r = (await rows(this.db, sql`
        INSERT INTO user_claims AS u (campaign_id, user_id, total, utc_day, day_count)
        VALUES (${campaignId}, ${userId}, 1, ${day}, 1)
        ON CONFLICT (campaign_id, user_id) DO UPDATE SET
          total = u.total + 1,
          day_count = CASE WHEN u.utc_day >= EXCLUDED.utc_day THEN u.day_count + 1 ELSE 1 END,
          utc_day = GREATEST(u.utc_day, EXCLUDED.utc_day)
        WHERE u.total < ${limits.perUserLimit} AND (u.utc_day < EXCLUDED.utc_day OR u.day_count < ${daily})
        RETURNING utc_day`))[0];
      return r ? String(r.utc_day) : null;
    }
    await this.ensureUserRow(campaignId, userId, day);
    // MySQL evaluates SET left to right: day_count must read utc_day before it is overwritten.
    const n = await affected(this.db, sql`
      UPDATE user_claims SET
        day_count = CASE WHEN utc_day >= ${day} THEN day_count + 1 ELSE 1 END,
        utc_day = GREATEST(utc_day, ${day}),
        total = total + 1
      WHERE campaign_id = ${campaignId} AND user_id = ${userId}
        AND total < ${limits.perUserLimit} AND (utc_day < ${day} OR day_count < ${daily})`);
    if (n !== 1) return null;
    // The row is ours until commit: read the day it now holds.
    const r = (await rows(this.db, sql`SELECT utc_day FROM user_claims WHERE campaign_id = ${campaignId} AND user_id = ${userId}`))[0];
    return r ? String(r.utc_day) : day;
  }

  private async ensureUserRow(campaignId: string, userId: string, day: string): Promise<void> {
    await this.dialect.insertIgnore('user_claims', USER_COLUMNS, [campaignId, userId, 0, day, 0], ['campaign_id', 'user_id']).execute(this.db);
  }

  async lockUserCounter(campaignId: string, userId: string, day: string): Promise<UserCounter> {
    await this.ensureUserRow(campaignId, userId, day);
    const r = (await rows(this.db, sql`SELECT total, utc_day, day_count FROM user_claims WHERE campaign_id = ${campaignId} AND user_id = ${userId} FOR UPDATE`))[0];
    if (!r) throw new Error('user counter row vanished inside its transaction');
    return { total: Number(r.total), day: String(r.utc_day), dayCount: Number(r.day_count) };
  }

  async readUserCounter(campaignId: string, userId: string, day: string): Promise<UserCounter> {
    const r = (await rows(this.db, sql`SELECT total, utc_day, day_count FROM user_claims WHERE campaign_id = ${campaignId} AND user_id = ${userId}`))[0];
    return r ? { total: Number(r.total), day: String(r.utc_day), dayCount: Number(r.day_count) } : { total: 0, day, dayCount: 0 };
  }

  async writeUserCounter(campaignId: string, userId: string, c: UserCounter): Promise<void> {
    this.writes++;
    await this.dialect.upsert('user_claims', USER_COLUMNS, [campaignId, userId, c.total, c.day, c.dayCount], ['campaign_id', 'user_id'], ['total', 'utc_day', 'day_count']).execute(this.db);
  }

  async insertClaim(claim: Claim, day: string, idempotencyKey: string | null, draw: string | null): Promise<void> {
    this.writes++;
    await sql`INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key, draw)
      VALUES (${claim.id}, ${claim.campaignId}, ${claim.userId}, ${claim.prizeId}, ${day}, ${claim.createdAt}, ${idempotencyKey}, ${draw})`.execute(this.db);
  }

  completeIdempotency(scope: string, key: string, owner: string, response: StoredResponse, ref: string | null): Promise<void> {
    this.writes++;
    return completeKey(this.db, scope, key, owner, response, ref);
  }

  /**
   * The `conditional` claim as a transaction of guarded statements (MySQL, which has no
   * RETURNING and no data-modifying WITH; and PostgreSQL's fallback): the user guard, the claim,
   * the key's answer, and the hot stock row LAST, so its row lock is held only from that
   * statement to COMMIT. Throws Refusal when a guard refuses (the transaction must roll back).
   */
  async conditionalSteps(c: ConditionalClaim): Promise<void> {
    const { claim } = c;
    if (this.dialect.capabilities.guardedUpsert) {
      const day = await this.guardUser(claim.campaignId, claim.userId, c.limits);
      if (day === null) throw new Refusal('user_limit');
      await this.insertClaim(claim, day, c.idempotencyKey, c.draw);
    } else {
      if (!(await this.countClaimOnDuplicateKey(claim.campaignId, claim.userId, c.limits))) throw new Refusal('user_limit');
      this.writes++;
      // The claim counts in the day its counter now holds (never earlier than one counted
      // before), read by the INSERT itself; `total > 0` holds only for a counter that counted it.
      const n = await affected(this.db, sql`INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key, draw)
        SELECT ${claim.id}, ${claim.campaignId}, ${claim.userId}, ${claim.prizeId}, utc_day, ${claim.createdAt}, ${c.idempotencyKey}, ${c.draw}
        FROM user_claims WHERE campaign_id = ${claim.campaignId} AND user_id = ${claim.userId} AND total > 0`);
      if (n !== 1) throw new Refusal('user_limit');
    }
    const k = c.completion;
    if (k && c.unit && this.dialect.capabilities.multiTableUpdate) return this.completeAndTake(k, c.unit);
    if (k) {
      try {
        await this.completeIdempotency(k.scope, k.key, k.owner, k.response, k.ref);
      } catch (err) {
        if (err instanceof AllotError && err.code === 'IDEMPOTENCY_IN_PROGRESS') throw new Refusal('key_lost');
        throw err;
      }
    }
    if (c.unit && !(await this.takeStock(c.unit, 1))) throw new Refusal('sold_out');
  }

  /** MySQL: completeKey's owner-checked UPDATE and takeStock's guarded one as ONE multi-table
   * UPDATE: both rows change (2 rows) or, when either guard refuses, the join is empty and
   * neither does; a read then tells which refused. */
  private async completeAndTake(k: KeyCompletion, unit: StockUnit): Promise<void> {
    this.writes++;
    const s = unit.prizeId === null
      ? { table: sql.raw('campaigns AS s'), where: sql`s.id = ${unit.campaignId}` }
      : { table: sql.raw('prizes AS s'), where: sql`s.campaign_id = ${unit.campaignId} AND s.id = ${unit.prizeId}` };
    const n = await affected(this.db, sql`UPDATE idempotency_keys AS k, ${s.table}
      SET k.state = 'done', k.status_code = ${k.response.status}, k.response = ${JSON.stringify(k.response.body)}, k.claim_id = ${k.ref}, s.issued = s.issued + 1
      WHERE k.campaign_id = ${k.scope} AND k.idem_key = ${k.key} AND k.owner = ${k.owner} AND k.state = 'running'
        AND ${s.where} AND s.issued + 1 <= s.stock`);
    if (n === 2) return;
    if (n !== 0) throw new Error(`the key and stock update changed ${n} rows, not 2 or 0`);
    const owned = await rows(this.db, sql`SELECT 1 AS owned FROM idempotency_keys WHERE campaign_id = ${k.scope} AND idem_key = ${k.key} AND owner = ${k.owner} AND state = 'running'`);
    throw new Refusal(owned.length === 1 ? 'sold_out' : 'key_lost');
  }

  /**
   * MySQL: guardUser's insert-if-absent, limit check and update in ONE statement. A first claim
   * inserts the row (1 row affected); a later one updates it (2) while the limits allow. A
   * refusal sets total to -1, which the schema's CHECK (total >= 0) refuses: the statement fails
   * and changes nothing. (The update cannot simply leave the row unchanged: with the client's
   * default FOUND_ROWS flag that reports 1 row, like an insert.) Only `total` reads the guard;
   * it is assigned first, so the guard sees the row as it was, and `day_count` reads `utc_day`
   * before `utc_day` is assigned: right under left-to-right and under simultaneous assignment.
   */
  private async countClaimOnDuplicateKey(campaignId: string, userId: string, limits: UserLimits): Promise<boolean> {
    this.writes++;
    const daily = limits.perUserDailyLimit ?? NO_DAILY_LIMIT;
    try {
      await sql`INSERT INTO user_claims (campaign_id, user_id, total, utc_day, day_count) VALUES (${campaignId}, ${userId}, 1, ${limits.day}, 1)
        ON DUPLICATE KEY UPDATE
          total = IF(total < ${limits.perUserLimit} AND (utc_day < VALUES(utc_day) OR day_count < ${daily}), total + 1, -1),
          day_count = IF(utc_day >= VALUES(utc_day), day_count + 1, 1),
          utc_day = GREATEST(utc_day, VALUES(utc_day))`.execute(this.db);
      return true;
    } catch (err) {
      if (isCheckViolation(err)) return false;
      throw err;
    }
  }
}

export class SqlClaimStore implements ClaimStore {
  readonly dialect: string;
  readonly sqlDialect: SqlDialect;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly db: Kysely<any>;

  /** Batches of claims in one transaction (the group-commit strategy). */
  readonly batch: ClaimBatchStore;

  constructor(conn: SqlConnection, opts: { batchOneStatement?: boolean } = {}) {
    this.dialect = conn.dialect;
    this.sqlDialect = sqlDialect(conn.family);
    this.db = conn.db;
    this.batch = new SqlClaimBatchStore(conn.db, this.sqlDialect, { oneStatement: opts.batchOneStatement ?? true });
  }

  async transaction<T>(fn: (tx: ClaimTx) => Promise<T>): Promise<T> {
    let bodyDone = false;
    try {
      return await this.db.transaction().execute(async (trx) => {
        const out = await fn(new SqlClaimTx(trx, this.sqlDialect));
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

  claimConditional(c: ConditionalClaim): Promise<ConditionalVerdict> {
    return this.sqlDialect.capabilities.writableCte ? this.claimInOneStatement(c) : this.claimInSteps(c);
  }

  /** PostgreSQL: one round trip, the statement of oneStatementClaim, committing on its own. */
  private async claimInOneStatement(c: ConditionalClaim): Promise<ConditionalVerdict> {
    let sent = false;
    let row: Row | undefined;
    try {
      row = await this.db.connection().execute(async (conn) => {
        sent = true;
        return (await rows(conn, oneStatementClaim(c)))[0];
      });
    } catch (err) {
      // A step refused after an earlier one wrote: the statement failed and changed nothing.
      // The step-by-step transaction tells which guard refuses (almost always the stock).
      if ((err as { code?: unknown }).code === STATEMENT_ABORTED) return this.claimInSteps(c);
      // The statement is its own transaction: once sent, a connection lost before its answer
      // may have cut the answer of a commit. An error the server sent (a statement timeout, a
      // shutdown, a serialization failure) means it did not commit; before the statement was
      // sent (no pooled connection to be had), nothing was issued either.
      if (sent && isUnavailable(err) && typeof (err as { severity?: unknown }).severity !== 'string') {
        throw new AllotError('UNAVAILABLE', 'The database connection failed while the claim was committing; the outcome is unknown. Retry with the same Idempotency-Key to learn it.', { outcome: 'unknown' }, { cause: err });
      }
      throw translate(err);
    }
    if (!row) throw new Error('the one-statement claim returned no row');
    if (c.completion && Number(row.owned) !== 1) return 'key_lost';
    if (c.unit && Number(row.room) !== 1) return Number(row.at_limit) === 1 ? 'user_limit' : 'sold_out';
    if (row.day === null || row.day === undefined) return 'user_limit';
    return 'issued';
  }

  /** One transaction of guarded statements (SqlClaimTx.conditionalSteps). */
  private async claimInSteps(c: ConditionalClaim): Promise<ConditionalVerdict> {
    try {
      await this.transaction((tx) => (tx as SqlClaimTx).conditionalSteps(c));
      return 'issued';
    } catch (err) {
      if (err instanceof Refusal) return err.verdict;
      throw err;
    }
  }

  async autocommit<T>(fn: (tx: ClaimTx) => Promise<T>): Promise<T> {
    const tx = new SqlClaimTx(this.db, this.sqlDialect);
    try {
      return await fn(tx);
    } catch (err) {
      // Each statement commits on its own: once one has written, a failure's outcome is unknown.
      if (tx.writes > 0 && isUnavailable(err)) {
        throw new AllotError('UNAVAILABLE', 'The database failed between the statements of an unsafe strategy; the outcome is unknown.', { outcome: 'unknown' }, { cause: err });
      }
      throw translate(err);
    }
  }

  insertCampaign(c: Campaign, seedHex: string | null): Promise<boolean> {
    return guarded(async () => {
      try {
        await this.db.transaction().execute(async (trx) => {
          await sql`INSERT INTO campaigns (id, kind, name, strategy, stock, issued, per_user_limit, per_user_daily_limit, starts_at, ends_at, created_at, paused, miss_weight, fallback_prize_id, seed, seed_commitment)
            VALUES (${c.id}, ${c.kind}, ${c.name}, ${c.strategy}, ${c.kind === 'lottery' ? 0 : c.stock}, 0, ${c.perUserLimit}, ${c.perUserDailyLimit}, ${c.startsAt}, ${c.endsAt}, ${c.createdAt},
              ${c.paused ? 1 : 0}, ${c.missWeight}, ${c.fallbackPrizeId}, ${seedHex}, ${c.seedCommitment})`.execute(trx);
          for (const p of c.prizes) {
            await sql`INSERT INTO prizes (campaign_id, id, name, stock, issued, weight) VALUES (${c.id}, ${p.id}, ${p.name}, ${p.stock}, 0, ${p.weight})`.execute(trx);
          }
        });
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
      if (!r) return null;
      return toCampaign(r, String(r.kind) === 'lottery' ? await this.prizesOf(id) : []);
    });
  }

  private async prizesOf(campaignId: string): Promise<Prize[]> {
    return (await rows(this.db, sql`SELECT id, name, stock, issued, weight FROM prizes WHERE campaign_id = ${campaignId} ORDER BY id`)).map(toPrize);
  }

  listPrizes(campaignId: string): Promise<Prize[]> {
    return guarded(() => this.prizesOf(campaignId));
  }

  readStock(unit: StockUnit): Promise<StockRow | null> {
    return guarded(() => readStock(this.db, unit, false));
  }

  addStock(unit: StockUnit, n: number, max: number): Promise<'ok' | 'not_found' | 'too_much'> {
    return guarded(async () => {
      const t = stockTarget(unit);
      if ((await affected(this.db, sql`UPDATE ${t.table} SET stock = stock + ${n} WHERE ${t.where} AND stock + ${n} <= ${max}`)) === 1) return 'ok';
      return (await readStock(this.db, unit, false)) === null ? 'not_found' : 'too_much';
    });
  }

  setPaused(campaignId: string, paused: boolean): Promise<boolean> {
    return guarded(async () => {
      await sql`UPDATE campaigns SET paused = ${paused ? 1 : 0} WHERE id = ${campaignId}`.execute(this.db);
      return (await rows(this.db, sql`SELECT id FROM campaigns WHERE id = ${campaignId}`)).length === 1;
    });
  }

  getSeed(campaignId: string): Promise<{ seed: string; revealedAt: number | null } | null> {
    return guarded(async () => {
      const r = (await rows(this.db, sql`SELECT seed, seed_revealed_at FROM campaigns WHERE id = ${campaignId}`))[0];
      if (!r || r.seed === null) return null;
      return { seed: String(r.seed).trim(), revealedAt: r.seed_revealed_at === null ? null : Number(r.seed_revealed_at) };
    });
  }

  revealSeed(campaignId: string, nowMs: number): Promise<void> {
    return guarded(async () => {
      await sql`UPDATE campaigns SET seed_revealed_at = ${nowMs} WHERE id = ${campaignId} AND seed_revealed_at IS NULL`.execute(this.db);
    });
  }

  getDraw(claimId: string): Promise<string | null> {
    return guarded(async () => {
      const r = (await rows(this.db, sql`SELECT draw FROM claims WHERE id = ${claimId}`))[0];
      return r && r.draw !== null ? String(r.draw) : null;
    });
  }

  listCampaigns(limit: number, afterId: string | null): Promise<Campaign[]> {
    const after = afterId === null ? sql`` : sql` WHERE id > ${afterId}`;
    return guarded(async () => {
      const list = await rows(this.db, sql`SELECT * FROM campaigns${after} ORDER BY id LIMIT ${limit}`);
      const out: Campaign[] = [];
      for (const r of list) out.push(toCampaign(r, String(r.kind) === 'lottery' ? await this.prizesOf(String(r.id)) : []));
      return out;
    });
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

  audit(campaignId: string): Promise<AuditCheck[]> {
    return guarded(() => runAudit(this.db, campaignId, this.sqlDialect.family));
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
