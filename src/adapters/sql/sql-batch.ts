// The ClaimBatchStore port over SQL: a batch of claims on one unit in one transaction, one
// set-based statement per step. The shape follows what was measured to matter (issue #9): the
// members' key rows and counter rows are locked in a fixed order (sorted ids), and the hot
// stock row is touched last, once for the whole batch, so its lock is held from that single
// statement to the commit.
//   1. the members' Idempotency-Key rows: inserted by the batch, already done with each
//      member's answer, for keys nobody took yet (one write per key instead of a take, a lock
//      and a completion; a key already present leaves its member out, unchanged); for keys
//      taken beforehand (a lottery's redraw), the rows still theirs, locked FOR UPDATE;
//   2. every user's limits in one guarded multi-row upsert (MySQL: lock, decide, write back);
//   3. the issued claims in one multi-row INSERT;
//   4. the keys taken beforehand completed in one UPDATE (and the batch's own keys of refused
//      members put back to running, still their request's, which stores the refusal);
//   5. the stock: issued += n only while issued + n <= stock (all-or-nothing), or, near the
//      end of the stock (`up-to`), the row locked first and units handed out while they last.
// On PostgreSQL (and PGlite) the usual batch — all-or-nothing, every key taken by the batch —
// is ONE statement instead (commitInOneStatement: the same steps as data-modifying CTEs, no
// BEGIN/COMMIT): one round trip per batch instead of six, which is what matters once the
// database is a network away (bench/results/claims-rtt.md). On MariaDB ≥ 10.6 the same batches
// are one compound statement (commitInOneBlock: BEGIN NOT ATOMIC … END runs the transaction on
// the server), one round trip instead of eleven. What they cannot decide alone (a key inserted
// meanwhile by another request, a key twice in the batch, keys taken beforehand, the last
// units) goes the transactional way.
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { AllotError } from '../../core/errors.ts';
import type { BatchMember, ClaimBatchStore, MemberVerdict } from '../../ports/claim-batch.ts';
import type { StockUnit, UserLimits } from '../../ports/claim-store.ts';
import type { SqlDialect } from './dialect.ts';
import { isUnavailable, isUniqueViolation } from './errors.ts';
import { translate } from './translate.ts';
import { affected, byKeys, rows, stockTarget, type Db } from './exec.ts';


const NO_DAILY_LIMIT = 2_147_483_647;

class WouldOversell extends Error {}

// The one-statement batch aborts itself by casting one of these (and a count) to an integer:
// plain SQL has no RAISE, and the cast's error carries the marker in its message.
const ABORT_KEY_RACE = 'allot-batch-abort:key-race:';
const ABORT_OVERSELL = 'allot-batch-abort:would-oversell:';

/** The connection failed after the batch was sent: it may or may not have committed. */
function outcomeUnknown(cause: unknown): AllotError {
  return new AllotError('UNAVAILABLE', 'The database connection failed while committing a batch of claims; the outcome is unknown. Retry with the same Idempotency-Key to learn it.', { outcome: 'unknown' }, { cause });
}

/** Each member's verdict from the rows a one-round-trip batch answers (ord, got: the day when
 * issued, null when its limits refused it; keyExisted: its key was there before the batch). */
function verdictsOf(n: number, out: Array<Record<string, unknown>>, keyExisted: (r: Record<string, unknown>) => boolean, what: string): MemberVerdict[] {
  if (out.length !== n) throw new Error(`${what} answered ${out.length} of ${n} members`);
  const verdicts: MemberVerdict[] = Array.from({ length: n }, () => ({ kind: 'sold_out' }));
  for (const r of out) {
    verdicts[Number(r.ord)] = keyExisted(r) ? { kind: 'key_exists' } : r.got === null || r.got === undefined ? { kind: 'user_limit' } : { kind: 'issued', day: String(r.got) };
  }
  return verdicts;
}

/** The one-statement batch takes every member's key itself (or the member has none), and no key
 * twice (a key sent by two users in one batch is decided by the transactional path). */
function oneStatementFits(members: BatchMember[]): boolean {
  const keys = new Set<string>();
  for (const m of members) {
    if (m.completion === null) continue;
    if (m.takeKey === undefined || keys.has(m.completion.key)) return false;
    keys.add(m.completion.key);
  }
  return true;
}

export class SqlClaimBatchStore implements ClaimBatchStore {
  private readonly oneStatementOn: boolean;
  /** MariaDB ≥ 10.6 (anonymous compound statements and JSON_TABLE): asked once */
  private blocks: Promise<boolean> | undefined;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(private readonly db: Kysely<any>, private readonly dialect: SqlDialect, opts: { oneStatement?: boolean } = {}) {
    this.oneStatementOn = opts.oneStatement ?? true;
  }

