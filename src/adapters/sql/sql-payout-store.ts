// The PayoutStore port over SQL (PGlite, PostgreSQL, MariaDB/MySQL). Money moves only by
// conditional updates whose affected-row count is checked (a debit applies only while the
// bucket covers it; the CHECK constraint is the backstop), in the same transaction as the
// journal entry and the state change it belongs to. Entry ids name their state change
// (f:<funding>, w:<withdrawal>, t:<order>:hold, t:<order>:settle), so the primary key refuses a
// second posting of one phase. 64-bit values travel as decimal text both ways.
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { AllotError } from '../../core/errors.ts';
import type { StoredResponse } from '../../core/idempotency.ts';
import type { Balance, Funding, Resolution, Transfer, TransferState, Withdrawal } from '../../core/payout.ts';
import type { IdempotencyTx } from '../../ports/idempotency-store.ts';
import type { RailOutcome } from '../../ports/payment-rail.ts';
import type { FundResult, LedgerCheck, PayoutStore, ReceiveResult, ResolveResult, WithdrawResult } from '../../ports/payout-store.ts';
import type { SqlConnection } from './connect.ts';
import { sqlDialect, type SqlDialect } from './dialect.ts';
import { isUnavailable, isUniqueViolation } from './errors.ts';
import { completeKey } from './sql-idempotency-store.ts';
import { guarded, translate } from './translate.ts';
import { affected, rows, type Db, type Row } from './exec.ts';


/** The system account money enters by (a funding's other side). */
export const FUNDING_HOLDER = '@funding';

type Bucket = 'available' | 'held' | 'paid_out' | 'funding';
interface Line {
  holder: string;
  bucket: Bucket;
  amount: bigint;
}

/** 64-bit out of range: PostgreSQL 22003, MariaDB/MySQL 1690 (and 1264 for a stored value). */
function isOutOfRange(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return !!e && (e.code === '22003' || e.errno === 1690 || e.errno === 1264);
}

class Refusal extends Error {
  constructor(readonly kind: 'insufficient' | 'exists') {
    super(kind);
  }
}

const big = (v: unknown): bigint => BigInt(String(v ?? '0'));
const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

