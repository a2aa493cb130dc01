// The lab's TCP fault proxy against an echo server it starts itself, and against real Redis when
// REDIS_URL is set: latency, resets, blackholes and refusals do what the lab relies on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startFaultProxy, type FaultProxy } from '../../src/lab/proxy.ts';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function startEcho(): Promise<{ server: net.Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/** Reads from s until n bytes arrived. */
function readBytes(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (chunk: Buffer) => {
      parts.push(chunk);
      got += chunk.length;
      if (got >= n) {
        cleanup();
        resolve(Buffer.concat(parts));
      }
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`closed after ${got} of ${n} bytes`));
    };
    const cleanup = () => {
      s.off('data', onData);
      s.off('close', onClose);
    };
    s.on('data', onData);
    s.on('close', onClose);
  });
}

/** The error a socket dies of (null for a clean close). */
function closeReason(s: net.Socket): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    let err: NodeJS.ErrnoException | null = null;
    s.on('error', (e: NodeJS.ErrnoException) => (err = e));
    s.on('close', () => resolve(err));
  });
}

describe('fault proxy (echo server)', () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let proxy: FaultProxy;

  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    await echo.close();
  });

  const withProxy = (name: string, fn: () => Promise<void>) =>
    test(name, async () => {
      proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: echo.port } });
      try {
        await fn();
      } finally {
        await proxy.close();
      }
    });

  test('listens on loopback only', async () => {
    await assert.rejects(startFaultProxy({ target: { host: '127.0.0.1', port: echo.port }, listenHost: '0.0.0.0' }), /loopback/);
    await assert.rejects(startFaultProxy({ target: { host: '127.0.0.1', port: echo.port }, listenHost: '10.1.2.3' }), /loopback/);
    const p = await startFaultProxy({ target: { host: '127.0.0.1', port: echo.port } });
    assert.equal(p.host, '127.0.0.1');
    assert.ok(p.port > 0);
    await p.close();
  });

  withProxy('url() swaps host:port and keeps the rest', async () => {
    const hp = `127.0.0.1:${proxy.port}`;
    assert.equal(proxy.url('redis://127.0.0.1:6379/2'), `redis://${hp}/2`);
    assert.equal(proxy.url('postgres://u:p%40ss@db.local:5432/app?sslmode=disable'), `postgres://u:p%40ss@${hp}/app?sslmode=disable`);
    assert.equal(proxy.url('mysql://root@[::1]:3306/x'), `mysql://root@${hp}/x`);
    assert.equal(proxy.url('redis://localhost'), `redis://${hp}`);
    assert.throws(() => proxy.url('not a url'), /host:port/);
  });

  withProxy('bytes round-trip and are counted', async () => {
    const s = await connect(proxy.port);
    const payload = Buffer.alloc(256 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    const reply = readBytes(s, payload.length);
    s.write(payload);
    assert.ok((await reply).equals(payload));
    const st = proxy.stats();
    assert.equal(st.open, 1);
    assert.equal(st.bytesToTarget, payload.length);
    assert.equal(st.bytesToClient, payload.length);
    s.end();
    await once(s, 'close');
  });

  withProxy('latency applies in both directions', async () => {
    const s = await connect(proxy.port);
    proxy.setLatency(80);
    const reply = readBytes(s, 5);
    const t0 = performance.now();
    s.write('hello');
    assert.equal((await reply).toString(), 'hello');
    const rtt = performance.now() - t0;
    assert.ok(rtt >= 160, `round trip ${rtt.toFixed(1)} ms should include 2 x 80 ms`);
    s.destroy();
  });

  withProxy('order holds under latency for many small writes, also when latency drops', async () => {
    const s = await connect(proxy.port);
    proxy.setLatency(30);
    const n = 500;
    const expected = Buffer.from(Array.from({ length: n }, (_, i) => `${i};`).join(''));
    const reply = readBytes(s, expected.length);
    for (let i = 0; i < n; i++) {
      if (i === n / 2) proxy.setLatency(0);
      s.write(`${i};`);
      if (i % 50 === 0) await sleep(1);
    }
    assert.equal((await reply).toString(), expected.toString());
    s.destroy();
  });

  withProxy('resetAll gives the client ECONNRESET', async () => {
    const s = await connect(proxy.port);
    const reply = readBytes(s, 2);
    s.write('hi');
    await reply;
    const reason = closeReason(s);
    proxy.resetAll();
    assert.equal((await reason)?.code, 'ECONNRESET');
    // The proxy still serves new connections.
    const s2 = await connect(proxy.port);
    const r2 = readBytes(s2, 3);
    s2.write('new');
    assert.equal((await r2).toString(), 'new');
    s2.destroy();
  });

  withProxy('blackhole: nothing passes, nothing closes; off plus resetAll recovers', async () => {
    const s = await connect(proxy.port);
    proxy.setBlackhole(true);
    let received = 0;
    s.on('data', (c: Buffer) => (received += c.length));
    s.write('into the void');
    const late = await connect(proxy.port);
    late.on('data', (c: Buffer) => (received += c.length));
    late.write('me too');
    await sleep(200);
    assert.equal(received, 0);
    assert.equal(s.destroyed, false);
    assert.equal(late.destroyed, false);
    assert.ok(proxy.stats().bytesDropped >= 'into the void'.length + 'me too'.length);
    assert.equal(proxy.stats().bytesToTarget, 0);

    proxy.setBlackhole(false);
    const reasons = [closeReason(s), closeReason(late)];
    proxy.resetAll();
    for (const r of await Promise.all(reasons)) assert.equal(r?.code, 'ECONNRESET');
    const fresh = await connect(proxy.port);
    const reply = readBytes(fresh, 4);
    fresh.write('back');
    assert.equal((await reply).toString(), 'back');
    fresh.destroy();
  });

  withProxy('refuse resets new connections; existing ones keep working', async () => {
    const s = await connect(proxy.port);
    proxy.setRefuse(true);
    const refused = net.connect({ host: '127.0.0.1', port: proxy.port });
    const reason = await closeReason(refused);
    assert.equal(reason?.code, 'ECONNRESET');
    const reply = readBytes(s, 2);
    s.write('ok');
    assert.equal((await reply).toString(), 'ok');
    proxy.setRefuse(false);
    const s2 = await connect(proxy.port);
    const r2 = readBytes(s2, 3);
    s2.write('yes');
    assert.equal((await r2).toString(), 'yes');
    s.destroy();
    s2.destroy();
  });

  test('a target that refuses the connection resets the client', async () => {
    const dead = net.createServer();
    dead.listen(0, '127.0.0.1');
    await once(dead, 'listening');
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    const p = await startFaultProxy({ target: { host: '127.0.0.1', port } });
    try {
      const s = net.connect({ host: '127.0.0.1', port: p.port });
      assert.equal((await closeReason(s))?.code, 'ECONNRESET');
    } finally {
      await p.close();
    }
  });

  withProxy('a clean close travels through', async () => {
    const s = await connect(proxy.port);
    proxy.setLatency(20);
    const reply = readBytes(s, 3);
    s.end('bye');
    assert.equal((await reply).toString(), 'bye');
    const reason = await closeReason(s);
    assert.equal(reason, null);
    for (let i = 0; i < 50 && proxy.stats().open > 0; i++) await sleep(10);
    assert.equal(proxy.stats().open, 0);
  });
});