  async commitBatch(unit: StockUnit | null, limits: UserLimits, members: BatchMember[], mode: 'all' | 'up-to'): Promise<MemberVerdict[] | null> {
    if (this.oneStatementOn && mode === 'all' && oneStatementFits(members)) {
      if (this.dialect.family === 'pg') {
        const r = await this.commitInOneStatement(unit, limits, members);
        if (r !== 'fallback') return r;
      } else if (await this.mariaDbBlocks()) {
        const r = await this.commitInOneBlock(unit, limits, members);
        if (r !== 'fallback') return r;
      }
    }
    let bodyDone = false;
    try {
      return await this.db.transaction().execute(async (trx) => {
        const out = await this.decide(trx, unit, limits, members, mode);
        bodyDone = true;
        return out;
      });
    } catch (err) {
      if (err instanceof WouldOversell) return null;
      if (bodyDone && isUnavailable(err)) {
        throw outcomeUnknown(err);
      }
      throw translate(err);
    }
  }

  /**
   * PostgreSQL, `all` mode, every member's key taken by the batch (or none): the whole batch in
   * ONE statement, committed on its own (no BEGIN/COMMIT), instead of six round trips. The
   * steps are data-modifying CTEs, chained through what they return, so they run in this order
   * and the hot stock row is locked last, from its UPDATE to the statement's commit:
   *   seen — members whose key is already there (in the statement's snapshot): key_exists,
   *          they change nothing;
   *   u    — the others' user guards, one multi-row upsert in user order (as guardUsers);
   *   cl   — the claims of members whose guard passed;
   *   ky   — the members' keys, in key order: done with the answer when issued, running and
   *          still their request's when the guard refused them (the refusal is stored by the
   *          request, as after decide's reopen);
   *   st   — the stock: issued += n only while issued + n <= stock.
   * The statement aborts whole (nothing of it is kept) when a key it did not see in its
   * snapshot was inserted meanwhile by another request (ky's ON CONFLICT skipped it) or when
   * the stock would be oversold: the first case falls back to the transactional path, which
   * decides keys first; the second answers null (the caller runs `up-to`). A unique violation
   * (a claim with the same key committed meanwhile) falls back as well.
   */
  private async commitInOneStatement(unit: StockUnit | null, limits: UserLimits, members: BatchMember[]): Promise<MemberVerdict[] | null | 'fallback'> {
    const q = this.oneStatement(unit, limits, members);
    let sent = false;
    try {
      const out = await this.db.connection().execute(async (c) => {
        sent = true;
        return rows(c, q);
      });
      return verdictsOf(members.length, out, (r) => r.key_exists === true, 'one-statement batch');
    } catch (err) {
      const msg = (err as { message?: unknown } | null)?.message;
      if (typeof msg === 'string' && msg.includes(ABORT_OVERSELL)) return null;
      if ((typeof msg === 'string' && msg.includes(ABORT_KEY_RACE)) || isUniqueViolation(err)) return 'fallback';
      // A statement canceled by the server (statement_timeout, a cancel request: 57014) ended
      // without committing — one statement commits on its own only when it completes — so
      // nothing was issued (translate says so); any other lost connection leaves it unknown.
      if (sent && isUnavailable(err) && (err as { code?: unknown }).code !== '57014') {
        throw outcomeUnknown(err);
      }
      throw translate(err);
    }
  }

