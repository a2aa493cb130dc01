// The race lab against real servers: every field report's failure shows up for the strategy
// that has it (naive, local-mutex on 2 processes), and every safe strategy holds with zero
// violations. Worker processes are real; the servers are the ones `npm test` starts.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLab, type LabOptions } from '../../src/lab/driver.ts';
import type { LabRow } from '../../src/lab/types.ts';
import { envUrl } from '../helpers/servers.ts';

const outDir = mkdtempSync(join(tmpdir(), 'allot-lab-test-'));
after(() => rmSync(outDir, { recursive: true, force: true }));

function lab(opts: Omit<LabOptions, 'outDir' | 'databaseUrls'> & Partial<Pick<LabOptions, 'databaseUrls'>>) {
  return runLab({ databaseUrls: { postgres: envUrl('DATABASE_URL_PG'), mysql: envUrl('DATABASE_URL_MYSQL') }, redisUrl: envUrl('REDIS_URL'), outDir, ...opts });
}

function row(rows: LabRow[], strategy: string, workers?: number, backend?: string): LabRow {
  const r = rows.find((x) => x.strategy === strategy && (workers === undefined || x.workers === workers) && (backend === undefined || x.backend === backend));
  assert.ok(r, `no row for ${strategy}${workers ? ` x${workers}` : ''}`);
  return r;
}

function holds(r: LabRow): void {
  const failed = r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.message}`);
  assert.deepEqual(failed, [], `${r.strategy}/${r.backend} x${r.workers} violated`);
  assert.equal(r.oversold, 0);
  assert.equal(r.duplicates, 0);
  assert.equal(r.lostAcks, 0);
  assert.equal(r.passed, true);
}

describe('race lab scenarios', () => {
  test('two-instances: local-mutex holds on 1 process and oversells on 2; conditional holds on 2', async () => {
    const report = await lab({ scenario: 'two-instances', strategies: ['local-mutex', 'conditional'] });
    holds(row(report.rows, 'local-mutex', 1));
    const two = row(report.rows, 'local-mutex', 2);
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
    const naive = row(report.rows, 'naive');
    assert.ok(naive.duplicates > 0 && naive.ok > 1, `naive issued ${naive.ok} to one user`);
    for (const s of ['conditional', 'redis-lock']) {
      const r = row(report.rows, s);
      holds(r);
      assert.equal(r.ok, 1);
      assert.equal(r.userLimit + r.errors + r.ok, r.requests);
    }
  });

  test('last-unit: stock 1, 500 users: naive hands it out several times, every safe strategy once', async () => {
    const report = await lab({ scenario: 'last-unit' });
    assert.ok(row(report.rows, 'naive').oversold > 0);
    for (const s of ['conditional', 'pessimistic', 'optimistic', 'optimistic-stock', 'redis-lock']) {
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

  test('slow-db: 100 ms to the database: naive oversells by many, conditional not at all', async () => {
    const report = await lab({ scenario: 'slow-db', strategies: ['naive', 'conditional'] });
    assert.ok(row(report.rows, 'naive').oversold >= 10, `naive oversold ${row(report.rows, 'naive').oversold}`);
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

  test('prize-application on MariaDB at REPEATABLE READ: naive exceeds the limits, the safe strategies never do', async () => {
    const report = await lab({ scenario: 'prize-application', backends: ['mysql'], strategies: ['naive', 'conditional', 'pessimistic', 'optimistic', 'redis-lock'] });
    assert.ok(row(report.rows, 'naive').duplicates > 0);
    for (const s of ['conditional', 'pessimistic', 'optimistic', 'redis-lock']) holds(row(report.rows, s));
    // Every user got at most 2 today: with 200 users that is at most 400 claims.
    assert.ok(row(report.rows, 'conditional').claimsInDb <= 400);
  });

  test('prize-application on PostgreSQL at READ COMMITTED: conditional and redis-lock hold', async () => {
    const report = await lab({ scenario: 'prize-application', backends: ['postgres'], strategies: ['conditional', 'redis-lock'] });
    for (const r of report.rows) holds(r);
  });
});

describe('race lab faults: the safe strategies hold with zero violations', () => {
  const cases: Array<{ fault: string; strategies: string[]; ownRedis?: boolean }> = [
    { fault: 'kill-worker@300ms', strategies: ['conditional', 'redis-lock'] },
    { fault: 'stop-worker:1500@300ms', strategies: ['conditional', 'redis-lock'] },
    { fault: 'db-latency:20', strategies: ['pessimistic', 'optimistic'] },
    { fault: 'db-reset@300ms', strategies: ['conditional', 'pessimistic', 'optimistic', 'redis-lock'] },
    { fault: 'db-blackhole:800@300ms', strategies: ['conditional', 'redis-lock'] },
    { fault: 'redis-flushall@300ms', strategies: ['redis-lock'] },
    { fault: 'redis-pause:500@300ms', strategies: ['redis-lock'] },
    { fault: 'redis-reset@300ms', strategies: ['redis-lock'] },
    { fault: 'redis-restart@300ms', strategies: ['redis-lock'], ownRedis: true },
  ];
  for (const c of cases) {
    test(`${c.fault}: ${c.strategies.join(', ')}`, async () => {
      const report = await lab({ scenario: 'stampede', strategies: c.strategies, workers: 2, faults: [c.fault], ...(c.ownRedis ? { redisUrl: undefined } : {}) });
      assert.equal(report.rows.length, c.strategies.length);
      for (const r of report.rows) {
        holds(r);
        assert.deepEqual(r.faults, [c.fault]);
        assert.ok(r.ok > 0, `${r.strategy} issued nothing under ${c.fault}`);
      }
    });
  }
});