test('close() leaves no open handle: a process using the proxy exits by itself', async () => {
  const proxyModule = fileURLToPath(new URL('../../src/lab/proxy.ts', import.meta.url));
  const script = `
    import net from 'node:net';
    import { startFaultProxy } from ${JSON.stringify(proxyModule)};
    const echo = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
    await new Promise((r) => echo.listen(0, '127.0.0.1', r));
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: echo.address().port } });
    const open = () => { const s = net.connect(proxy.port, '127.0.0.1'); s.on('error', () => {}); return s; };
    const a = open();
    await new Promise((r) => a.once('connect', r));
    proxy.setLatency(200);
    a.write('pending under latency');
    proxy.setBlackhole(true);
    const b = open();
    await new Promise((r) => b.once('connect', r));
    b.write('hanging');
    await new Promise((r) => setTimeout(r, 50));
    await proxy.close();
    await new Promise((r) => echo.close(r));
    console.log('closed');
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  // Only a hang guard, not a timing assertion.
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(guard);
  assert.equal(signal, null, `the process did not exit by itself:\n${out}`);
  assert.equal(code, 0, out);
  assert.match(out, /closed/);
});

/** Like events.once, without rejecting on the 'error' events a reset client emits on its way. */
const waitFor = (r: Redis, event: string) => new Promise<void>((resolve) => r.once(event, () => resolve()));

describe('fault proxy (Redis via ioredis)', { skip: process.env.REDIS_URL ? false : 'REDIS_URL not set' }, () => {
  let proxy: FaultProxy;
  let redis: Redis;

  before(async () => {
    const target = new URL(process.env.REDIS_URL!);
    proxy = await startFaultProxy({ target: { host: target.hostname, port: Number(target.port || 6379) } });
    redis = new Redis(proxy.url(process.env.REDIS_URL!), {
      commandTimeout: 300,
      // A connection loss fails the commands in flight at once rather than resending them, so
      // the test sees the reset itself and not a timeout.
      maxRetriesPerRequest: 0,
      retryStrategy: () => 20,
    });
    redis.on('error', () => undefined);
  });
  after(async () => {
    redis.disconnect();
    await proxy.close();
  });

  test('PING goes through the proxy', async () => {
    assert.equal(await redis.ping(), 'PONG');
    assert.ok(proxy.stats().bytesToTarget > 0);
    assert.equal(proxy.stats().open, 1);
  });

  test('latency 100 ms slows a PING down', async () => {
    proxy.setLatency(100);
    try {
      const t0 = performance.now();
      // commandTimeout is 300 ms: the 200 ms round trip fits.
      assert.equal(await redis.ping(), 'PONG');
      const ms = performance.now() - t0;
      assert.ok(ms >= 90, `PING took ${ms.toFixed(1)} ms`);
    } finally {
      proxy.setLatency(0);
    }
  });

  test('resetAll fails the in-flight command and the client reconnects', async () => {
    proxy.setLatency(150);
    const closed = waitFor(redis, 'close');
    const inflight = redis.ping();
    await sleep(50);
    proxy.resetAll();
    proxy.setLatency(0);
    await assert.rejects(inflight, (err: Error) => !/timed out/i.test(err.message));
    await closed;
    // Sent while the client reconnects: ioredis queues it until the new connection is ready.
    assert.equal(await redis.ping(), 'PONG');
  });

  test('blackhole times a command out; off plus resetAll brings the client back', async () => {
    if (redis.status !== 'ready') await waitFor(redis, 'ready');
    proxy.setBlackhole(true);
    await assert.rejects(redis.ping(), /timed out/i);
    proxy.setBlackhole(false);
    const closed = waitFor(redis, 'close');
    proxy.resetAll();
    await closed;
    assert.equal(await redis.ping(), 'PONG');
  });
});
