// Fault tests on a private Redis: a SIGKILLed holder, Redis restarted without persistence,
// FLUSHALL mid-test, Redis paused past a lease. Locks must free, fences stay monotonic,
// waiters finish with a lease or a typed error in time, and nothing rejects unhandled.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startRedis, type TestServer } from '../helpers/servers.ts';
import {
  createRedisLockProvider,
  fromIoredis,
  LockError,
  LockLostError,
  MemoryFenceAnchor,
  RedisTimeFenceAnchor,
  type FenceAnchor,
  type Lease,
  type LockEvent,
  type LockProvider,
  type RedisClient,
} from '../../packages/lock/src/index.ts';
import { connect, uniquePrefix, type ClientKind } from './redis-harness.ts';

const HOLDER = fileURLToPath(new URL('./fixtures/holder.ts', import.meta.url));

describe('lock faults (private Redis)', () => {
  let server: TestServer;
  const clients: Redis[] = [];
  const providers: LockProvider[] = [];
  const rejections: unknown[] = [];
  const onRejection = (r: unknown) => rejections.push(r);

  const client = (): RedisClient => {
    const c = new Redis(server.url, { maxRetriesPerRequest: 2 });
    c.on('error', () => undefined);
    clients.push(c);
    return fromIoredis(c);
  };
  const nodeRedisClients: RedisClient[] = [];
  const provider = (prefix: string, fenceAnchor: FenceAnchor, onEvent?: (e: LockEvent) => void, c: RedisClient = client()): LockProvider => {
    const p = createRedisLockProvider({ client: c, prefix, fenceAnchor, ...(onEvent ? { onEvent } : {}) });
    providers.push(p);
    return p;
  };
  const admin = () => {
    const c = new Redis(server.url);
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };

  before(async () => {
    process.on('unhandledRejection', onRejection);
    server = await startRedis();
  });
  after(async () => {
    await Promise.all(providers.map((p) => p.close()));
    for (const c of clients) c.disconnect();
    await Promise.all(nodeRedisClients.map((c) => c.quit().catch(() => undefined)));
    await server.destroy();
    process.off('unhandledRejection', onRejection);
    assert.deepEqual(rejections, [], 'no unhandled rejections');
  });

  it('frees the lock within its TTL after the holder process is SIGKILLed', async () => {
    const prefix = uniquePrefix('kill');
    const p = provider(prefix, new MemoryFenceAnchor());
    await (await p.acquire('warm', { ttlMs: 1_000 })).release(); // installs the epoch
    const ttl = 600;
    const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, server.url, prefix, 'k', String(ttl)], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
      const childFence = BigInt(line.split(' ')[1]!);
      await delay(ttl + 200);
      assert.equal(await p.tryAcquire('k'), null, 'the watchdog kept renewing past one TTL');
      const waiting = p.acquire('k', { ttlMs: 1_000, timeoutMs: 5_000 });
      child.kill('SIGKILL');
      const killedAt = Date.now();
      const lease = await waiting;
      const freedAfter = Date.now() - killedAt;
      assert.ok(freedAfter <= ttl + 400, `freed ${freedAfter} ms after SIGKILL (TTL ${ttl} ms)`);
      assert.ok(lease.fence > childFence);
      await lease.release();
    } finally {
      child.kill('SIGKILL');
    }
  });

  async function disruptWhileContended(label: string, anchor: FenceAnchor, disrupt: () => Promise<void>, kind: ClientKind = 'ioredis') {
    const prefix = uniquePrefix(label);
    const events: LockEvent[] = [];
    const make = async () => {
      if (kind === 'ioredis') return client();
      const c = await connect('node-redis', server.url);
      nodeRedisClients.push(c);
      return c;
    };
    const p = provider(prefix, anchor, (e) => events.push(e), await make());
    const q = provider(prefix, anchor, (e) => events.push(e), await make());
    const before: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const l = await q.acquire('k', { ttlMs: 1_000 });
      before.push(l.fence);
      await l.release();
    }
    let holderLost: unknown;
    const holding = p.using('k', { ttlMs: 800 }, async (signal) => {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      holderLost = signal.reason;
    });
    await delay(50);
    const timeoutMs = 6_000;
    const started = Date.now();
    const after: bigint[] = [];
    const waiters = Array.from({ length: 4 }, (_, i) =>
      (i % 2 ? p : q).acquire('k', { ttlMs: 1_000, timeoutMs }).then(
        async (l: Lease) => {
          after.push(l.fence);
          await delay(5);
          await l.release().catch(() => undefined);
          return 'ok' as const;
        },
        (e: unknown) => {
          assert.ok(e instanceof LockError, `typed error, got ${String(e)}`);
          return e.code;
        },
      ),
    );
    await delay(100);
    await disrupt();
    const outcomes = await Promise.all(waiters);
    assert.ok(Date.now() - started <= timeoutMs + 1_500, 'every waiter finished within its timeout');
    assert.ok(outcomes.filter((o) => o === 'ok').length >= 1, `outcomes ${outcomes.join(',')}`);
    await holding;
    assert.ok(holderLost instanceof LockLostError, 'the holder learned it lost the lock');
    assert.ok(events.some((e) => e.type === 'lost'));
    const installs = events.filter((e) => e.type === 'epochInstalled' && e.installed);
    assert.ok(installs.length >= 2, 'a new epoch was installed after Redis lost its state');
    const maxBefore = before.reduce((a, b) => (a > b ? a : b));
    for (let i = 0; i < after.length; i++) {
      assert.ok(after[i]! > maxBefore, `fence ${after[i]} after the disruption exceeds ${maxBefore}`);
      if (i > 0) assert.ok(after[i]! > after[i - 1]!);
    }
    const last = await q.acquire('k', { ttlMs: 1_000, timeoutMs: 3_000 });
    assert.ok(last.fence > (after.at(-1) ?? maxBefore));
    await last.release();
  }

  it('survives FLUSHALL mid-test: fences stay monotonic (durable-style anchor)', async () => {
    await disruptWhileContended('flush', new MemoryFenceAnchor(), async () => {
      await admin().flushall();
    });
  });

  it('survives FLUSHALL mid-test with the Redis TIME anchor', async () => {
    await disruptWhileContended('flush-time', new RedisTimeFenceAnchor(client()), async () => {
      await delay(5);
      await admin().flushall();
    });
  });

  it('survives a Redis restart without persistence mid-test', async () => {
    await disruptWhileContended('restart', new MemoryFenceAnchor(), async () => {
      await server.stop();
      await delay(200);
      await server.start();
    });
  });

  it('survives FLUSHALL and a restart mid-test through node-redis too', async () => {
    await disruptWhileContended('flush-nr', new MemoryFenceAnchor(), async () => {
      await admin().flushall();
    }, 'node-redis');
    await disruptWhileContended('restart-nr', new MemoryFenceAnchor(), async () => {
      await server.stop();
      await delay(200);
      await server.start();
    }, 'node-redis');
  });

  it('aborts the watchdog signal when Redis is paused past the lease', async () => {
    const prefix = uniquePrefix('pause');
    const events: LockEvent[] = [];
    const p = provider(prefix, new MemoryFenceAnchor(), (e) => events.push(e));
    const ttl = 500;
    let abortedAfter = -1;
    let pausedAt = 0;
    await p.using('k', { ttlMs: ttl }, async (signal, lease) => {
      await delay(ttl / 2);
      pausedAt = Date.now();
      await admin().client('PAUSE', 1_500, 'ALL');
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      abortedAfter = Date.now() - pausedAt;
      assert.ok(signal.reason instanceof LockLostError);
      assert.ok(Date.now() >= lease.expiresAt);
    });
    assert.ok(abortedAfter >= 0 && abortedAfter <= ttl + 200, `aborted ${abortedAfter} ms after the pause`);
    assert.ok(events.some((e) => e.type === 'lost'));
    await delay(1_600 - (Date.now() - pausedAt));
  });
});
