// The race lab against real servers: every field report's failure shows up for the strategy
// that has it (naive, local-mutex on 2 processes), and every safe strategy holds with zero
// violations. Worker processes are real; the servers are the ones `npm test` starts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { holds, lab, row, unsafeRow } from './helpers.ts';

describe('race lab scenarios', () => {
  test('two-instances: local-mutex holds on 1 process and oversells on 2; conditional holds on 2', async () => {
    const report = await lab({ scenario: 'two-instances', strategies: ['local-mutex', 'conditional'] });
    holds(row(report.rows, 'local-mutex', 1));
    const two = await unsafeRow(report.rows, 'local-mutex', (r) => r.oversold > 0, async () => (await lab({ scenario: 'two-instances', strategies: ['local-mutex'] })).rows, 2);
    assert.ok(two.oversold > 0, `local-mutex on 2 processes oversold ${two.oversold}`);
    assert.equal(two.passed, false);
    assert.equal(two.unsafe, true);
    assert.equal(two.claimsInDb, two.stock + two.oversold);
    const c = row(report.rows, 'conditional', 2);
    holds(c);
    assert.equal(c.ok, c.stock, 'the whole stock was issued');
  });

  test('red-packet: one user, 1,000 requests: naive pays several times, conditional and redis-lock exactly once', async () => {
    const report = await lab({ scenario: 'red-packet', strategies: ['naive', 'conditional', 'redis-lock'], workers: 2 });
    const naive = await unsafeRow(report.rows, 'naive', (r) => r.duplicates > 0 && r.ok > 1, async () => (await lab({ scenario: 'red-packet', strategies: ['naive'], workers: 2 })).rows);
    assert.ok(naive.duplicates > 0 && naive.ok > 1, `naive issued ${naive.ok} to one user`);
    for (const s of ['conditional', 'redis-lock']) {
      const r = row(report.rows, s);
      holds(r);
      assert.equal(r.ok, 1);
      assert.equal(r.userLimit + r.errors + r.ok, r.requests);
    }
  });

  test('last-unit: stock 1, 500 users: naive hands it out several times, the safe strategies once', async () => {
    // optimistic and redis-lock race for one unit in lottery-last-phone (test/lab/lottery.test.ts);
    // optimistic-stock differs from optimistic only in its version column (the contract runs it).
    const report = await lab({ scenario: 'last-unit', strategies: ['naive', 'conditional', 'pessimistic'] });
    const naive = await unsafeRow(report.rows, 'naive', (r) => r.oversold > 0, async () => (await lab({ scenario: 'last-unit', strategies: ['naive'] })).rows);
    assert.ok(naive.oversold > 0, `naive oversold ${naive.oversold}`);
    for (const s of ['conditional', 'pessimistic']) {
      const r = row(report.rows, s);
      holds(r);
      assert.equal(r.ok, 1, `${s} issued ${r.ok}`);
    }
  });

  test('last-unit with the production backstop: the CHECK turns naive\'s oversell into refusals', async () => {
    const report = await lab({ scenario: 'last-unit', strategies: ['naive'], backstop: true });
    const r = row(report.rows, 'naive');
    assert.equal(r.oversold, 0);
    assert.ok(r.claimsInDb <= r.stock);
  });

  test('slow-db: 100 ms round trip to the database: naive oversells by many, conditional not at all', async () => {
    const report = await lab({ scenario: 'slow-db', strategies: ['naive', 'conditional'] });
    const naive = await unsafeRow(report.rows, 'naive', (r) => r.oversold >= 10, async () => (await lab({ scenario: 'slow-db', strategies: ['naive'] })).rows);
    assert.ok(naive.oversold >= 10, `naive oversold ${naive.oversold}`);
    holds(row(report.rows, 'conditional'));
  });

  test('lock-expiry: the paused holder\'s write is refused by the fence; one claim for the user', async () => {
    const report = await lab({ scenario: 'lock-expiry' });
    const r = row(report.rows, 'redis-lock');
    holds(r);
    assert.equal(r.ok, 1);
    assert.ok(r.retries >= 1, 'the stale write was refused and retried');
    assert.equal(r.claimsInDb, 1);
  });

});
