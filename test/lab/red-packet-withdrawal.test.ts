// Field report 2 in the race lab, with real worker processes on PostgreSQL: the seed's naive
// status flag pays one red packet several times, its in-process mutex holds on one process and
// not on four, its guarded update pays once; allot's withdrawal pays exactly once per key up to
// the balance. Payments are counted in the database. The checkers are also fed doctored runs,
// to show each one can fail.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPayoutRun, formatPayoutTable, payoutKeys, runPayoutLab, type PayoutRow, type PayoutSnapshot } from '../../src/lab/payout-scenario.ts';
import type { PayoutEvent } from '../../src/lab/payout-worker.ts';
import { envUrl } from '../helpers/servers.ts';

const outDir = mkdtempSync(join(tmpdir(), 'allot-lab-payout-test-'));
after(() => rmSync(outDir, { recursive: true, force: true }));

function row(rows: PayoutRow[], run: string): PayoutRow {
  const r = rows.find((x) => x.run === run);
  assert.ok(r, `no row for ${run}`);
  return r;
}

function failed(r: Pick<PayoutRow, 'checks'>): string[] {
  return r.checks.filter((c) => !c.ok).map((c) => c.name);
}

function holds(r: PayoutRow): void {
  assert.deepEqual(r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.message}`), [], `${r.design} violated`);
  assert.equal(r.verdict, 'safe');
  assert.equal(r.unknown, 0, `${r.design}: requests with no answer`);
}

describe('red-packet-withdrawal (field report 2)', () => {
  test('on PostgreSQL, 4 worker processes, 300 requests in 0.5 s: the seed pays several times until its guarded update; allot once per key up to the balance', async (t) => {
    const report = await runPayoutLab({ databaseUrls: { postgres: envUrl('DATABASE_URL_PG') }, outDir, workers: 4, requests: 300, spreadMs: 500, runTimeoutMs: 40_000 });
    for (const line of formatPayoutTable(report).trimEnd().split('\n')) t.diagnostic(line);
    const rows = report.rows;
    assert.deepEqual(rows.map((r) => r.run), ['naive', 'mutex-1', 'mutex-n', 'guarded', 'allot-one-key', 'allot-keys']);
    for (const r of rows) assert.equal(r.requests, 300);

    const naive = row(rows, 'naive');
    assert.ok(naive.paid > 1, `stage 1 paid ${naive.paid} time(s)`);
    assert.equal(naive.verdict, 'VIOLATION');
    assert.ok(failed(naive).includes('paid-at-most-once-per-key') && failed(naive).includes('never-beyond-balance'));
    assert.equal(naive.acked, naive.paid, 'every payment was acknowledged');

    const one = row(rows, 'mutex-1');
    assert.equal(one.workers, 1);
    assert.equal(one.paid, 1);
    holds(one);

    const four = row(rows, 'mutex-n');
    assert.equal(four.workers, 4);
    assert.ok(four.paid > 1, `stage 2 on 4 processes paid ${four.paid} time(s)`);
    assert.ok(four.paid <= 4, 'at most one payment per process: each mutex holds in its own process');
    assert.equal(four.verdict, 'VIOLATION');

    const guarded = row(rows, 'guarded');
    assert.equal(guarded.paid, 1);
    holds(guarded);

    const allot = row(rows, 'allot-one-key');
    assert.equal(allot.distinctKeys, 151);
    assert.equal(allot.expectedMax, 1);
    assert.equal(allot.paid, 1);
    assert.equal(allot.paidAmount, 888);
    assert.equal(allot.available, 0);
    holds(allot);
    // Every 201 after the first is a replay of the same withdrawal; the rest were refusals or
    // repeats that met their key in flight.
    assert.equal(allot.acked, allot.replayed + 1);
    assert.equal(allot.acked + allot.refused + allot.inProgress + allot.errors, 300);

    const many = row(rows, 'allot-keys');
    assert.equal(many.distinctKeys, 30);
    assert.equal(many.funded, 8880);
    assert.equal(many.expectedMax, 10);
    assert.equal(many.paid, 10, 'min(30 keys, 10 packets)');
    assert.equal(many.available, 0);
    holds(many);
    assert.equal(many.acked, many.replayed + 10);

    for (const r of [allot, many]) assert.ok(r.checks.some((c) => c.name === 'ledger-balanced' && c.ok), 'payouts.audit() ok');
  });

  test('the workload: one key repeated among distinct keys; 30 keys repeated', () => {
    const one = payoutKeys({ keys: 'one-key' }, 10, 'u');
    assert.deepEqual(one, ['k-1', 'k-2', 'k-1', 'k-3', 'k-1', 'k-4', 'k-1', 'k-5', 'k-1', 'k-6']);
    const many = payoutKeys({ keys: 'many-keys' }, 300, 'u', 30);
    assert.equal(new Set(many).size, 30);
    assert.ok([...new Set(many)].every((k) => many.filter((x) => x === k).length === 10));
  });

  describe('the checkers fail on doctored runs', () => {
    const user = 'u1';
    let t = 0;
    const ok = (op: number, key: string, paymentId: string, replayed = false): PayoutEvent[] => [
      { type: 'invoke', op, worker: 0, t: t++, userId: user, key },
      { type: 'ok', op, worker: 0, t: t++, userId: user, key, status: 201, paymentId, replayed },
    ];
    const fail = (op: number, key: string, code: string, status = 409): PayoutEvent[] => [
      { type: 'invoke', op, worker: 0, t: t++, userId: user, key },
      { type: 'fail', op, worker: 0, t: t++, userId: user, key, status, code },
    ];
    const allotSnap = (payments: PayoutSnapshot['payments'], more: Partial<PayoutSnapshot> = {}): PayoutSnapshot => ({
      kind: 'allot', userId: user, amount: 888, funded: 888, payments, available: 888 - payments.reduce((a, p) => a + p.amount, 0), audit: { ok: true, failed: [] }, ...more,
    });

    test('a clean allot run passes every check', () => {
      const h = [...ok(1, 'k-1', 'wd_1'), ...ok(2, 'k-1', 'wd_1', true), ...fail(3, 'k-2', 'INSUFFICIENT_FUNDS'), ...fail(4, 'k-1', 'IDEMPOTENCY_IN_PROGRESS')];
      const checks = checkPayoutRun(h, allotSnap([{ id: 'wd_1', key: 'k-1', amount: 888 }]), 1);
      assert.deepEqual(checks.map((c) => c.name), ['paid-at-most-once-per-key', 'never-beyond-balance', 'acked-durable', 'idempotent-replays', 'ledger-balanced']);
      assert.deepEqual(failed({ checks }), []);
    });

    test('two withdrawals of one packet (distinct keys): never-beyond-balance and ledger-balanced', () => {
      const h = [...ok(1, 'k-1', 'wd_1'), ...ok(2, 'k-2', 'wd_2')];
      const snap = allotSnap([{ id: 'wd_1', key: 'k-1', amount: 888 }, { id: 'wd_2', key: 'k-2', amount: 888 }], { audit: { ok: false, failed: ['no-negative-balance(CNY)'] } });
      assert.deepEqual(failed({ checks: checkPayoutRun(h, snap, 1) }), ['never-beyond-balance', 'ledger-balanced']);
    });

    test('one key paid twice: paid-at-most-once-per-key and idempotent-replays', () => {
      const h = [...ok(1, 'k-1', 'wd_1'), ...ok(2, 'k-1', 'wd_2')];
      const snap = allotSnap([{ id: 'wd_1', key: 'k-1', amount: 400 }, { id: 'wd_2', key: 'k-1', amount: 400 }]);
      assert.deepEqual(failed({ checks: checkPayoutRun(h, snap, 2) }), ['paid-at-most-once-per-key', 'idempotent-replays']);
    });

    test('a key answered both its withdrawal and a refusal: idempotent-replays', () => {
      const h = [...ok(1, 'k-1', 'wd_1'), ...fail(2, 'k-1', 'INSUFFICIENT_FUNDS')];
      assert.deepEqual(failed({ checks: checkPayoutRun(h, allotSnap([{ id: 'wd_1', key: 'k-1', amount: 888 }]), 1) }), ['idempotent-replays']);
    });

    test('an acknowledged withdrawal the database does not hold: acked-durable', () => {
      assert.deepEqual(failed({ checks: checkPayoutRun(ok(1, 'k-1', 'wd_1'), allotSnap([]), 1) }), ['acked-durable']);
    });

    test('the seed paying one openid twice: paid-at-most-once-per-key and never-beyond-balance', () => {
      const h = [...ok(1, user, 'pay-1'), ...ok(2, user, 'pay-2'), ...fail(3, user, 'NOT_WITHDRAWABLE')];
      const snap: PayoutSnapshot = { kind: 'seed', userId: user, amount: 888, funded: 888, payments: [{ id: 'pay-1', key: null, amount: 888 }, { id: 'pay-2', key: null, amount: 888 }], available: null, audit: null };
      const checks = checkPayoutRun(h, snap, 1);
      assert.deepEqual(checks.map((c) => c.name), ['paid-at-most-once-per-key', 'never-beyond-balance', 'acked-durable']);
      assert.deepEqual(failed({ checks }), ['paid-at-most-once-per-key', 'never-beyond-balance']);
    });
  });
});