  private oneStatement(unit: StockUnit | null, limits: UserLimits, members: BatchMember[]): RawBuilder<unknown> {
    const daily = limits.perUserDailyLimit ?? NO_DAILY_LIMIT;
    const campaignId = members[0]!.claim.campaignId;
    const scope = members.find((m) => m.completion !== null)?.completion!.scope ?? campaignId;
    const col = <T>(pick: (m: BatchMember) => T) => members.map(pick);
    const taken = (m: BatchMember) => m.takeKey !== undefined;
    const stock = unit === null ? null : stockTarget(unit);
    return sql`
      WITH m AS (
        SELECT * FROM unnest(${members.map((_, i) => i)}::integer[], ${col((m) => m.claim.id)}::text[], ${col((m) => m.claim.userId)}::text[], ${col((m) => m.claim.prizeId)}::text[],
          ${col((m) => m.day)}::text[], ${col((m) => m.claim.createdAt)}::bigint[], ${col((m) => m.idempotencyKey)}::text[], ${col((m) => m.draw)}::text[],
          ${col((m) => (taken(m) ? m.completion!.key : null))}::text[], ${col((m) => (taken(m) ? m.takeKey!.fingerprint : null))}::text[], ${col((m) => (taken(m) ? m.completion!.owner : null))}::text[],
          ${col((m) => (taken(m) ? m.takeKey!.lockedUntil : null))}::bigint[], ${col((m) => (taken(m) ? m.takeKey!.createdAt : null))}::bigint[],
          ${col((m) => (taken(m) ? m.completion!.response.status : null))}::integer[], ${col((m) => (taken(m) ? JSON.stringify(m.completion!.response.body) : null))}::text[],
          ${col((m) => (taken(m) ? m.completion!.ref : null))}::text[])
          AS x(ord, cid, uid, pid, day, ca, ik, dr, kk, kf, ko, klu, kca, ks, kr, kref)
      ),
      seen AS (
        -- by primary-key probes (byKeys: never planned as a read of every key of the campaign)
        ${byKeys('pg', 'idempotency_keys', ['idem_key'], { col: 'campaign_id', value: scope }, 'idem_key', members.filter(taken).map((m) => m.completion!.key))}
      ),
      cand AS (SELECT * FROM m WHERE kk IS NULL OR kk NOT IN (SELECT idem_key FROM seen)),
      u AS (
        INSERT INTO user_claims AS u (campaign_id, user_id, total, utc_day, day_count)
        SELECT ${campaignId}, uid, 1, day, 1 FROM cand ORDER BY uid
        ON CONFLICT (campaign_id, user_id) DO UPDATE SET
          total = u.total + 1,
          day_count = CASE WHEN u.utc_day >= EXCLUDED.utc_day THEN u.day_count + 1 ELSE 1 END,
          utc_day = GREATEST(u.utc_day, EXCLUDED.utc_day)
        WHERE u.total < ${limits.perUserLimit} AND (u.utc_day < EXCLUDED.utc_day OR u.day_count < ${daily})
        RETURNING user_id, utc_day
      ),
      v AS (SELECT cand.*, u.utc_day AS got FROM cand LEFT JOIN u ON u.user_id = cand.uid),
      cl AS (
        INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key, draw)
        SELECT cid, ${campaignId}, uid, pid, got, ca, ik, dr FROM v WHERE got IS NOT NULL
        RETURNING id
      ),
      ky AS (
        INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, status_code, response, claim_id, created_at)
        SELECT ${scope}, kk, kf, CASE WHEN got IS NULL THEN 'running' ELSE 'done' END, ko, klu,
          CASE WHEN got IS NULL THEN NULL ELSE ks END, CASE WHEN got IS NULL THEN NULL ELSE kr END, CASE WHEN got IS NULL THEN NULL ELSE kref END, kca
        FROM v WHERE kk IS NOT NULL ORDER BY kk
        ON CONFLICT (campaign_id, idem_key) DO NOTHING
        RETURNING idem_key
      )${stock === null ? sql`` : sql`,
      st AS (
        UPDATE ${stock.table} SET issued = issued + (SELECT count(*) FROM cl)
        WHERE ${stock.where} AND issued + (SELECT count(*) FROM cl) <= stock AND (SELECT count(*) FROM ky) >= 0
        RETURNING 1
      )`},
      chk AS (
        SELECT (SELECT count(*) FROM v WHERE kk IS NOT NULL) AS want, (SELECT count(*) FROM ky) AS got_keys,
          (SELECT count(*) FROM cl) AS n, ${stock === null ? sql`1` : sql`(SELECT count(*) FROM st)`} AS stocked
      )
      SELECT m.ord, v.got, (v.ord IS NULL) AS key_exists,
        CASE WHEN chk.want <> chk.got_keys THEN CAST(${ABORT_KEY_RACE}::text || chk.got_keys AS integer)
             WHEN chk.n > 0 AND chk.stocked = 0 THEN CAST(${ABORT_OVERSELL}::text || chk.n AS integer)
             ELSE 0 END AS ok
      FROM m CROSS JOIN chk LEFT JOIN v ON v.ord = m.ord`;
  }

  /** The server runs anonymous compound statements (BEGIN NOT ATOMIC, MariaDB 10.1+) and
   * JSON_TABLE (MariaDB 10.6+). MySQL has no anonymous compound statements (outside stored programs): its batches stay transactional. */
  private mariaDbBlocks(): Promise<boolean> {
    this.blocks ??= rows(this.db, sql`SELECT VERSION() AS v`).then(
      (r) => {
        const m = /^(\d+)\.(\d+)\.\d+-MariaDB/.exec(String(r[0]?.v ?? ''));
        return m !== null && (Number(m[1]) > 10 || (Number(m[1]) === 10 && Number(m[2]) >= 6));
      },
      () => {
        this.blocks = undefined; // asked again by the next batch
        return false;
      },
    );
    return this.blocks;
  }

