// Payouts under real concurrency, on PostgreSQL and MariaDB, with 4 processes (so nothing
// in-process can serialize them) and the simulated rail in a process of its own:
// - the red-packet reproduction: one user, 1,000 concurrent withdrawals mixing repeats of one
//   key and distinct keys: paid once per distinct key up to the balance;
// - one transfer order sent 500 times at once: exactly one execution at the rail, while Redis
//   (the instances' lock backend) is flushed and then stopped: payouts never depend on it;
// - rail timeouts: orders stop at `unknown`, and resolutions raced from 4 processes apply once;
// - kill -9 of the service between `executing` and the rail's answer: after a restart the order
//   is settled from the rail's own record, executed exactly once.
import assert from 'node:assert/strict';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { railKey } from '../../src/ports/payment-rail.ts';
import { spawnSimRail, type SpawnedSimRail } from '../../src/rail/spawn.ts';
import { AllotService } from '../../src/service/service.ts';
import { dialects } from '../helpers/dialects.ts';
import { freePort, startRedis, type TestServer } from '../helpers/servers.ts';
import { once, shuffle } from './race-harness.ts';
import type { RaceOp, RaceResult, RaceSetup } from './payout-race-worker.ts';

const WORKERS = 4;
const WORKER = fileURLToPath(new URL('./payout-race-worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const code = (body: unknown) => (body as { error?: { code?: string } })?.error?.code;

/** WORKERS processes, each with its own service, kept for a whole describe. */
class Pool {
  private constructor(private readonly children: ChildProcess[]) {}

  static async open(setup: RaceSetup): Promise<Pool> {
    const children = Array.from({ length: WORKERS }, () => fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const pool = new Pool(children);
    try {
      const ready = children.map((c) => once(c, 'ready'));
      for (const c of children) c.send({ type: 'open', setup });
      await Promise.all(ready);
      return pool;
    } catch (err) {
      pool.kill();
      throw err;
    }
  }

  /** Runs `ops` spread over the processes, all fired at once; `during` runs meanwhile. */
  async race(ops: RaceOp[], during?: () => Promise<void>): Promise<RaceResult[]> {
    const armed = this.children.map((c) => once(c, 'armed'));
    this.children.forEach((c, i) => c.send({ type: 'arm', ops: ops.filter((_, j) => j % WORKERS === i) }));
    await Promise.all(armed);
    const done = this.children.map((c) => once<{ type: string; results?: RaceResult[] }>(c, 'done'));
    for (const c of this.children) c.send({ type: 'go' });
    await during?.();
    return (await Promise.all(done)).flatMap((m) => m.results ?? []);
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map((c) => (c.exitCode !== null ? undefined : new Promise<void>((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), 5_000);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      c.send({ type: 'close' });
    }))));
  }

  kill(): void {
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}

for (const d of dialects({ servers: true })) {
  describe(`payout race on ${d.name}`, () => {
    let service: AllotService;
    let rail: SpawnedSimRail;
    let redis: TestServer;
    let pool: Pool;
    const run = randomUUID().slice(0, 8);

    before(async () => {
      rail = await spawnSimRail({ latencyMs: 20 });
      // The instances' lock backend: flushed, then stopped, in the middle of a race below.
      redis = await startRedis();
      service = await AllotService.open({
        config: { databaseUrl: d.url(), dbPoolSize: 4, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
        payouts: { sweepIntervalMs: 0 },
      });
      pool = await Pool.open({ url: d.url(), railUrl: rail.url, locksUrl: redis.url, railTimeoutMs: 1_000 });
    });
    after(async () => {
      await pool?.close();
      await service?.close();
      await rail?.stop();
      await redis?.destroy();
    });

    const audit = async () => {
      const a = await service.payouts.audit();
      assert.equal(a.ok, true, JSON.stringify(a.checks.filter((c) => !c.ok)));
    };

    test('red packet: one user, 1,000 concurrent withdrawals over 4 processes, paid once per distinct key up to the balance', { timeout: 120_000 }, async () => {
      const user = `openid-${run}`;
      // Ten red packets of 100 in the balance; 31 distinct keys asked for, half the requests on one key.
      await service.payouts.fund({ fundingId: `rp-${run}`, userId: user, asset: 'CNY', amount: 1000n });
      const ops: RaceOp[] = shuffle(Array.from({ length: 1000 }, (_, i) => ({ kind: 'withdraw' as const, userId: user, asset: 'CNY', amount: '100', key: i % 2 === 0 ? 'k-0' : `k-${1 + (i % 30)}` })));
      const results = await pool.race(ops);
      assert.equal(results.length, 1000);
      assert.deepEqual(results.filter((r) => r.status === 0 || r.status >= 500), [], 'no request failed with an error');
      const ok = results.filter((r) => r.status === 201);
      const idsByKey = new Map<string, Set<string>>();
      for (const r of ok) {
        const key = (r.op as { key: string }).key;
        const set = idsByKey.get(key) ?? new Set<string>();
        set.add((r.body as { withdrawal: { id: string } }).withdrawal.id);
        idsByKey.set(key, set);
      }
      // Every key that paid answered one and the same withdrawal to all its requests.
      for (const [key, ids] of idsByKey) assert.equal(ids.size, 1, `key ${key} answered ${ids.size} different withdrawals`);
      assert.equal(idsByKey.size, 10, 'ten keys paid: the balance covers ten');
      for (const r of results.filter((x) => x.status !== 201)) assert.equal(code(r.body), 'INSUFFICIENT_FUNDS');
      const b = (await service.payouts.balances(user)).find((x) => x.asset === 'CNY');
      assert.deepEqual([b?.available, b?.held, b?.paidOut], [0n, 0n, 1000n]);
      await audit();
    });

    test('one order sent 500 times at once over 4 processes: one execution at the rail, whatever Redis does', { timeout: 120_000 }, async () => {
      {
        const user = `tr-${run}`;
        await service.payouts.fund({ fundingId: `tr-${run}`, userId: user, asset: 'CNY', amount: 1000n });
        const orderId = `order-${run}`;
        const ops: RaceOp[] = Array.from({ length: 500 }, () => ({ kind: 'transfer' as const, orderId, userId: user, asset: 'CNY', amount: '300', destination: 'addr-1' }));
        const { createClient } = await import('redis');
        const admin = createClient({ url: redis.url });
        await admin.connect();
        const results = await pool.race(ops, async () => {
          // Mid-run: the instances' Redis loses everything, then goes away.
          await admin.flushAll();
          await admin.quit();
          await redis.stop();
        });
        assert.deepEqual(results.filter((r) => r.status !== 202 && r.status !== 200), [], 'every request answered the order');
        assert.equal(results.filter((r) => r.status === 202).length, 1, 'received once');
        assert.equal(results.filter((r) => r.status === 200 && r.replayed).length, 499, 'the rest answered the existing order');
        await service.payouts.idle();
        const e = (await rail.executions()).get(railKey(orderId));
        assert.deepEqual([e?.executions, e?.requests], [1, 1], 'sent once, paid once');
        const t = await service.payouts.getTransfer(orderId);
        assert.equal(t.state, 'succeeded');
        assert.equal(t.attempts, 1);
        const b = (await service.payouts.balances(user)).find((x) => x.asset === 'CNY');
        assert.deepEqual([b?.available, b?.held, b?.paidOut], [700n, 0n, 300n]);
        await audit();
      }
    });

    test('rail timeouts leave orders unknown; resolutions raced from 4 processes apply once', { timeout: 120_000 }, async () => {
      await rail.configure({ timeoutRate: 1, hangMs: 5_000 });
      try {
        const user = `to-${run}`;
        await service.payouts.fund({ fundingId: `to-${run}`, userId: user, asset: 'CNY', amount: 1000n });
        const orders = Array.from({ length: 8 }, (_, i) => `to-${run}-${i}`);
        const sends: RaceOp[] = orders.map((orderId) => ({ kind: 'transfer' as const, orderId, userId: user, asset: 'CNY', amount: '100', destination: 'addr-9' }));
        await pool.race(sends);
        for (const o of orders) assert.equal((await service.payouts.getTransfer(o)).state, 'unknown');
        const held = (await service.payouts.balances(user)).find((x) => x.asset === 'CNY');
        assert.deepEqual([held?.available, held?.held, held?.paidOut], [200n, 800n, 0n]);
        // Each order resolved 8 times at once (half each way would be a person's mistake: the
        // first decision wins and the other is refused, never applied on top).
        const resolutions: RaceOp[] = orders.flatMap((orderId, i) => Array.from({ length: 8 }, () => ({ kind: 'resolve' as const, orderId, outcome: i % 2 === 0 ? ('succeeded' as const) : ('failed' as const) })));
        const results = await pool.race(shuffle(resolutions));
        for (const o of orders) {
          const rs = results.filter((r) => (r.op as { orderId: string }).orderId === o);
          assert.equal(rs.filter((r) => r.status === 200 && !r.replayed).length, 1, `order ${o} resolved once`);
          assert.equal(rs.filter((r) => r.status === 200 && r.replayed).length, 7);
        }
        const b = (await service.payouts.balances(user)).find((x) => x.asset === 'CNY');
        assert.deepEqual([b?.available, b?.held, b?.paidOut], [600n, 0n, 400n]);
        // Never executed twice (an order whose request the rail had not even received when the
        // caller gave up is unknown too: the rail may show nothing for it).
        const ex = await rail.executions();
        for (const o of orders) assert.ok((ex.get(railKey(o))?.requests ?? 0) <= 1, `order ${o} sent ${ex.get(railKey(o))?.requests} times`);
        await audit();
      } finally {
        await rail.configure({ timeoutRate: 0 });
      }
    });

    test('kill -9 between "executing" and the rail\'s answer: after a restart the order is settled, executed once', { timeout: 120_000 }, async () => {
      // The rail every instance shares (the 4 pool processes sweep too, and any of them may be
      // the one that recovers the order), slowed so the kill lands while it decides.
      await rail.configure({ latencyMs: 1_500 });
      const port = await freePort();
      const token = `token-${randomUUID()}`;
      const env = {
        ...process.env,
        DATABASE_URL: d.url(),
        PORT: String(port),
        ALLOT_ADMIN_TOKEN: token,
        ALLOT_RAIL_URL: rail.url,
        ALLOT_RAIL_TIMEOUT_MS: '2000',
        LOG_LEVEL: 'warn',
        ALLOT_DATA_DIR: `/tmp/allot-payout-kill-${run}`,
      };
      const serve = async (): Promise<ChildProcess> => {
        const child = spawn(process.execPath, ['bin/allot.js', 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
        for (let i = 0; i < 300; i++) {
          if (child.exitCode !== null) throw new Error(`allot serve exited: ${err}`);
          if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) return child;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`allot serve did not start: ${err}`);
      };
      const api = (path: string, body?: unknown) =>
        fetch(`http://127.0.0.1:${port}${path}`, { method: body ? 'POST' : 'GET', headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
      let child: ChildProcess | null = null;
      try {
        const user = `kill-${run}`;
        const orderId = `kill-${run}`;
        child = await serve();
        assert.equal((await api('/v1/fundings', { fundingId: `kill-${run}`, userId: user, asset: 'CNY', amount: 500 })).status, 201);
        assert.equal((await api('/v1/transfers', { orderId, userId: user, asset: 'CNY', amount: 200, destination: 'addr-k' })).status, 202);
        // Wait until the rail has the request (it answers 1.5 s later), then kill the service.
        for (let i = 0; i < 100; i++) {
          const e = (await rail.executions()).get(railKey(orderId));
          if (e) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(((await (await api(`/v1/transfers/${orderId}`)).json()) as { transfer: { state: string } }).transfer.state, 'executing');
        child.kill('SIGKILL');
        await new Promise((r) => child!.once('exit', r));
        child = await serve();
        // The dead executor's lease (rail timeout + 5 s) runs out; the sweep then asks the rail.
        let state = '';
        for (let i = 0; i < 200 && state !== 'succeeded'; i++) {
          state = ((await (await api(`/v1/transfers/${orderId}`)).json()) as { transfer: { state: string } }).transfer.state;
          if (state !== 'succeeded') await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(state, 'succeeded');
        const e = (await rail.executions()).get(railKey(orderId));
        assert.deepEqual([e?.executions, e?.requests], [1, 1], 'the instance that recovered it asked the rail; it did not send again');
        const b = (await service.payouts.balances(user)).find((x) => x.asset === 'CNY');
        assert.deepEqual([b?.available, b?.held, b?.paidOut], [300n, 0n, 200n]);
        await audit();
      } finally {
        if (child && child.exitCode === null) child.kill('SIGKILL');
        await rail.configure({ latencyMs: 20 });
      }
    });
  });
}
