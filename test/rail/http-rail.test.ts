// HttpRail against the simulated rail over real HTTP on 127.0.0.1: exact 64-bit amounts, a hung
// answer that becomes RailUnknownError while the rail did pay (once), refused connections and
// garbled answers as unknown, and lookups that never mistake an unreachable rail for not_found.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RailUnknownError, railKey, type RailOrder } from '../../src/ports/payment-rail.ts';
import { HttpRail } from '../../src/rail/http-rail.ts';
import { startSimRail, type SimRailServer, type SimRailServerOptions } from '../../src/rail/sim-server.ts';

const order = (id: string, over: Partial<RailOrder> = {}): RailOrder => ({
  key: railKey(id),
  orderId: id,
  userId: 'usr_1',
  asset: 'USD',
  amount: 1250n,
  destination: 'acct_1',
  ...over,
});

async function rail(t: { after(fn: () => Promise<void>): void }, opts: SimRailServerOptions = {}): Promise<SimRailServer> {
  const server = await startSimRail({ latencyMs: 2, ...opts });
  t.after(() => server.close());
  return server;
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A misbehaving rail: answers every request with `reply`. */
async function fakeRail(t: { after(fn: () => Promise<void>): void }, reply: (res: http.ServerResponse, req: http.IncomingMessage) => void): Promise<string> {
  const s = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => reply(res, req));
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

async function rejectsUnknown(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof RailUnknownError, `expected RailUnknownError, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });
}

test('a succeeded round trip keeps an amount above 2^53 exact; a repeat answers the same', async (t) => {
  const server = await rail(t);
  const client = new HttpRail({ url: server.url });
  const amount = 9223372036854775807n;
  const o = order('ord_big', { amount });
  const outcome = await client.execute(o);
  assert.equal(outcome.status, 'succeeded');
  assert.match(outcome.status === 'succeeded' ? outcome.railRef : '', /^sim_/);
  assert.equal(server.core.get(o.key)!.amount, amount);
  assert.deepEqual(await client.execute(o), outcome);
  assert.deepEqual(await client.lookup(o.key), outcome);
  assert.equal(server.core.stats().executed, 1);
  // the admin listing carries it as a decimal string
  const listing = (await (await fetch(`${server.url}/v1/sim/executions`)).json()) as { executions: Array<{ amount: string; executions: number }> };
  assert.equal(listing.executions[0]!.amount, '9223372036854775807');
  assert.equal(listing.executions[0]!.executions, 1);
});

test('a failed outcome comes back as failed with its reason', async (t) => {
  const server = await rail(t, { failureRate: 1 });
  const client = new HttpRail({ url: server.url });
  assert.deepEqual(await client.execute(order('ord_f')), { status: 'failed', reason: 'simulated failure' });
  assert.deepEqual(await client.lookup(railKey('ord_f')), { status: 'failed', reason: 'simulated failure' });
});

test('a hung answer is RailUnknownError within the timeout, yet the rail paid, once', async (t) => {
  const server = await rail(t, { timeoutRate: 1, hangMs: 60_000 });
  const client = new HttpRail({ url: server.url, timeoutMs: 200 });
  const o = order('ord_hang');
  const started = performance.now();
  await rejectsUnknown(client.execute(o), /did not answer within 200 ms; the outcome is unknown/);
  assert.ok(performance.now() - started < 1000, 'the client gave up on time');
  assert.equal((await client.lookup(o.key)).status, 'succeeded');
  assert.equal(server.core.get(o.key)!.executions, 1);
  // a retry under the same key hangs as well, and still pays nothing more
  await rejectsUnknown(client.execute(o), /did not answer/);
  assert.equal(server.core.stats().executed, 1);
});

test("the caller's signal aborts the wait: RailUnknownError", async (t) => {
  const server = await rail(t, { latencyMs: 5_000 });
  const client = new HttpRail({ url: server.url });
  await rejectsUnknown(client.execute(order('ord_abort'), AbortSignal.timeout(100)), /aborted.*the outcome is unknown/);
  assert.deepEqual(await client.lookup(railKey('ord_abort')), { status: 'pending' });
});

test('connection refused is RailUnknownError too', async () => {
  const client = new HttpRail({ url: `http://127.0.0.1:${await closedPort()}`, timeoutMs: 2_000 });
  await rejectsUnknown(client.execute(order('ord_refused')), /ECONNREFUSED.*the outcome is unknown/);
});