  /**
   * MariaDB, the same batches as commitInOneStatement: ONE round trip, an anonymous compound
   * statement (BEGIN NOT ATOMIC … END) that runs the transaction on the server — instead of
   * BEGIN, nine statements and COMMIT. The members come as one JSON array (JSON_TABLE) into a
   * temporary table of the session, which carries each member's state between the steps:
   *   seen  — members whose key is already there: key_exists, they change nothing;
   *   users — the others' counter rows created or locked, in user order (as guardUsers), each
   *           member's verdict decided on the locked row, the passing ones written back;
   *   the claims, then the keys in key order (done with the answer when issued, running and
   *   still their request's when the guard refused them), then the stock, last:
   *           issued += n only while issued + n <= stock, else SIGNAL (would oversell).
   * Any error rolls the whole transaction back (the block's exit handler) and reaches the
   * client: a key inserted meanwhile by another request (a duplicate on the keys' INSERT) or a
   * claim id already there falls back to the transactional path; would-oversell answers null.
   */
  private async commitInOneBlock(unit: StockUnit | null, limits: UserLimits, members: BatchMember[]): Promise<MemberVerdict[] | null | 'fallback'> {
    const daily = limits.perUserDailyLimit ?? NO_DAILY_LIMIT;
    const campaignId = members[0]!.claim.campaignId;
    const scope = members.find((m) => m.completion !== null)?.completion!.scope ?? campaignId;
    const taken = (m: BatchMember) => m.takeKey !== undefined && m.completion !== null;
    const data = JSON.stringify(
      members.map((m, i) => [
        i, m.claim.id, m.claim.userId, m.claim.prizeId, m.day, m.claim.createdAt, m.idempotencyKey, m.draw,
        ...(taken(m)
          ? [m.completion!.key, m.takeKey!.fingerprint, m.completion!.owner, m.takeKey!.lockedUntil, m.takeKey!.createdAt, m.completion!.response.status, JSON.stringify(m.completion!.response.body), m.completion!.ref]
          : [null, null, null, null, null, null, null, null]),
      ]),
    );
    const stock = unit === null ? null : stockTarget(unit);
    const ascii = sql.raw('CHARACTER SET ascii COLLATE ascii_bin');
    const q = sql`BEGIN NOT ATOMIC
      DECLARE n INT DEFAULT 0;
      DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
      CREATE TEMPORARY TABLE IF NOT EXISTS allot_batch_members (
        ord INT NOT NULL PRIMARY KEY, cid VARCHAR(128) ${ascii} NOT NULL, uid VARCHAR(128) ${ascii} NOT NULL, pid VARCHAR(128) ${ascii} NULL,
        day CHAR(10) NOT NULL, ca BIGINT NOT NULL, ik VARCHAR(255) ${ascii} NULL, dr MEDIUMTEXT NULL,
        kk VARCHAR(255) ${ascii} NULL, kf CHAR(64) NULL, ko VARCHAR(64) NULL, klu BIGINT NULL, kca BIGINT NULL, ks INT NULL, kr MEDIUMTEXT NULL, kref VARCHAR(128) ${ascii} NULL,
        seen TINYINT NOT NULL DEFAULT 0, got CHAR(10) NULL, nt INT NULL, nc INT NULL
      ) ENGINE=InnoDB;
      DELETE FROM allot_batch_members;
      START TRANSACTION;
      INSERT INTO allot_batch_members (ord, cid, uid, pid, day, ca, ik, dr, kk, kf, ko, klu, kca, ks, kr, kref)
        SELECT ord, cid, uid, pid, day, ca, ik, dr, kk, kf, ko, klu, kca, ks, kr, kref FROM JSON_TABLE(${data}, '$[*]' COLUMNS (
          ord INT PATH '$[0]', cid VARCHAR(128) PATH '$[1]', uid VARCHAR(128) PATH '$[2]', pid VARCHAR(128) PATH '$[3]', day CHAR(10) PATH '$[4]', ca BIGINT PATH '$[5]',
          ik VARCHAR(255) PATH '$[6]', dr MEDIUMTEXT PATH '$[7]', kk VARCHAR(255) PATH '$[8]', kf CHAR(64) PATH '$[9]', ko VARCHAR(64) PATH '$[10]', klu BIGINT PATH '$[11]',
          kca BIGINT PATH '$[12]', ks INT PATH '$[13]', kr MEDIUMTEXT PATH '$[14]', kref VARCHAR(128) PATH '$[15]')) AS j;
      UPDATE allot_batch_members b JOIN idempotency_keys k ON k.campaign_id = ${scope} AND k.idem_key = b.kk SET b.seen = 1;
      INSERT INTO user_claims (campaign_id, user_id, total, utc_day, day_count)
        SELECT ${campaignId}, uid, 0, day, 0 FROM allot_batch_members WHERE seen = 0 ORDER BY uid
        ON DUPLICATE KEY UPDATE total = total;
      UPDATE allot_batch_members b JOIN user_claims u ON u.campaign_id = ${campaignId} AND u.user_id = b.uid
        SET b.got = IF(u.total < ${limits.perUserLimit} AND (u.utc_day < b.day OR u.day_count < ${daily}), GREATEST(u.utc_day, b.day), NULL),
          b.nt = u.total + 1, b.nc = IF(u.utc_day >= b.day, u.day_count + 1, 1)
        WHERE b.seen = 0;
      UPDATE user_claims u JOIN allot_batch_members b ON u.campaign_id = ${campaignId} AND u.user_id = b.uid
        SET u.total = b.nt, u.utc_day = b.got, u.day_count = b.nc WHERE b.got IS NOT NULL;
      INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key, draw)
        SELECT cid, ${campaignId}, uid, pid, got, ca, ik, dr FROM allot_batch_members WHERE got IS NOT NULL ORDER BY ord;
      INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, status_code, response, claim_id, created_at)
        SELECT ${scope}, kk, kf, IF(got IS NULL, 'running', 'done'), ko, klu, IF(got IS NULL, NULL, ks), IF(got IS NULL, NULL, kr), IF(got IS NULL, NULL, kref), kca
        FROM allot_batch_members WHERE kk IS NOT NULL AND seen = 0 ORDER BY kk;
      SET n = (SELECT COUNT(*) FROM allot_batch_members WHERE got IS NOT NULL);
      ${stock === null ? sql`` : sql`IF n > 0 THEN
        UPDATE ${stock.table} SET issued = issued + n WHERE ${stock.where} AND issued + n <= stock;
        IF ROW_COUNT() <> 1 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = ${ABORT_OVERSELL}; END IF;
      END IF;`}
      COMMIT;
      SELECT ord, got, seen FROM allot_batch_members ORDER BY ord;
    END`;
    let sent = false;
    try {
      const out = await this.db.connection().execute(async (c) => {
        sent = true;
        try {
          return (await q.execute(c)).rows as unknown;
        } catch (err) {
          // The block's exit handler rolls its transaction back (checked for errors, a
          // max_statement_time interrupt and KILL QUERY). Should any path leave it open, the
          // connection must not go back to the pool inside it: the next START TRANSACTION
          // there would commit this batch's half.
          await sql`ROLLBACK`.execute(c).catch(() => undefined);
          throw err;
        }
      });
      // a compound statement answers its result sets and a final OK: the first is the members'
      const result = Array.isArray(out) && Array.isArray(out[0]) ? (out[0] as Array<Record<string, unknown>>) : [];
      return verdictsOf(members.length, result, (r) => Number(r.seen) === 1, 'one-block batch');
    } catch (err) {
      const msg = (err as { message?: unknown } | null)?.message;
      if (typeof msg === 'string' && msg.includes(ABORT_OVERSELL)) return null;
      if (isUniqueViolation(err)) return 'fallback';
      if (sent && isUnavailable(err)) {
        throw outcomeUnknown(err);
      }
      throw translate(err);
    }
  }

