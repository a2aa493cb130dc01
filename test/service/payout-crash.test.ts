// Conservation after a real crash, in randomized runs (fast-check), on PostgreSQL and MariaDB:
// a worker process (its own service, executor and sweep, the simulated rail process as its rail)
// fires a random mix of fundings-backed withdrawals, transfer orders (some repeated) and
// resolutions all at once, and is killed with SIGKILL at a random moment, with transactions,
// rail calls and sweeps in flight. Then, in this process:
// - right after the crash: the ledger audit passes (every asset: balances + held + paid out =
//   funded; each order held once, settled at most once), before any recovery;
// - a recovery (another instance's sweep, its clock past every lease) brings every order to
//   succeeded, failed or unknown, and the audit passes again;
// - no order reached the rail twice (the rail's per-key request count), and the database agrees
//   with the rail: an order succeeded here was paid there, an order failed here was not.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { openLabDatabase, type LabDatabase } from '../../src/lab/backends.ts';
import { railKey } from '../../src/ports/payment-rail.ts';
import { HttpRail } from '../../src/rail/http-rail.ts';
import { spawnSimRail, type SpawnedSimRail } from '../../src/rail/spawn.ts';
import { AllotService } from '../../src/service/service.ts';
import { dialects } from '../helpers/dialects.ts';
import { once } from './race-harness.ts';
import type { RaceOp } from './payout-race-worker.ts';

const WORKER = fileURLToPath(new URL('./payout-race-worker.ts', import.meta.url));
const USERS = 3;
const ORDERS = 8;