test('a 5xx, a garbled 200 and a reset connection are RailUnknownError', async (t) => {
  const cases: Array<[string, (res: http.ServerResponse) => void, RegExp]> = [
    ['5xx', (res) => res.writeHead(503).end('busy'), /HTTP 503 \(busy\)/],
    ['not JSON', (res) => res.writeHead(200).end('{"status":"succ'), /malformed outcome/],
    ['wrong shape', (res) => res.writeHead(200).end('{"status":"succeeded"}'), /malformed outcome/],
    ['pending is no outcome', (res) => res.writeHead(200).end('{"status":"pending"}'), /malformed outcome/],
    ['reset', (res) => res.socket!.destroy(), /failed \(/],
    ['400', (res) => res.writeHead(400).end('{"error":{"code":"INVALID_ORDER"}}'), /HTTP 400/],
  ];
  for (const [name, reply, message] of cases) {
    const client = new HttpRail({ url: await fakeRail(t, reply), timeoutMs: 2_000 });
    await rejectsUnknown(client.execute(order(`ord_${name}`)), message);
  }
});

test('a key reused for another body is a plain error (a bug), not an unknown outcome', async (t) => {
  const server = await rail(t);
  const client = new HttpRail({ url: server.url });
  await client.execute(order('ord_r'));
  await assert.rejects(client.execute(order('ord_r', { amount: 1n })), (err: unknown) => {
    assert.ok(!(err instanceof RailUnknownError));
    assert.match((err as Error).message, /KEY_REUSED/);
    return true;
  });
  assert.equal(server.core.stats().executed, 1);
});

test('lookup: not_found for a key never received, pending while it runs', async (t) => {
  const server = await rail(t, { latencyMs: 300 });
  const client = new HttpRail({ url: server.url });
  assert.deepEqual(await client.lookup(railKey('ord_unknown/with?odd#chars')), { status: 'not_found' });
  const running = client.execute(order('ord_p'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(await client.lookup(railKey('ord_p')), { status: 'pending' });
  assert.equal((await running).status, 'succeeded');
});

test('lookup against a dead server, a stranger 404 or a hung server throws instead of answering', async (t) => {
  const dead = new HttpRail({ url: `http://127.0.0.1:${await closedPort()}` });
  await assert.rejects(dead.lookup('allot:ord_x'), /rail unreachable.*ECONNREFUSED/);
  const wrongPath = new HttpRail({ url: await fakeRail(t, (res) => res.writeHead(404).end('Not Found')) });
  await assert.rejects(wrongPath.lookup('allot:ord_x'), /rail unreachable.*HTTP 404/);
  const hung = new HttpRail({ url: await fakeRail(t, () => {}), lookupTimeoutMs: 150 });
  await assert.rejects(hung.lookup('allot:ord_x'), /rail unreachable.*within 150 ms/);
});

test('the server refuses bad bodies (400) and serves its admin endpoints', async (t) => {
  const server = await rail(t);
  const post = (path: string, body: string) => fetch(`${server.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const good = { key: 'k', orderId: 'o', userId: 'u', asset: 'USD', amount: '5', destination: 'd' };
  for (const body of ['nope', '[]', JSON.stringify({ ...good, amount: 5 }), JSON.stringify({ ...good, amount: '1.5' }), JSON.stringify({ ...good, amount: '0' }), JSON.stringify({ ...good, key: '' })]) {
    const res = await post('/v1/executions', body);
    assert.equal(res.status, 400, body);
    assert.ok(((await res.json()) as { error: { code: string } }).error.code);
  }
  assert.equal(server.core.stats().received, 0);

  const cfg = await post('/v1/sim/config', JSON.stringify({ failureRate: 1, latencyMs: 0 }));
  assert.deepEqual(await cfg.json(), { latencyMs: 0, failureRate: 1, timeoutRate: 0, hangMs: 60_000 });
  assert.equal((await post('/v1/sim/config', JSON.stringify({ failureRate: 2 }))).status, 400);
  assert.equal((await post('/v1/sim/config', JSON.stringify({ bogus: 1 }))).status, 400);
  assert.equal((await (await post('/v1/executions', JSON.stringify(good))).json() as { status: string }).status, 'failed');
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  const listing = (await (await fetch(`${server.url}/v1/sim/executions`)).json()) as { stats: Record<string, number> };
  assert.deepEqual(listing.stats, { received: 1, executed: 0, succeeded: 0, failed: 1, pending: 0, duplicatesRefused: 0, keyReused: 0 });
});

test('close() ends promptly with answers still hanging', async () => {
  const server = await startSimRail({ latencyMs: 1, timeoutRate: 1, hangMs: 60_000 });
  const client = new HttpRail({ url: server.url, timeoutMs: 5_000 });
  const pending = client.execute(order('ord_close'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const started = performance.now();
  await server.close();
  assert.ok(performance.now() - started < 500);
  await rejectsUnknown(pending, /the outcome is unknown/);
});

test('name drops credentials, which go as basic auth', async (t) => {
  let auth: string | undefined;
  const url = await fakeRail(t, (res, req) => {
    auth = req.headers.authorization;
    res.writeHead(404).end('{"status":"not_found"}');
  });
  const withCredentials = new URL(url);
  withCredentials.username = 'user';
  withCredentials.password = 'p@ss';
  const client = new HttpRail({ url: withCredentials.toString() });
  assert.equal(client.name, url);
  assert.deepEqual(await client.lookup('k'), { status: 'not_found' });
  assert.equal(auth, `Basic ${Buffer.from('user:p@ss').toString('base64')}`);
});
