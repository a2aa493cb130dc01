// How long one database session may wait for or hold locks, on PostgreSQL and MariaDB:
// - a row-lock wait ends after about DB_TIMEOUT_MS with an error the service answers as retry/503
//   (not after MariaDB's innodb_lock_wait_timeout, 50 s by default);
// - the session isolation level is set, awaited, on every new connection (and can be chosen);
// - an instance frozen (SIGSTOP) inside a transaction loses that transaction after
//   idleTxTimeoutMs, so its row locks are released and the other instances go on.
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sql, type DatabaseConnection } from 'kysely';
import { connectSql, mysqlSessionSetup, type SqlConnection, type SqlConnectOptions } from '../../../src/adapters/sql/connect.ts';
import { isRetryable, isUnavailable } from '../../../src/adapters/sql/errors.ts';
import type { HolderReport } from './fixtures/tx-holder.ts';

const HOLDER = fileURLToPath(new URL('./fixtures/tx-holder.ts', import.meta.url));

interface Server {
  name: 'postgres' | 'mariadb';
  env: 'DATABASE_URL_PG' | 'DATABASE_URL_MYSQL';
}

const SERVERS: Server[] = [
  { name: 'postgres', env: 'DATABASE_URL_PG' },
  { name: 'mariadb', env: 'DATABASE_URL_MYSQL' },
];

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** The next IPC message from the child, or an error after `ms`. */
function nextReport(child: ChildProcess, ms: number): Promise<HolderReport> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no report from the child within ${ms} ms`)), ms);
    const onMessage = (m: unknown) => done(null, m as HolderReport);
    const onExit = (code: number | null, signal: string | null) => done(new Error(`child exited (code ${code}, signal ${signal}) before reporting`));
    function done(err: Error | null, m?: HolderReport) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m!);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

function describeError(err: unknown): string {
  const e = err as { code?: unknown; errno?: unknown; message?: unknown };
  return `code=${String(e.code)} errno=${String(e.errno)} ${String(e.message)}`;
}

for (const server of SERVERS) {
  const base = process.env[server.env];
  describe(`session limits on ${server.name}`, { skip: base ? false : `${server.env} is not set (npm test sets it)` }, () => {
    const tag = `sl_${process.pid}_${randomBytes(3).toString('hex')}`;
    let admin: SqlConnection;
    /** The URL the connections under test use (on PostgreSQL, scoped to a private schema). */
    let url: string;
    const tables: string[] = [];
    const open: SqlConnection[] = [];

    async function connect(opts: Partial<SqlConnectOptions>): Promise<SqlConnection> {
      const conn = await connectSql({ url, poolSize: 1, timeoutMs: 5_000, onPoolError: () => undefined, ...opts });
      open.push(conn);
      await sql`SELECT 1`.execute(conn.db); // connected (and the session set up) before timing anything
      return conn;
    }

    /** A fresh one-row table: (id 1, n 0). */
    async function scratchTable(suffix: string): Promise<string> {
      const name = `${tag}_${suffix}`;
      tables.push(name);
      await sql`CREATE TABLE ${sql.table(name)} (id integer PRIMARY KEY, n integer NOT NULL)`.execute(admin.db);
      await sql`INSERT INTO ${sql.table(name)} (id, n) VALUES (1, 0)`.execute(admin.db);
      return name;
    }

    async function valueOf(table: string): Promise<number> {
      const r = await sql<{ n: number }>`SELECT n FROM ${sql.table(table)} WHERE id = 1`.execute(admin.db);
      return Number(r.rows[0]!.n);
    }

    before(async () => {
      if (server.name === 'postgres') {
        const root = await connectSql({ url: base!, poolSize: 1, timeoutMs: 5_000 });
        try {
          await sql.raw(`CREATE SCHEMA ${tag}`).execute(root.db);
        } finally {
          await root.db.destroy();
        }
        url = `${base!}${base!.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${tag}`)}`;
      } else {
        url = base!;
      }
      admin = await connectSql({ url, poolSize: 1, timeoutMs: 5_000 });
    });

    after(async () => {
      await Promise.all(open.map((c) => c.db.destroy().catch(() => undefined)));
      if (!admin) return;
      if (server.name === 'postgres') await sql.raw(`DROP SCHEMA IF EXISTS ${tag} CASCADE`).execute(admin.db);
      else for (const t of tables) await sql`DROP TABLE IF EXISTS ${sql.table(t)}`.execute(admin.db);
      await admin.db.destroy();
    });

    test(`${server.name}: a row-lock wait gives up after about timeoutMs with an error answered as retry/503`, { timeout: 30_000 }, async (t) => {
      const table = await scratchTable('wait');
      const holder = await connect({ timeoutMs: 10_000, idleTxTimeoutMs: 30_000 });
      const waiter = await connect({ timeoutMs: 1_000 });
      const locked = deferred();
      const release = deferred();
      const holding = holder.db.transaction().execute(async (trx) => {
        await sql`UPDATE ${sql.table(table)} SET n = n + 10 WHERE id = 1`.execute(trx);
        locked.resolve();
        await release.promise;
        throw new Error('roll back');
      });
      holding.catch(() => undefined);
      try {
        await locked.promise;
        const t0 = performance.now();
        const err = await sql`UPDATE ${sql.table(table)} SET n = n + 1 WHERE id = 1`.execute(waiter.db).then(
          () => assert.fail('the update went through a row locked by another open transaction'),
          (e: unknown) => e,
        );
        const ms = performance.now() - t0;
        t.diagnostic(`lock wait ended after ${Math.round(ms)} ms: ${describeError(err)}`);
        assert.ok(ms < 3_000, `the lock wait lasted ${Math.round(ms)} ms (timeoutMs is 1000)`);
        assert.ok(isRetryable(err) || isUnavailable(err), `classified as retry/503: ${describeError(err)}`);
      } finally {
        release.resolve();
        await holding.catch(() => undefined);
      }
      assert.equal(await valueOf(table), 0);
    });

    test(`${server.name}: a statement running past timeoutMs is cut off with an error answered as 503`, { timeout: 30_000 }, async (t) => {
      const conn = await connect({ timeoutMs: 1_000 });
      const t0 = performance.now();
      const slow = server.name === 'postgres' ? sql`SELECT pg_sleep(3)` : sql`SELECT SLEEP(3)`;
      const err = await slow.execute(conn.db).then(
        () => assert.fail('a 3 s statement ran to the end under timeoutMs 1000'),
        (e: unknown) => e,
      );
      const ms = performance.now() - t0;
      t.diagnostic(`cut off after ${Math.round(ms)} ms: ${describeError(err)}`);
      assert.ok(ms < 2_500, `ran ${Math.round(ms)} ms`);
      assert.ok(isUnavailable(err), `classified as 503: ${describeError(err)}`);
    });

    test(`${server.name}: sessions run at read committed by default and at repeatable read when asked`, { timeout: 30_000 }, async () => {
      const level = async (conn: SqlConnection): Promise<string> => {
        // Inside a transaction: the level the transactions of this session actually get.
        const raw = await conn.db.transaction().execute(async (trx) => {
          if (server.name === 'postgres') return (await sql<{ l: string }>`SELECT current_setting('transaction_isolation') AS l`.execute(trx)).rows[0]!.l;
          return (await sql<{ l: string }>`SELECT @@session.tx_isolation AS l`.execute(trx)).rows[0]!.l;
        });
        return raw.toLowerCase().replace('-', ' ');
      };
      assert.equal(await level(await connect({})), 'read committed');
      assert.equal(await level(await connect({ isolation: 'read committed' })), 'read committed');
      const rr = await connect({ isolation: 'repeatable read' });
      assert.equal(await level(rr), 'repeatable read');
      if (server.name === 'postgres') {
        // The URL's own startup options (the private schema) are kept beside the isolation one.
        assert.equal((await sql<{ p: string }>`SELECT current_setting('search_path') AS p`.execute(rr.db)).rows[0]!.p, tag);
      }
    });

    for (const [idleTxTimeoutMs, parentTimeoutMs] of [[1_500, 8_000], [0, 1_500]] as const) {
      const fixed = idleTxTimeoutMs > 0;
      const title = fixed
        ? `${server.name}: a SIGSTOPped instance holding a row lock in a transaction loses it after idleTxTimeoutMs; the others go on`
        : `${server.name}: control: with the idle-transaction timeout off, the frozen instance blocks the row until the waiter's own timeout`;
      test(title, { timeout: 30_000 }, async (t) => {
        const table = await scratchTable(fixed ? 'frozen' : 'ctl');
        const parent = await connect({ timeoutMs: parentTimeoutMs });
        const child = fork(HOLDER, [url, table, String(idleTxTimeoutMs)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        try {
          const first = await nextReport(child, 15_000);
          assert.equal(first.kind, 'locked');
          assert.ok(child.kill('SIGSTOP'));
          const frozenAt = performance.now();
          const outcome = await sql`UPDATE ${sql.table(table)} SET n = n + 1 WHERE id = 1`.execute(parent.db).then(
            () => null,
            (e: unknown) => e,
          );
          const ms = performance.now() - frozenAt;
          if (fixed) {
            t.diagnostic(`the other instance's update went through ${Math.round(ms)} ms after the freeze (idleTxTimeoutMs ${idleTxTimeoutMs})`);
            assert.equal(outcome, null, `the update failed: ${outcome && describeError(outcome)}`);
            assert.ok(ms < 5_000, `the update waited ${Math.round(ms)} ms for the frozen instance`);
            // The frozen instance resumes: its transaction is gone, and what it learns is a
            // retry/503, never a 500; none of its writes survive.
            assert.ok(child.kill('SIGCONT'));
            const report = nextReport(child, 15_000);
            child.send('continue');
            const r = await report;
            assert.equal(r.kind, 'failed', 'the resumed transaction must not commit');
            if (r.kind === 'failed') {
              t.diagnostic(`the resumed instance got: code=${String(r.code)} errno=${String(r.errno)} ${r.message}`);
              assert.ok(r.retryable || r.unavailable, `classified as retry/503: ${r.message}`);
            }
            assert.equal(await valueOf(table), 1, 'only the other instance\'s update is there');
          } else {
            t.diagnostic(`with the timeout off the update failed after ${Math.round(ms)} ms: ${outcome && describeError(outcome)}`);
            assert.notEqual(outcome, null, 'the update went through a row locked by the frozen instance');
            assert.ok(ms >= parentTimeoutMs - 100, `gave up after ${Math.round(ms)} ms`);
            assert.equal(await valueOf(table), 0);
          }
        } finally {
          child.kill('SIGCONT');
          child.kill('SIGKILL');
        }
      });
    }
  });
}