  private async decide(trx: Db, unit: StockUnit | null, limits: UserLimits, members: BatchMember[], mode: 'all' | 'up-to'): Promise<MemberVerdict[]> {
    const verdicts: Array<MemberVerdict | null> = members.map(() => null);
    // Lock order: by user id everywhere (members are distinct users).
    const order = members.map((_, i) => i).sort((a, b) => (members[a]!.claim.userId < members[b]!.claim.userId ? -1 : 1));

    // 1. Keys taken by the batch itself: inserted (done, with the member's answer), or found
    //    already present (another request has the key: that member changes nothing).
    const taking = order.filter((i) => members[i]!.takeKey !== undefined && members[i]!.completion !== null);
    if (taking.length > 0) {
      const ours = await this.insertKeys(trx, taking.map((i) => members[i]!));
      for (const i of taking) if (!ours.has(`${members[i]!.completion!.key}\u0000${members[i]!.completion!.owner}`)) verdicts[i] = { kind: 'key_exists' };
    }
    // 1b. Keys taken beforehand, still owned by their request.
    const keyed = order.filter((i) => members[i]!.takeKey === undefined && members[i]!.completion !== null);
    if (keyed.length > 0) {
      const scope = members[keyed[0]!]!.completion!.scope;
      // By the primary key, locked in key order; the owner is compared here, on the locked rows.
      const keys = keyed.map((i) => members[i]!.completion!.key).sort();
      const held = new Map(
        (await rows(trx, byKeys(this.dialect.family, 'idempotency_keys', ['idem_key', 'owner'], { col: 'campaign_id', value: scope }, 'idem_key', keys, { where: sql`state = 'running'`, forUpdate: true }))).map((r) => [String(r.idem_key), String(r.owner)]),
      );
      for (const i of keyed) if (held.get(members[i]!.completion!.key) !== members[i]!.completion!.owner) verdicts[i] = { kind: 'key_lost' };
    }

    let remaining = Number.POSITIVE_INFINITY;
    if (unit !== null && mode === 'up-to') {
      const t = stockTarget(unit);
      const r = (await rows(trx, sql`SELECT stock, issued FROM ${t.table} WHERE ${t.where} FOR UPDATE`))[0];
      remaining = r ? Number(r.stock) - Number(r.issued) : 0;
    }

    // 2. User limits, set-based; in `up-to` mode only as many at a time as units remain.
    const issued: number[] = [];
    let pending = order.filter((i) => verdicts[i] === null);
    while (pending.length > 0) {
      const room = remaining - issued.length;
      if (room <= 0) {
        for (const i of pending) verdicts[i] = { kind: 'sold_out' };
        break;
      }
      const chunk = pending.slice(0, Math.min(pending.length, room));
      pending = pending.slice(chunk.length);
      const days = await this.guardUsers(trx, members[chunk[0]!]!.claim.campaignId, limits, chunk.map((i) => members[i]!));
      chunk.forEach((i, j) => {
        const day = days[j];
        verdicts[i] = day === null || day === undefined ? { kind: 'user_limit' } : { kind: 'issued', day };
        if (day !== null && day !== undefined) issued.push(i);
      });
    }

    if (issued.length > 0) {
      // 3. The claims.
      const dayOf = (i: number) => (verdicts[i] as { day: string }).day;
      if (this.dialect.family === 'pg') {
        const col = <T>(pick: (m: BatchMember, i: number) => T) => issued.map((i) => pick(members[i]!, i));
        await sql`INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key, draw)
          SELECT id, ${members[issued[0]!]!.claim.campaignId}, u, p, d, ca, k, dr
          FROM unnest(${col((m) => m.claim.id)}::text[], ${col((m) => m.claim.userId)}::text[], ${col((m) => m.claim.prizeId)}::text[], ${col((_, i) => dayOf(i))}::text[],
            ${col((m) => m.claim.createdAt)}::bigint[], ${col((m) => m.idempotencyKey)}::text[], ${col((m) => m.draw)}::text[]) AS x(id, u, p, d, ca, k, dr)`.execute(trx);
      } else {
        const values = issued.map((i) => {
          const m = members[i]!;
          return sql`(${m.claim.id}, ${m.claim.campaignId}, ${m.claim.userId}, ${m.claim.prizeId}, ${dayOf(i)}, ${m.claim.createdAt}, ${m.idempotencyKey}, ${m.draw})`;
        });
        await sql`INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key, draw) VALUES ${sql.join(values)}`.execute(trx);
      }
      // 4. Their keys (those the batch inserted are done already).
      const done = issued.filter((i) => members[i]!.completion !== null && members[i]!.takeKey === undefined);
      if (done.length > 0) await this.completeKeys(trx, done.map((i) => members[i]!));
      // 5. The stock, last.
      if (unit !== null) {
        const t = stockTarget(unit);
        const n = issued.length;
        if (mode === 'all') {
          if ((await affected(trx, sql`UPDATE ${t.table} SET issued = issued + ${n} WHERE ${t.where} AND issued + ${n} <= stock`)) !== 1) throw new WouldOversell();
        } else {
          await sql`UPDATE ${t.table} SET issued = issued + ${n} WHERE ${t.where}`.execute(trx);
        }
      }
    }
    // A refused member whose key the batch inserted as done: back to running, still its
    // request's, which stores the refusal (or, for a lottery, draws again) as usual.
    const refusedTaken = taking.filter((i) => verdicts[i]?.kind !== 'issued' && verdicts[i]?.kind !== 'key_exists');
    if (refusedTaken.length > 0) await this.reopenKeys(trx, refusedTaken.map((i) => members[i]!));
    return verdicts.map((v) => v ?? { kind: 'sold_out' });
  }