for (const d of dialects({ servers: true })) {
  describe(`payouts killed mid-run on ${d.name}`, () => {
    let rail: SpawnedSimRail;
    let service: AllotService;
    // A namespace of its own: this test's recovery runs hours ahead and would take over (and send
    // to its own rail) any executing order of another test sharing the database.
    let db: LabDatabase;
    // This instance's clock runs ahead of the dead worker's by more than any lease it took.
    let ahead = 0;
    const run = randomUUID().slice(0, 8);

    before(async () => {
      // Decided in 5-40 ms; some definite failures; some answers hang past the worker's rail timeout.
      db = await openLabDatabase(d.backend as 'postgres' | 'mysql', { given: d.url(), outDir: tmpdir(), stockBackstop: true, log: () => undefined });
      rail = await spawnSimRail({ latencyMs: 15, failureRate: 0.2, timeoutRate: 0.15, hangMs: 2_000 });
      service = await AllotService.open({
        config: { databaseUrl: db.url, dbPoolSize: 4, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
        clock: { now: () => Date.now() + ahead },
        rail: new HttpRail({ url: rail.url, timeoutMs: 3_000 }),
        payouts: { sweepIntervalMs: 0 },
      });
    });
    after(async () => {
      await service?.close();
      await rail?.stop();
      await db?.drop();
    });

    const audit = async (when: string) => {
      const a = await service.payouts.audit();
      assert.equal(a.ok, true, `${when}: ${JSON.stringify(a.checks.filter((c) => !c.ok))}`);
    };

    test('randomized runs, each killed with SIGKILL at a random moment: conserved after the crash and after recovery, nothing sent twice', { timeout: 240_000 }, async (t) => {
      let prop = 0;
      const diagnostics: string[] = [];
      t.after(() => diagnostics.forEach((line) => t.diagnostic(line)));
      const op = fc.oneof(
        fc.record({ kind: fc.constant('withdraw' as const), user: fc.nat(USERS - 1), amount: fc.integer({ min: 1, max: 300 }), key: fc.nat(5) }),
        fc.record({ kind: fc.constant('transfer' as const), user: fc.nat(USERS - 1), amount: fc.integer({ min: 1, max: 300 }), order: fc.nat(ORDERS - 1) }),
        fc.record({ kind: fc.constant('resolve' as const), order: fc.nat(ORDERS - 1), succeeded: fc.boolean() }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 10, maxLength: 60 }), fc.integer({ min: 20, max: 400 }), async (ops, killAfterMs) => {
          const p = `${run}-${++prop}`;
          const user = (i: number) => `kc-${p}-u${i}`;
          const orderOf = (o: number) => ({ orderId: `kc-${p}-o${o}`, destination: `addr-${o}` });
          // Each order id always comes with the same user and amount (the first use decides), so
          // repeats are identical and answer the order instead of being refused as different.
          const orderFields = new Map<number, { user: number; amount: number }>();
          for (let i = 0; i < USERS; i++) await service.payouts.fund({ fundingId: `kc-${p}-f${i}`, userId: user(i), asset: 'KC', amount: 1_000n });
          const raceOps: RaceOp[] = ops.map((o) => {
            if (o.kind === 'withdraw') return { kind: 'withdraw', userId: user(o.user), asset: 'KC', amount: String(o.amount), key: `kc-${p}-k${o.key}` };
            if (o.kind === 'resolve') return { kind: 'resolve', orderId: orderOf(o.order).orderId, outcome: o.succeeded ? 'succeeded' : 'failed' };
            const f = orderFields.get(o.order) ?? { user: o.user, amount: o.amount };
            orderFields.set(o.order, f);
            return { kind: 'transfer', ...orderOf(o.order), userId: user(f.user), asset: 'KC', amount: String(f.amount) };
          });

          const child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
          const exited = new Promise((r) => child.once('exit', r));
          try {
            const ready = once(child, 'ready');
            child.send({ type: 'open', setup: { url: db.url, railUrl: rail.url, railTimeoutMs: 300 } });
            await ready;
            const armed = once(child, 'armed');
            child.send({ type: 'arm', ops: raceOps });
            await armed;
            child.send({ type: 'go' });
            await new Promise((r) => setTimeout(r, killAfterMs));
          } finally {
            child.kill('SIGKILL');
            await exited;
          }

          // Conserved the moment it died: whatever committed, committed whole.
          await audit('right after the crash');
          const ids = [...orderFields.keys()].map((o) => orderOf(o).orderId);
          const stateCounts = async () => {
            const counts: Record<string, number> = {};
            for (const id of ids) {
              const s = await service.payouts.getTransfer(id).then((t) => t.state, () => 'absent');
              counts[s] = (counts[s] ?? 0) + 1;
            }
            return JSON.stringify(counts);
          };
          diagnostics.push(`run ${prop}: ${ops.length} ops, killed after ${killAfterMs} ms; orders at the crash ${await stateCounts()}`);

          // Another instance recovers: every lease of the dead worker has run out on its clock.
          for (let round = 0; round < 40; round++) {
            ahead += 3_600_000;
            await service.payouts.recover();
            await service.payouts.idle();
            const states = await Promise.all(ids.map((id) => service.payouts.getTransfer(id).then((t) => t.state, () => 'absent')));
            if (states.every((s) => s !== 'received' && s !== 'executing')) break;
            await new Promise((r) => setTimeout(r, 50));
          }
          await audit('after recovery');
          diagnostics.push(`  after recovery ${await stateCounts()}`);

          const atRail = await rail.executions();
          for (const id of ids) {
            const t = await service.payouts.getTransfer(id).catch(() => null);
            const e = atRail.get(railKey(id));
            assert.ok((e?.requests ?? 0) <= 1, `order ${id} reached the rail ${e?.requests} times`);
            if (!t) {
              assert.equal(e, undefined, `order ${id} was never recorded, yet the rail saw it`);
              continue;
            }
            assert.ok(['succeeded', 'failed', 'unknown'].includes(t.state), `order ${id} left ${t.state} after recovery`);
            // Decided by the rail's answer (not by a person): the rail agrees.
            if (t.resolution === null && t.state === 'succeeded') assert.equal(e?.status, 'succeeded', `order ${id} succeeded here, the rail says ${e?.status}`);
            if (t.resolution === null && t.state === 'failed') assert.equal(e?.status, 'failed', `order ${id} failed here, the rail says ${e?.status}`);
          }
        }),
        { numRuns: 5, endOnFailure: true },
      );
    });
  });
}
