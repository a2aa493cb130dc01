// src/lab/servers.ts: private Redis / PostgreSQL / MariaDB start, answer real queries, stop by PID,
// come back on the same port with their data, and leave nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { envUrl, startMariadb, startPostgres, startRedis, type TestServer } from '../helpers/servers.ts';

function connectOutcome(port: number): Promise<'connected' | string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(2_000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

async function assertStopped(server: TestServer): Promise<void> {
  assert.equal(server.pid(), undefined);
  assert.equal(await connectOutcome(server.port), 'ECONNREFUSED');
}

async function withRedis<T>(url: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  await redis.connect();
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

async function withPg<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function withMysql<T>(url: string, fn: (connection: mysql.Connection) => Promise<T>): Promise<T> {
  const connection = await mysql.createConnection(url);
  try {
    return await fn(connection);
  } finally {
    await connection.end();
  }
}

test('redis: PING-ready, SET/GET, stop refuses connections, restart on the same port, destroy', async (t) => {
  const server = await startRedis();
  t.after(() => server.destroy());
  assert.equal(server.kind, 'redis');
  assert.equal(server.url, `redis://127.0.0.1:${server.port}`);
  assert.ok(server.pid());

  await withRedis(server.url, async (redis) => {
    assert.equal(await redis.set('allot:k', 'v1'), 'OK');
    assert.equal(await redis.get('allot:k'), 'v1');
    assert.deepEqual(await redis.config('GET', 'appendonly'), ['appendonly', 'no']);
  });

  await server.stop();
  await assertStopped(server);
  await server.stop(); // idempotent

  await server.start();
  await withRedis(server.url, async (redis) => {
    assert.equal(await redis.get('allot:k'), null, 'no persistence by default');
    assert.equal(await redis.ping(), 'PONG');
  });

  // A frozen server still stops (stop() sends SIGCONT after the stop signal).
  server.kill('SIGSTOP');
  await server.stop();
  await assertStopped(server);

  await server.destroy();
  assert.equal(existsSync(server.dataDir), false);
});

test('redis with persistence: acknowledged writes survive SIGKILL', async (t) => {
  const server = await startRedis({ persistence: true });
  t.after(() => server.destroy());
  await withRedis(server.url, async (redis) => {
    await redis.set('allot:durable', '42');
  });
  server.kill('SIGKILL');
  await server.start();
  await withRedis(server.url, async (redis) => {
    assert.equal(await redis.get('allot:durable'), '42');
  });
});

test('postgres: authenticated query as allot, data survives stop/start, destroy', async (t) => {
  const server = await startPostgres();
  t.after(() => server.destroy());
  const url = new URL(server.url);
  assert.equal(url.protocol, 'postgres:');
  assert.equal(url.hostname, '127.0.0.1');
  assert.equal(Number(url.port), server.port);
  assert.equal(url.username, 'allot');
  assert.equal(url.pathname, '/allot');

  await withPg(server.url, async (client) => {
    const { rows } = await client.query('SELECT 1 AS one, current_user AS who, current_database() AS db');
    assert.deepEqual(rows, [{ one: 1, who: 'allot', db: 'allot' }]);
    await client.query('CREATE TABLE survives (id int PRIMARY KEY, note text)');
    await client.query(`INSERT INTO survives VALUES (1, 'before stop')`);
  });

  // A wrong password is refused: the server really authenticates.
  const wrong = new URL(server.url);
  wrong.password = 'wrong';
  await assert.rejects(withPg(wrong.toString(), (client) => client.query('SELECT 1')), /password authentication failed/);

  const pidBefore = server.pid();
  await server.stop();
  await assertStopped(server);

  await server.start();
  assert.notEqual(server.pid(), pidBefore);
  await withPg(server.url, async (client) => {
    const { rows } = await client.query('SELECT note FROM survives WHERE id = 1');
    assert.deepEqual(rows, [{ note: 'before stop' }]);
  });

  // Crash and recover: SIGKILL the postmaster, start again.
  server.kill('SIGKILL');
  await server.start();
  await withPg(server.url, async (client) => {
    const { rows } = await client.query('SELECT count(*)::int AS n FROM survives');
    assert.deepEqual(rows, [{ n: 1 }]);
  });

  await server.destroy();
  await assertStopped(server);
  assert.equal(existsSync(server.dataDir), false);
});

test('mariadb: authenticated query as allot, data survives stop/start, destroy', async (t) => {
  const server = await startMariadb();
  t.after(() => server.destroy());
  const url = new URL(server.url);
  assert.equal(url.protocol, 'mysql:');
  assert.equal(url.hostname, '127.0.0.1');
  assert.equal(Number(url.port), server.port);
  assert.equal(url.username, 'allot');
  assert.equal(url.pathname, '/allot');

  await withMysql(server.url, async (connection) => {
    const [rows] = await connection.query('SELECT 1 AS one, CURRENT_USER() AS who, DATABASE() AS db');
    assert.deepEqual(rows, [{ one: 1, who: 'allot@127.0.0.1', db: 'allot' }]);
    await connection.query('CREATE TABLE survives (id INT PRIMARY KEY, note VARCHAR(50)) ENGINE=InnoDB');
    await connection.query(`INSERT INTO survives VALUES (1, 'before stop')`);
  });

  const wrong = new URL(server.url);
  wrong.password = 'wrong';
  await assert.rejects(mysql.createConnection(wrong.toString()), /Access denied/);

  await server.stop();
  await assertStopped(server);

  await server.start();
  await withMysql(server.url, async (connection) => {
    const [rows] = await connection.query('SELECT note FROM survives WHERE id = 1');
    assert.deepEqual(rows, [{ note: 'before stop' }]);
  });

  await server.destroy();
  await assertStopped(server);
  assert.equal(existsSync(server.dataDir), false);
});

test('durable: the benchmarks\' servers commit to disk (read from each server), the tests\' do not', async (t) => {
  const pgs = await Promise.all([startPostgres({ durable: true }), startPostgres()]);
  t.after(() => Promise.all(pgs.map((s) => s.destroy())));
  const pgSettings = (url: string) => withPg(url, async (client) => (await client.query(`SELECT current_setting('fsync') AS f, current_setting('synchronous_commit') AS s, current_setting('full_page_writes') AS w`)).rows[0]);
  assert.deepEqual(await pgSettings(pgs[0]!.url), { f: 'on', s: 'on', w: 'on' });
  assert.deepEqual(await pgSettings(pgs[1]!.url), { f: 'off', s: 'off', w: 'off' });
  const mys = await Promise.all([startMariadb({ durable: true }), startMariadb()]);
  t.after(() => Promise.all(mys.map((s) => s.destroy())));
  const mySettings = (url: string) => withMysql(url, async (c) => ((await c.query('SELECT @@innodb_flush_log_at_trx_commit AS f, @@innodb_doublewrite AS d')) as unknown as [Array<{ f: unknown; d: unknown }>])[0][0]);
  assert.deepEqual(await mySettings(mys[0]!.url), { f: 1, d: 1 });
  assert.deepEqual(await mySettings(mys[1]!.url), { f: 0, d: 0 });
});

test('envUrl names the way to start the servers when the variable is missing', () => {
  const saved = process.env.REDIS_URL;
  delete process.env.REDIS_URL;
  try {
    assert.throws(() => envUrl('REDIS_URL'), /npm test.*scripts\/services\.sh up/);
  } finally {
    if (saved !== undefined) process.env.REDIS_URL = saved;
  }
  const savedPg = process.env.DATABASE_URL_PG;
  process.env.DATABASE_URL_PG = 'postgres://allot:pw@127.0.0.1:1/allot';
  try {
    assert.equal(envUrl('DATABASE_URL_PG'), 'postgres://allot:pw@127.0.0.1:1/allot');
  } finally {
    if (savedPg === undefined) delete process.env.DATABASE_URL_PG;
    else process.env.DATABASE_URL_PG = savedPg;
  }
});