  /** Inserts the members' keys as done with their answers; returns `key\0owner` of the rows
   * that went in (a key already present is not among them; a key twice in the batch is there
   * for one of its owners only). */
  private async insertKeys(trx: Db, members: BatchMember[]): Promise<Set<string>> {
    // In key order, like every batch: two batches that share keys take them in the same order.
    const ms = [...members].sort((a, b) => (a.completion!.key < b.completion!.key ? -1 : a.completion!.key > b.completion!.key ? 1 : 0));
    const scope = ms[0]!.completion!.scope;
    const cols = sql`(campaign_id, idem_key, fingerprint, state, owner, locked_until, status_code, response, claim_id, created_at)`;
    if (this.dialect.family === 'pg') {
      // One array per column (unnest): ten parameters whatever the batch size, instead of ten
      // per member. The rows that went in come back (a key twice in the batch goes in once, for
      // its first owner).
      const col = <T>(pick: (m: BatchMember) => T) => ms.map(pick);
      const r = await rows(trx, sql`INSERT INTO idempotency_keys ${cols}
        SELECT ${scope}, k, f, 'done', o, lu, sc, r, c, ca
        FROM unnest(${col((m) => m.completion!.key)}::text[], ${col((m) => m.takeKey!.fingerprint)}::text[], ${col((m) => m.completion!.owner)}::text[],
          ${col((m) => m.takeKey!.lockedUntil)}::bigint[], ${col((m) => m.completion!.response.status)}::integer[], ${col((m) => JSON.stringify(m.completion!.response.body))}::text[],
          ${col((m) => m.completion!.ref)}::text[], ${col((m) => m.takeKey!.createdAt)}::bigint[]) AS x(k, f, o, lu, sc, r, c, ca)
        ON CONFLICT (campaign_id, idem_key) DO NOTHING RETURNING idem_key, owner`);
      return new Set(r.map((x) => `${String(x.idem_key)}\u0000${String(x.owner)}`));
    }
    const values = sql.join(ms.map((m) => {
      const c = m.completion!;
      const t = m.takeKey!;
      return sql`(${scope}, ${c.key}, ${t.fingerprint}, 'done', ${c.owner}, ${t.lockedUntil}, ${c.response.status}, ${JSON.stringify(c.response.body)}, ${c.ref}, ${t.createdAt})`;
    }));
    // MySQL: rows already there are left as they are (and locked); the rows read back tell
    // which are ours: our owner, done, and no claim of the member's yet. A row with our owner
    // can be there before us: the same member written by another instance (two instances
    // replaying one write-behind stream), whose claim then is in SQL too (committed with it:
    // this statement waited for that transaction on the row's lock, and the reads below lock,
    // so they see it whatever the isolation level).
    await sql`INSERT INTO idempotency_keys ${cols} VALUES ${values} ON DUPLICATE KEY UPDATE campaign_id = campaign_id`.execute(trx);
    const keys = sql.join(ms.map((m) => sql`${m.completion!.key}`));
    const found = new Map((await rows(trx, sql`SELECT idem_key, owner, state FROM idempotency_keys WHERE campaign_id = ${scope} AND idem_key IN (${keys}) FOR UPDATE`)).map((r) => [String(r.idem_key), `${String(r.owner)}\u0000${String(r.state)}`]));
    const candidates = ms.filter((m) => found.get(m.completion!.key) === `${m.completion!.owner}\u0000done`);
    const written = candidates.length === 0
      ? new Set<string>()
      : new Set((await rows(trx, sql`SELECT id FROM claims WHERE id IN (${sql.join(candidates.map((m) => sql`${m.claim.id}`))}) LOCK IN SHARE MODE`)).map((r) => String(r.id)));
    return new Set(candidates.filter((m) => !written.has(m.claim.id)).map((m) => `${m.completion!.key}\u0000${m.completion!.owner}`));
  }

