// The `allot` command's exit codes, each class by running the real CLI (`node bin/allot.js`, the
// compiled one) as a user does: 0 done, 2 usage or configuration, 3 not found, 4 an invariant
// failed, 5 serve cannot listen (nothing created), 69 a backend unavailable. Each run opens an
// embedded database in a new data dir (a copy of the cached template) unless it fails before.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { AllotService } from '../../src/service/service.ts';
import { ROOT, runCli, type CliResult } from '../helpers/cli.ts';

const tempDirs: string[] = [];

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'allot-exit-test-'));
  tempDirs.push(dir);
  return dir;
}

/** One line on stderr, no stack trace. */
function oneLine(r: CliResult, pattern: RegExp): void {
  assert.ok(!/^\s+at /m.test(r.stderr), `stack trace on stderr:\n${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
}

after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('allot exit codes', { concurrency: 2 }, () => {
  test('0: done', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  });

  test('--help lists the exit codes', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Exit codes: 0 done, 1 failure.*2 usage.*3 not found.*4 an invariant failed.*5 serve cannot listen.*69 a backend is unavailable/s);
  });

  for (const [name, args, pattern] of [
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['a missing required option', ['campaign', 'stock', 'x'], /required option '--add <n>' not specified/],
    ['a strategy not in the list', ['campaign', 'create', '--name', 'x', '--stock', '1', '--strategy', 'magic'], /argument 'magic' is invalid\. Allowed choices are conditional, pessimistic, .*group-commit/],
    ['a kind not in the list', ['campaign', 'create', '--name', 'x', '--kind', 'raffle'], /Allowed choices are coupon, lottery/],
    ['a transfer state not in the list', ['transfers', 'list', '--state', 'lost'], /Allowed choices are received, executing, succeeded, failed, unknown/],
  ] as const) {
    test(`2: ${name} (commander, before anything is opened)`, async () => {
      const r = await runCli([...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, '');
    });
  }

  test('2: invalid input (VALIDATION_FAILED) and invalid configuration', async () => {
    const stock = await runCli(['campaign', 'create', '--name', 'x', '--stock', 'abc', '--data-dir', freshDir()]);
    assert.equal(stock.code, 2, stock.stderr);
    oneLine(stock, /^allot: VALIDATION_FAILED: --stock must be a whole number, got "abc"/);
    const port = await runCli(['serve'], { PORT: 'abc', ALLOT_DATA_DIR: freshDir() });
    assert.equal(port.code, 2, port.stderr);
    assert.match(port.stderr, /PORT=abc is not a whole number/);
  });

  test('2: a database URL of an unknown scheme names the scheme and the accepted ones', async () => {
    const r = await runCli(['campaign', 'list', '--database-url', 'mongodb://db.example/allot']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /unsupported database URL scheme "mongodb:"; use postgres:\/\/, mysql:\/\/, mariadb:\/\/, pglite:\/\/DIR \(or a directory path\) or memory:\/\//);
  });

  test('3: not found', async () => {
    const dir = freshDir();
    const campaign = await runCli(['campaign', 'get', 'nope', '--data-dir', dir]);
    assert.equal(campaign.code, 3, campaign.stderr);
    oneLine(campaign, /^allot: CAMPAIGN_NOT_FOUND: /);
    const order = await runCli(['transfers', 'get', 'o-nope', '--data-dir', dir]);
    assert.equal(order.code, 3, order.stderr);
    oneLine(order, /^allot: ORDER_NOT_FOUND: /);
  });

  test('4: audit and ledger audit find a violation (the database tampered with)', async () => {
    // A campaign and a funding, made in this process on the data dir the CLI then audits.
    const dir = freshDir();
    const service = await AllotService.open({
      config: { databaseUrl: `pglite://${join(dir, 'pgdata')}`, dbPoolSize: 1, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
      payouts: { sweepIntervalMs: 0 },
    });
    try {
      await service.createCampaign({ id: 'c1', kind: 'coupon', name: 'x', stock: 5 });
      await service.payouts.fund({ fundingId: 'f-1', userId: 'u-1', asset: 'CNY', amount: 100n });
      assert.equal((await service.audit('c1')).ok, true);
      assert.equal((await service.payouts.audit()).ok, true);
      await sql`UPDATE campaigns SET issued = 1 WHERE id = 'c1'`.execute(service.db);
      await sql`UPDATE ledger_accounts SET available = available + 1 WHERE user_id = 'u-1'`.execute(service.db);
    } finally {
      await service.close();
    }

    const audit = await runCli(['audit', 'c1', '--data-dir', dir]);
    assert.equal(audit.code, 4, audit.stderr);
    assert.match(audit.stdout, /^FAIL issued=claims /m);
    oneLine(audit, /^allot: audit of c1 FAILED: 1 of \d+ check\(s\) failed: issued=claims$/m);
    const ledger = await runCli(['ledger', 'audit', '--data-dir', dir]);
    assert.equal(ledger.code, 4, ledger.stderr);
    assert.match(ledger.stdout, /^ledger audit FAILED$/m);
    oneLine(ledger, /^allot: ledger audit FAILED: \d+ of \d+ check\(s\) failed: .*accounts-match-journal/);
  });

  test('69: the database or Redis unreachable', async () => {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    for (const url of ['postgres://allot:secret@127.0.0.1:1/allot', 'mysql://allot:secret@127.0.0.1:1/allot']) {
      const r = await runCli(['campaign', 'list', '--database-url', url]);
      assert.equal(r.code, 69, r.stderr);
      oneLine(r, /^allot: UNAVAILABLE: cannot reach the database \((postgres|mysql), (postgres|mysql):\/\/allot:\*\*\*@127\.0\.0\.1:1\/allot\): .*ECONNREFUSED.*; check DATABASE_URL/);
      assert.ok(!r.stderr.includes('secret'), 'the password was printed');
    }
    // The database answers (the PostgreSQL `npm test` started, else an embedded one); Redis not.
    const db = process.env.DATABASE_URL_PG ? ['--database-url', process.env.DATABASE_URL_PG] : ['--data-dir', freshDir()];
    const redis = await runCli(['campaign', 'list', ...db], { REDIS_URL: 'redis://127.0.0.1:1' });
    assert.equal(redis.code, 69, redis.stderr);
    oneLine(redis, /^allot: UNAVAILABLE: cannot reach Redis at redis:\/\/127\.0\.0\.1:1.*; check LOCKS_URL \/ REDIS_URL/);
  });

  describe('with `allot serve` running', () => {
    let server: ReturnType<typeof spawn> | undefined;
    let port = 0;
    const dataDir = freshDir();
    before(async () => {
      server = spawn(process.execPath, ['bin/allot.js', 'serve'], { cwd: ROOT, env: { ...process.env, ALLOT_DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'warn', REDIS_URL: '', LOCKS_URL: '', DATABASE_URL: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      server.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
      const deadline = Date.now() + 60_000;
      while (!/listening on http:\/\/127\.0\.0\.1:(\d+)/.test(err)) {
        if (server.exitCode !== null || Date.now() > deadline) throw new Error(`allot serve did not start:\n${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err)![1]);
    });
    after(async () => {
      if (server && server.exitCode === null) {
        const exited = new Promise((r) => server!.once('exit', r));
        server.kill('SIGTERM');
        await exited;
      }
    });

    test('5: serve on a port in use exits before anything is created, naming the port and how to pick another', async () => {
      const dir = join(freshDir(), 'new-data-dir');
      const r = await runCli(['serve', '--port', String(port)], { ALLOT_DATA_DIR: dir });
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, new RegExp(`^allot: checking port ${port} on 127\\.0\\.0\\.1… failed`, 'm'));
      assert.match(r.stderr, new RegExp(`^allot: port ${port} on 127\\.0\\.0\\.1 is in use .*--port <n> or PORT=<n> \\(PORT=0 takes any free one\\)\\. Nothing was created\\.$`, 'm'));
      assert.doesNotMatch(r.stderr, /admin token|opening the database/);
      assert.equal(existsSync(dir), false, 'the data dir was created');
    });

    test('69: the embedded database is held by the running server', async () => {
      const r = await runCli(['campaign', 'list', '--data-dir', dataDir]);
      assert.equal(r.code, 69, r.stderr);
      oneLine(r, /^allot: UNAVAILABLE: the embedded database in .* is in use by another allot process \(pid \d+\); stop it first/);
    });
  });
});