function toTransfer(r: Row): Transfer {
  const resolution = str(r.resolution);
  return {
    orderId: String(r.order_id),
    userId: String(r.user_id),
    asset: String(r.asset),
    amount: big(r.amount),
    destination: String(r.destination),
    state: String(r.state) as TransferState,
    attempts: Number(r.attempts),
    attemptId: str(r.attempt_id),
    leaseUntil: num(r.lease_until),
    railRef: str(r.rail_ref),
    reason: str(r.reason),
    resolution: resolution === null ? null : { outcome: resolution as Resolution, note: str(r.resolution_note) ?? '', at: Number(r.resolved_at) },
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

export class SqlPayoutStore implements PayoutStore {
  private readonly d: SqlDialect;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly db: Kysely<any>;
  private readonly transferCols: RawBuilder<unknown>;

  constructor(conn: Pick<SqlConnection, 'db' | 'family'>) {
    this.d = sqlDialect(conn.family);
    this.db = conn.db;
    this.transferCols = sql`order_id, user_id, asset, ${this.d.int64Text('amount')} AS amount, destination, state, attempts, attempt_id, lease_until, rail_ref, reason, resolution, resolution_note, resolved_at, created_at, updated_at`;
  }

  /** One transaction; a COMMIT that failed on a broken connection has an unknown outcome. */
  private async tx<T>(fn: (trx: Transaction<unknown>) => Promise<T>): Promise<T> {
    let bodyDone = false;
    try {
      return await this.db.transaction().execute(async (trx) => {
        const out = await fn(trx);
        bodyDone = true;
        return out;
      });
    } catch (err) {
      if (err instanceof Refusal) throw err;
      if (bodyDone && isUnavailable(err)) {
        throw new AllotError('UNAVAILABLE', 'The database connection failed while committing; the outcome is unknown. Retry with the same id or Idempotency-Key to learn it.', { outcome: 'unknown' }, { cause: err });
      }
      if (isOutOfRange(err)) throw new AllotError('VALIDATION_FAILED', 'the amount would take a balance past 9223372036854775807 (2^63-1); nothing was changed', { field: 'amount' });
      throw translate(err);
    }
  }

  /** Moves `amount` between two buckets of a user's account, only while `from` covers it. */
  private async move(db: Db, userId: string, asset: string, from: 'available' | 'held', to: 'held' | 'paid_out' | 'available', amount: bigint): Promise<boolean> {
    const a = this.d.int64(amount);
    return (await affected(db, sql`UPDATE ledger_accounts SET ${sql.raw(from)} = ${sql.raw(from)} - ${a}, ${sql.raw(to)} = ${sql.raw(to)} + ${a}
      WHERE user_id = ${userId} AND asset = ${asset} AND ${sql.raw(from)} >= ${a}`)) === 1;
  }

  private async journal(db: Db, id: string, kind: string, ref: string, asset: string, nowMs: number, lines: Line[]): Promise<void> {
    await sql`INSERT INTO ledger_entries (id, kind, ref, asset, created_at) VALUES (${id}, ${kind}, ${ref}, ${asset}, ${nowMs})`.execute(db);
    const values = lines.map((l) => sql`(${id}, ${l.holder}, ${l.bucket}, ${asset}, ${this.d.int64(l.amount)})`);
    await sql`INSERT INTO ledger_lines (entry_id, holder, bucket, asset, amount) VALUES ${sql.join(values)}`.execute(db);
  }

  async fund(f: Funding): Promise<FundResult> {
    try {
      await this.tx(async (trx) => {
        try {
          await sql`INSERT INTO fundings (id, user_id, asset, amount, created_at) VALUES (${f.id}, ${f.userId}, ${f.asset}, ${this.d.int64(f.amount)}, ${f.createdAt})`.execute(trx);
        } catch (err) {
          if (isUniqueViolation(err)) throw new Refusal('exists');
          throw err;
        }
        const a = this.d.int64(f.amount);
        if (this.d.capabilities.onConflict === 'on-conflict') {
          await sql`INSERT INTO ledger_accounts (user_id, asset, available, held, paid_out) VALUES (${f.userId}, ${f.asset}, ${a}, 0, 0)
            ON CONFLICT (user_id, asset) DO UPDATE SET available = ledger_accounts.available + EXCLUDED.available`.execute(trx);
        } else {
          await sql`INSERT INTO ledger_accounts (user_id, asset, available, held, paid_out) VALUES (${f.userId}, ${f.asset}, ${a}, 0, 0)
            ON DUPLICATE KEY UPDATE available = available + VALUES(available)`.execute(trx);
        }
        await this.journal(trx, `f:${f.id}`, 'funding', f.id, f.asset, f.createdAt, [
          { holder: FUNDING_HOLDER, bucket: 'funding', amount: -f.amount },
          { holder: f.userId, bucket: 'available', amount: f.amount },
        ]);
      });
      return { kind: 'created', funding: f };
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      const r = (await guarded(() => rows(this.db, sql`SELECT id, user_id, asset, ${this.d.int64Text('amount')} AS amount, created_at FROM fundings WHERE id = ${f.id}`)))[0];
      if (!r) throw new AllotError('UNAVAILABLE', 'The funding id conflicted but cannot be read back; nothing was changed. Retry.', { outcome: 'nothing-issued' });
      return { kind: 'exists', funding: { id: String(r.id), userId: String(r.user_id), asset: String(r.asset), amount: big(r.amount), createdAt: Number(r.created_at) } };
    }
  }

  async withdraw(w: Withdrawal, beforeCommit: (tx: IdempotencyTx, w: Withdrawal) => Promise<void>): Promise<WithdrawResult> {
    try {
      await this.tx(async (trx) => {
        // The (user, key) row first: a key used before (its idempotency record purged since)
        // finds its withdrawal whatever the balance is now.
        try {
          await sql`INSERT INTO withdrawals (id, user_id, idem_key, asset, amount, state, created_at)
            VALUES (${w.id}, ${w.userId}, ${w.idempotencyKey}, ${w.asset}, ${this.d.int64(w.amount)}, ${w.state}, ${w.createdAt})`.execute(trx);
        } catch (err) {
          if (isUniqueViolation(err)) throw new Refusal('exists');
          throw err;
        }
        if (!(await this.move(trx, w.userId, w.asset, 'available', 'paid_out', w.amount))) throw new Refusal('insufficient');
        await this.journal(trx, `w:${w.id}`, 'withdrawal', w.id, w.asset, w.createdAt, [
          { holder: w.userId, bucket: 'available', amount: -w.amount },
          { holder: w.userId, bucket: 'paid_out', amount: w.amount },
        ]);
        await beforeCommit(this.keyTx(trx), w);
      });
      return { kind: 'created', withdrawal: w };
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      if (err.kind === 'exists') {
        const r = (await guarded(() => rows(this.db, sql`SELECT id, user_id, idem_key, asset, ${this.d.int64Text('amount')} AS amount, state, created_at FROM withdrawals WHERE user_id = ${w.userId} AND idem_key = ${w.idempotencyKey}`)))[0];
        if (!r) throw new AllotError('UNAVAILABLE', 'The withdrawal key conflicted but cannot be read back; nothing was debited. Retry with the same Idempotency-Key.', { outcome: 'nothing-issued' });
        return { kind: 'exists', withdrawal: { id: String(r.id), userId: String(r.user_id), idempotencyKey: String(r.idem_key), asset: String(r.asset), amount: big(r.amount), state: 'succeeded', createdAt: Number(r.created_at) } };
      }
      return (await this.assetExists(w.asset)) ? { kind: 'insufficient' } : { kind: 'no_asset' };
    }
  }

  private keyTx(trx: Db): IdempotencyTx {
    return {
      completeIdempotency: (scope: string, key: string, owner: string, response: StoredResponse, ref: string | null) => completeKey(trx, scope, key, owner, response, ref),
    };
  }

  private assetExists(asset: string): Promise<boolean> {
    return guarded(async () => (await rows(this.db, sql`SELECT 1 AS x FROM ledger_accounts WHERE asset = ${asset} LIMIT 1`)).length > 0);
  }

  async receiveTransfer(t: Transfer): Promise<ReceiveResult> {
    try {
      await this.tx(async (trx) => {
        try {
          await sql`INSERT INTO transfers (order_id, user_id, asset, amount, destination, state, attempts, created_at, updated_at)
            VALUES (${t.orderId}, ${t.userId}, ${t.asset}, ${this.d.int64(t.amount)}, ${t.destination}, 'received', 0, ${t.createdAt}, ${t.createdAt})`.execute(trx);
        } catch (err) {
          if (isUniqueViolation(err)) throw new Refusal('exists');
          throw err;
        }
        if (!(await this.move(trx, t.userId, t.asset, 'available', 'held', t.amount))) throw new Refusal('insufficient');
        await this.journal(trx, `t:${t.orderId}:hold`, 'transfer_hold', t.orderId, t.asset, t.createdAt, [
          { holder: t.userId, bucket: 'available', amount: -t.amount },
          { holder: t.userId, bucket: 'held', amount: t.amount },
        ]);
        await sql`INSERT INTO transfer_outbox (order_id, created_at) VALUES (${t.orderId}, ${t.createdAt})`.execute(trx);
      });
      return { kind: 'created', transfer: t };
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      if (err.kind === 'exists') {
        const existing = await this.getTransfer(t.orderId);
        if (!existing) throw new AllotError('UNAVAILABLE', 'The order id conflicted but cannot be read back; nothing was executed. Retry with the same order id.', { outcome: 'nothing-issued' });
        return { kind: 'exists', transfer: existing };
      }
      return (await this.assetExists(t.asset)) ? { kind: 'insufficient' } : { kind: 'no_asset' };
    }
  }

  startExecution(orderId: string, attemptId: string, nowMs: number, leaseUntil: number): Promise<Transfer | null> {
    return this.tx(async (trx) => {
      const n = await affected(trx, sql`UPDATE transfers SET state = 'executing', attempt_id = ${attemptId}, attempts = attempts + 1, lease_until = ${leaseUntil}, updated_at = ${nowMs}
        WHERE order_id = ${orderId} AND state = 'received'`);
      await sql`DELETE FROM transfer_outbox WHERE order_id = ${orderId}`.execute(trx);
      if (n !== 1) return null;
      const r = (await rows(trx, sql`SELECT ${this.transferCols} FROM transfers WHERE order_id = ${orderId}`))[0];
      return r ? toTransfer(r) : null;
    });
  }

  takeOverExecution(orderId: string, fromAttemptId: string, toAttemptId: string, nowMs: number, leaseUntil: number): Promise<boolean> {
    return guarded(async () => (await affected(this.db, sql`UPDATE transfers SET attempt_id = ${toAttemptId}, lease_until = ${leaseUntil}, updated_at = ${nowMs}
      WHERE order_id = ${orderId} AND state = 'executing' AND attempt_id = ${fromAttemptId} AND lease_until <= ${nowMs}`)) === 1);
  }

  markSent(orderId: string, attemptId: string, nowMs: number): Promise<boolean> {
    return guarded(async () => (await affected(this.db, sql`UPDATE transfers SET attempts = attempts + 1, updated_at = ${nowMs}
      WHERE order_id = ${orderId} AND state = 'executing' AND attempt_id = ${attemptId}`)) === 1);
  }

  /** Posts (succeeded) or releases (failed) an order's hold, with its one settle entry. */
  private async applySettlement(trx: Db, t: Transfer, outcome: Resolution, nowMs: number): Promise<void> {
    const to = outcome === 'succeeded' ? 'paid_out' : 'available';
    if (!(await this.move(trx, t.userId, t.asset, 'held', to, t.amount))) {
      throw new Error(`ledger invariant broken: order ${t.orderId} has no hold of ${t.amount} ${t.asset} to ${outcome === 'succeeded' ? 'post' : 'release'}`);
    }
    await this.journal(trx, `t:${t.orderId}:settle`, outcome === 'succeeded' ? 'transfer_post' : 'transfer_release', t.orderId, t.asset, nowMs, [
      { holder: t.userId, bucket: 'held', amount: -t.amount },
      { holder: t.userId, bucket: to, amount: t.amount },
    ]);
  }

  settle(orderId: string, attemptId: string, outcome: RailOutcome, nowMs: number): Promise<boolean> {
    return this.tx(async (trx) => {
      const railRef = outcome.status === 'succeeded' ? outcome.railRef : null;
      const reason = outcome.status === 'failed' ? outcome.reason.slice(0, 512) : null;
      const n = await affected(trx, sql`UPDATE transfers SET state = ${outcome.status}, rail_ref = ${railRef}, reason = ${reason}, lease_until = NULL, updated_at = ${nowMs}
        WHERE order_id = ${orderId} AND state = 'executing' AND attempt_id = ${attemptId}`);
      if (n !== 1) return false;
      const r = (await rows(trx, sql`SELECT ${this.transferCols} FROM transfers WHERE order_id = ${orderId}`))[0]!;
      await this.applySettlement(trx, toTransfer(r), outcome.status, nowMs);
      return true;
    });
  }

  markUnknown(orderId: string, attemptId: string, reason: string, nowMs: number): Promise<boolean> {
    return guarded(async () => (await affected(this.db, sql`UPDATE transfers SET state = 'unknown', reason = ${reason.slice(0, 512)}, lease_until = NULL, updated_at = ${nowMs}
      WHERE order_id = ${orderId} AND state = 'executing' AND attempt_id = ${attemptId}`)) === 1);
  }

  resolve(orderId: string, outcome: Resolution, note: string, nowMs: number): Promise<ResolveResult> {
    return this.tx(async (trx): Promise<ResolveResult> => {
      const r = (await rows(trx, sql`SELECT ${this.transferCols} FROM transfers WHERE order_id = ${orderId} FOR UPDATE`))[0];
      if (!r) return { kind: 'not_found' };
      const t = toTransfer(r);
      if (t.state !== 'unknown') {
        if (t.resolution !== null && t.resolution.outcome === outcome) return { kind: 'replayed', transfer: t };
        return { kind: 'not_unknown', transfer: t };
      }
      const n = await affected(trx, sql`UPDATE transfers SET state = ${outcome}, resolution = ${outcome}, resolution_note = ${note}, resolved_at = ${nowMs}, updated_at = ${nowMs}
        WHERE order_id = ${orderId} AND state = 'unknown'`);
      if (n !== 1) throw new Error(`order ${orderId} left unknown under its row lock`);
      await this.applySettlement(trx, t, outcome, nowMs);
      return { kind: 'resolved', transfer: { ...t, state: outcome, resolution: { outcome, note, at: nowMs }, updatedAt: nowMs } };
    });
  }

  getTransfer(orderId: string): Promise<Transfer | null> {
    return guarded(async () => {
      const r = (await rows(this.db, sql`SELECT ${this.transferCols} FROM transfers WHERE order_id = ${orderId}`))[0];
      return r ? toTransfer(r) : null;
    });
  }

  listTransfers(state: TransferState | null, limit: number, afterOrderId: string | null): Promise<Transfer[]> {
    return guarded(async () => {
      const byState = state === null ? sql`` : sql` AND state = ${state}`;
      const after = afterOrderId === null ? sql`` : sql` AND order_id > ${afterOrderId}`;
      return (await rows(this.db, sql`SELECT ${this.transferCols} FROM transfers WHERE 1 = 1${byState}${after} ORDER BY order_id LIMIT ${limit}`)).map(toTransfer);
    });
  }

  pendingOutbox(beforeMs: number, limit: number): Promise<string[]> {
    return guarded(async () => (await rows(this.db, sql`SELECT order_id FROM transfer_outbox WHERE created_at < ${beforeMs} ORDER BY created_at LIMIT ${limit}`)).map((r) => String(r.order_id)));
  }

  expiredExecutions(nowMs: number, limit: number): Promise<Transfer[]> {
    return guarded(async () => (await rows(this.db, sql`SELECT ${this.transferCols} FROM transfers WHERE state = 'executing' AND lease_until <= ${nowMs} ORDER BY order_id LIMIT ${limit}`)).map(toTransfer));
  }

  balances(userId: string): Promise<Balance[]> {
    return guarded(async () => (await rows(this.db, sql`SELECT asset, ${this.d.int64Text('available')} AS available, ${this.d.int64Text('held')} AS held, ${this.d.int64Text('paid_out')} AS paid_out
      FROM ledger_accounts WHERE user_id = ${userId} ORDER BY asset`)).map((r) => ({ asset: String(r.asset), available: big(r.available), held: big(r.held), paidOut: big(r.paid_out) })));
  }

  audit(): Promise<LedgerCheck[]> {
    return guarded(() => this.db.transaction().setIsolationLevel('repeatable read').execute((trx) => this.checks(trx)));
  }

  private async checks(db: Db): Promise<LedgerCheck[]> {
    const t = (e: string): RawBuilder<unknown> => this.d.int64Text(e);
    const checks: LedgerCheck[] = [];
    // Every entry's lines sum to zero (per asset: an entry has one asset).
    const unbalanced = await rows(db, sql`SELECT entry_id, ${t('SUM(amount)')} AS total FROM ledger_lines GROUP BY entry_id HAVING SUM(amount) <> 0 LIMIT 10`);
    checks.push({ name: 'entries-sum-to-zero', ok: unbalanced.length === 0, unbalanced: unbalanced.map((r) => ({ entryId: String(r.entry_id), sum: String(r.total) })) });
    // Every account row equals its journal.
    const drift = await rows(db, sql`SELECT a.user_id, a.asset FROM ledger_accounts a LEFT JOIN (
        SELECT holder, asset,
          SUM(CASE WHEN bucket = 'available' THEN amount ELSE 0 END) AS av,
          SUM(CASE WHEN bucket = 'held' THEN amount ELSE 0 END) AS he,
          SUM(CASE WHEN bucket = 'paid_out' THEN amount ELSE 0 END) AS po
        FROM ledger_lines WHERE holder <> ${FUNDING_HOLDER} GROUP BY holder, asset) l ON l.holder = a.user_id AND l.asset = a.asset
      WHERE a.available <> COALESCE(l.av, 0) OR a.held <> COALESCE(l.he, 0) OR a.paid_out <> COALESCE(l.po, 0) LIMIT 10`);
    checks.push({ name: 'accounts-match-journal', ok: drift.length === 0, drifted: drift.map((r) => ({ userId: String(r.user_id), asset: String(r.asset) })) });
    const assets = (await rows(db, sql`SELECT DISTINCT asset FROM ledger_lines ORDER BY asset`)).map((r) => String(r.asset));
    for (const asset of assets) {
      const acc = (await rows(db, sql`SELECT ${t('COALESCE(SUM(available), 0)')} AS av, ${t('COALESCE(SUM(held), 0)')} AS he, ${t('COALESCE(SUM(paid_out), 0)')} AS po,
        ${t('COALESCE(MIN(available), 0)')} AS min_av, ${t('COALESCE(MIN(held), 0)')} AS min_he FROM ledger_accounts WHERE asset = ${asset}`))[0]!;
      const funded = big((await rows(db, sql`SELECT ${t('COALESCE(SUM(amount), 0)')} AS s FROM fundings WHERE asset = ${asset}`))[0]!.s);
      const fundingAccount = big((await rows(db, sql`SELECT ${t('COALESCE(SUM(amount), 0)')} AS s FROM ledger_lines WHERE holder = ${FUNDING_HOLDER} AND asset = ${asset}`))[0]!.s);
      const [available, held, paidOut] = [big(acc.av), big(acc.he), big(acc.po)];
      checks.push({ name: 'conserved', asset, ok: available + held + paidOut === funded && fundingAccount === -funded, available: String(available), held: String(held), paidOut: String(paidOut), funded: String(funded) });
      checks.push({ name: 'no-negative-balance', asset, ok: big(acc.min_av) >= 0n && big(acc.min_he) >= 0n });
      const open = big((await rows(db, sql`SELECT ${t('COALESCE(SUM(amount), 0)')} AS s FROM transfers WHERE asset = ${asset} AND state IN ('received', 'executing', 'unknown')`))[0]!.s);
      checks.push({ name: 'held=open-orders', asset, ok: held === open, held: String(held), openOrders: String(open) });
      const withdrawn = big((await rows(db, sql`SELECT ${t('COALESCE(SUM(amount), 0)')} AS s FROM withdrawals WHERE asset = ${asset}`))[0]!.s);
      const sent = big((await rows(db, sql`SELECT ${t('COALESCE(SUM(amount), 0)')} AS s FROM transfers WHERE asset = ${asset} AND state = 'succeeded'`))[0]!.s);
      checks.push({ name: 'paid-out=withdrawals+succeeded-orders', asset, ok: paidOut === withdrawn + sent, paidOut: String(paidOut), withdrawals: String(withdrawn), succeededOrders: String(sent) });
    }
    // Each order was held once, and settled once exactly when it is final.
    const bad = await rows(db, sql`SELECT t.order_id, t.state,
        (SELECT count(*) FROM ledger_entries e WHERE e.id = CONCAT('t:', t.order_id, ':hold')) AS holds,
        (SELECT count(*) FROM ledger_entries e WHERE e.id = CONCAT('t:', t.order_id, ':settle')) AS settles
      FROM transfers t WHERE
        (SELECT count(*) FROM ledger_entries e WHERE e.id = CONCAT('t:', t.order_id, ':hold')) <> 1
        OR (SELECT count(*) FROM ledger_entries e WHERE e.id = CONCAT('t:', t.order_id, ':settle')) <> (CASE WHEN t.state IN ('succeeded', 'failed') THEN 1 ELSE 0 END)
      LIMIT 10`);
    checks.push({ name: 'orders-held-once-settled-once', ok: bad.length === 0, orders: bad.map((r) => ({ orderId: String(r.order_id), state: String(r.state), holds: Number(r.holds), settles: Number(r.settles) })) });
    return checks;
  }
}