  private async reopenKeys(trx: Db, ms: BatchMember[]): Promise<void> {
    const n = await affected(trx, this.reopenKeysSql(ms));
    if (n !== ms.length) throw new Error(`batch key reopen updated ${n} of ${ms.length} keys the batch inserted`);
  }

  private reopenKeysSql(ms: BatchMember[]): RawBuilder<unknown> {
    const scope = ms[0]!.completion!.scope;
    const keys = sql.join(ms.map((m) => sql`${m.completion!.key}`));
    const owners = sql.join(ms.map((m) => sql`${m.completion!.owner}`));
    if (this.dialect.family === 'pg') {
      // By primary-key probes (the rows' ctid, stable while this transaction holds them):
      // with statistics from before the campaign grew, an IN list was planned as a read of
      // every key of the campaign (test/adapters/sql/stale-stats.test.ts).
      return sql`UPDATE idempotency_keys AS k SET state = 'running', status_code = NULL, response = NULL, claim_id = NULL
        FROM (${byKeys('pg', 'idempotency_keys', ['ctid', 'owner'], { col: 'campaign_id', value: scope }, 'idem_key', ms.map((m) => m.completion!.key))}) AS p
        WHERE k.ctid = p.ctid AND k.owner = ANY(${ms.map((m) => m.completion!.owner)}::text[]) AND k.state = 'done'`;
    }
    return sql`UPDATE idempotency_keys SET state = 'running', status_code = NULL, response = NULL, claim_id = NULL
      WHERE campaign_id = ${scope} AND idem_key IN (${keys}) AND owner IN (${owners}) AND state = 'done'`;
  }