describe('MySQL/MariaDB session setup statements (no server)', () => {
  /** A connection that refuses the named system variables as MySQL 8 does (error 1193). */
  function fakeConnection(unknown: string[] = [], failWith?: { errno: number; message: string }) {
    const seen: string[] = [];
    const connection = {
      async executeQuery(q: { sql: string }) {
        seen.push(q.sql);
        if (failWith) throw Object.assign(new Error(failWith.message), { errno: failWith.errno });
        const v = unknown.find((name) => q.sql.includes(name));
        if (v) throw Object.assign(new Error(`Unknown system variable '${v}'`), { errno: 1193, code: 'ER_UNKNOWN_SYSTEM_VARIABLE' });
        return { rows: [] };
      },
    } as unknown as DatabaseConnection;
    return { seen, connection };
  }

  test('MariaDB: isolation, then max_statement_time, innodb_lock_wait_timeout and idle_transaction_timeout (whole seconds, rounded up)', async () => {
    const { seen, connection } = fakeConnection();
    await mysqlSessionSetup({ timeoutMs: 1_500, idleTxTimeoutMs: 1_500, isolation: 'read committed' })(connection);
    assert.deepEqual(seen, [
      'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED',
      'SET SESSION max_statement_time = 1.500, innodb_lock_wait_timeout = 2, idle_transaction_timeout = 2',
    ]);
  });

  test('MySQL 8 (error 1193 for max_statement_time): max_execution_time in ms and innodb_lock_wait_timeout instead', async () => {
    const { seen, connection } = fakeConnection(['max_statement_time', 'idle_transaction_timeout']);
    await mysqlSessionSetup({ timeoutMs: 400, idleTxTimeoutMs: 2_000, isolation: 'repeatable read' })(connection);
    assert.deepEqual(seen, [
      'SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ',
      'SET SESSION max_statement_time = 0.400, innodb_lock_wait_timeout = 1, idle_transaction_timeout = 2',
      'SET SESSION max_execution_time = 400, innodb_lock_wait_timeout = 1',
    ]);
  });

  test('any other failure fails the setup (and so the first query)', async () => {
    const { connection } = fakeConnection([], { errno: 1227, message: 'Access denied' });
    await assert.rejects(mysqlSessionSetup({ timeoutMs: 5_000, idleTxTimeoutMs: 2_000, isolation: 'read committed' })(connection), /Access denied/);
  });
});