  /** The per-user guard of `guardUser` for many users at once; returns each one's day, or null
   * when its limits refuse it. */
  private async guardUsers(trx: Db, campaignId: string, limits: UserLimits, ms: BatchMember[]): Promise<Array<string | null>> {
    const daily = limits.perUserDailyLimit ?? NO_DAILY_LIMIT;
    if (this.dialect.capabilities.guardedUpsert) {
      const got = new Map(
        (await rows(trx, sql`
          INSERT INTO user_claims AS u (campaign_id, user_id, total, utc_day, day_count)
          SELECT ${campaignId}, x.user_id, 1, x.day, 1 FROM unnest(${ms.map((m) => m.claim.userId)}::text[], ${ms.map((m) => m.day)}::text[]) AS x(user_id, day)
          ON CONFLICT (campaign_id, user_id) DO UPDATE SET
            total = u.total + 1,
            day_count = CASE WHEN u.utc_day >= EXCLUDED.utc_day THEN u.day_count + 1 ELSE 1 END,
            utc_day = GREATEST(u.utc_day, EXCLUDED.utc_day)
          WHERE u.total < ${limits.perUserLimit} AND (u.utc_day < EXCLUDED.utc_day OR u.day_count < ${daily})
          RETURNING user_id, utc_day`)).map((r) => [String(r.user_id), String(r.utc_day)]),
      );
      return ms.map((m) => got.get(m.claim.userId) ?? null);
    }
    // MySQL: create the missing rows, lock them all (in user order), decide here, write back.
    const zeros = sql.join(ms.map((m) => sql`(${campaignId}, ${m.claim.userId}, 0, ${m.day}, 0)`));
    await sql`INSERT INTO user_claims (campaign_id, user_id, total, utc_day, day_count) VALUES ${zeros} ON DUPLICATE KEY UPDATE total = total`.execute(trx);
    const ids = sql.join(ms.map((m) => sql`${m.claim.userId}`));
    const current = new Map(
      (await rows(trx, sql`SELECT user_id, total, utc_day, day_count FROM user_claims WHERE campaign_id = ${campaignId} AND user_id IN (${ids}) ORDER BY user_id FOR UPDATE`)).map((r) => [
        String(r.user_id),
        { total: Number(r.total), day: String(r.utc_day), dayCount: Number(r.day_count) },
      ]),
    );
    const next: Array<{ userId: string; total: number; day: string; dayCount: number } | null> = ms.map((m) => {
      const c = current.get(m.claim.userId) ?? { total: 0, day: m.day, dayCount: 0 };
      if (c.total >= limits.perUserLimit) return null;
      if (c.day >= m.day && c.dayCount >= daily) return null;
      const day = c.day > m.day ? c.day : m.day;
      return { userId: m.claim.userId, total: c.total + 1, day, dayCount: c.day >= m.day ? c.dayCount + 1 : 1 };
    });
    const writes = next.filter((x) => x !== null);
    if (writes.length > 0) {
      const vals = sql.join(writes.map((w) => sql`(${campaignId}, ${w.userId}, ${w.total}, ${w.day}, ${w.dayCount})`));
      await sql`INSERT INTO user_claims (campaign_id, user_id, total, utc_day, day_count) VALUES ${vals}
        ON DUPLICATE KEY UPDATE total = VALUES(total), utc_day = VALUES(utc_day), day_count = VALUES(day_count)`.execute(trx);
    }
    return next.map((x) => (x === null ? null : x.day));
  }

  private async completeKeys(trx: Db, ms: BatchMember[]): Promise<void> {
    const n = await affected(trx, this.completeKeysSql(ms));
    // The rows were locked as ours in step 1: anything else is a bug, and must not commit.
    if (n !== ms.length) throw new Error(`batch key completion updated ${n} of ${ms.length} keys locked as owned`);
  }

  private completeKeysSql(ms: BatchMember[]): RawBuilder<unknown> {
    const scope = ms[0]!.completion!.scope;
    if (this.dialect.family === 'pg') {
      const values = sql.join(ms.map((m) => {
        const c = m.completion!;
        return sql`(${c.key}::text, ${c.owner}::text, ${c.response.status}::integer, ${JSON.stringify(c.response.body)}::text, ${c.ref}::text)`;
      }));
      // By primary-key probes (see reopenKeysSql), then by the rows' ctid.
      return sql`UPDATE idempotency_keys AS k SET state = 'done', status_code = v.status_code, response = v.response, claim_id = v.claim_id
        FROM (SELECT v.*, p.ctid AS tid FROM (VALUES ${values}) AS v(idem_key, owner, status_code, response, claim_id)
          CROSS JOIN LATERAL (SELECT ctid FROM idempotency_keys WHERE campaign_id = ${scope} AND idem_key = v.idem_key LIMIT 1) AS p) AS v
        WHERE k.ctid = v.tid AND k.owner = v.owner AND k.state = 'running'`;
    }
    const caseOf = (pick: (m: BatchMember) => unknown) => sql.join(ms.map((m) => sql`WHEN ${m.completion!.key} THEN ${pick(m)}`), sql` `);
    // The rows are locked and their owners checked in step 1.
    const keys = sql.join(ms.map((m) => sql`${m.completion!.key}`));
    return sql`UPDATE idempotency_keys SET state = 'done',
        status_code = CASE idem_key ${caseOf((m) => m.completion!.response.status)} END,
        response = CASE idem_key ${caseOf((m) => JSON.stringify(m.completion!.response.body))} END,
        claim_id = CASE idem_key ${caseOf((m) => m.completion!.ref)} END
      WHERE campaign_id = ${scope} AND idem_key IN (${keys}) AND state = 'running'`;
  }
}
