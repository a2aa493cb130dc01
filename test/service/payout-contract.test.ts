// The payout contract, once per dialect (PGlite, PostgreSQL, MariaDB), through the service:
// fundings, withdrawals, transfer orders and their recovery points, driven by a scripted rail
// (the external side effect; the simulated rail process has its own tests and the race test
// uses it) and a manual clock (leases run out when the test says so). Ends with randomized
// runs (fast-check) that check conservation after every step.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { sql } from 'kysely';
import { AllotError } from '../../src/core/errors.ts';
import type { PaymentRail, RailLookup, RailOrder, RailOutcome } from '../../src/ports/payment-rail.ts';
import { RailUnknownError, railKey } from '../../src/ports/payment-rail.ts';
import { AllotService } from '../../src/service/service.ts';
import { dialects } from '../helpers/dialects.ts';

type Behaviour = 'succeed' | 'fail' | 'timeout' | 'lost';

/** A rail whose answers the test scripts. `timeout`: it executes but the caller never learns it;
 * `lost`: the request never reaches it (as if the process died before sending). */
class ScriptedRail implements PaymentRail {
  readonly name = 'scripted';
  behaviour: Behaviour = 'succeed';
  down = false;
  readonly executed = new Map<string, { order: RailOrder; outcome: RailOutcome }>();
  /** execute calls per rail key, whatever became of them: what "sent at most once" counts (the
   * rail's own idempotency below would hide a second send from `executed`) */
  readonly sends = new Map<string, number>();
  pending = new Set<string>();

  /** execute calls in all */
  get calls(): number {
    let n = 0;
    for (const c of this.sends.values()) n += c;
    return n;
  }

  async execute(order: RailOrder): Promise<RailOutcome> {
    this.sends.set(order.key, (this.sends.get(order.key) ?? 0) + 1);
    if (this.down) throw new RailUnknownError('connection refused');
    const prior = this.executed.get(order.key);
    if (prior) return prior.outcome; // the rail's own idempotency
    if (this.behaviour === 'lost') throw new RailUnknownError('the request was lost');
    const outcome: RailOutcome = this.behaviour === 'fail' ? { status: 'failed', reason: 'scripted failure' } : { status: 'succeeded', railRef: `ref-${order.orderId}` };
    this.executed.set(order.key, { order, outcome });
    if (this.behaviour === 'timeout') throw new RailUnknownError('the rail did not answer in time');
    return outcome;
  }

  async lookup(key: string): Promise<RailLookup> {
    if (this.down) throw new Error('rail unreachable');
    if (this.pending.has(key)) return { status: 'pending' };
    return this.executed.get(key)?.outcome ?? { status: 'not_found' };
  }

  async close(): Promise<void> {}
}

const T0 = Date.parse('2026-12-02T10:00:00Z');
const code = (body: unknown) => (body as { error?: { code?: string } }).error?.code;

for (const d of dialects()) {
  describe(`payout contract on ${d.name}`, () => {
    let service: AllotService;
    let now = T0;
    const rail = new ScriptedRail();
    const run = randomUUID().slice(0, 8);
    let n = 0;
    const id = (p: string) => `${p}-${run}-${++n}`;

    before(async () => {
      service = await AllotService.open({
        config: { databaseUrl: d.url(), dbPoolSize: 8, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
        clock: { now: () => now },
        rail,
        // The test drives the executor and the sweep itself.
        payouts: { sweepIntervalMs: 0, railTimeoutMs: 1000, leaseMarginMs: 1000, outboxGraceMs: 500 },
      });
    });
    after(async () => {
      await service?.close();
    });

    const audit = async () => {
      const a = await service.payouts.audit();
      assert.equal(a.ok, true, JSON.stringify(a.checks.filter((c) => !c.ok)));
    };
    const balance = async (user: string, asset = 'CNY') => (await service.payouts.balances(user)).find((b) => b.asset === asset);
    const funded = async (amount: bigint) => {
      const user = id('u');
      await service.payouts.fund({ fundingId: id('f'), userId: user, asset: 'CNY', amount });
      return user;
    };
    const send = (user: string, amount: bigint, orderId = id('o')) => service.payouts.transfer({ orderId, userId: user, asset: 'CNY', amount, destination: 'addr-1' });

    test('a funding id is unique forever: identical repeat replays, a different body is refused', async () => {
      const user = id('u');
      const fid = id('f');
      assert.equal((await service.payouts.fund({ fundingId: fid, userId: user, asset: 'CNY', amount: 500n })).status, 201);
      const again = await service.payouts.fund({ fundingId: fid, userId: user, asset: 'CNY', amount: 500n });
      assert.equal(again.status, 200);
      assert.equal(again.replayed, true);
      await assert.rejects(service.payouts.fund({ fundingId: fid, userId: user, asset: 'CNY', amount: 501n }), (e: AllotError) => e.code === 'FUNDING_EXISTS' && (e.details?.differs as string[]).join() === 'amount');
      assert.equal((await balance(user))?.available, 500n);
      await audit();
    });

    test('withdrawals: once per key, never beyond the balance, refusals stored under the key', async () => {
      const user = await funded(500n);
      const w = await service.payouts.withdraw(user, 'CNY', 200n, 'k1');
      assert.equal(w.status, 201);
      const again = await service.payouts.withdraw(user, 'CNY', 200n, 'k1');
      assert.equal(again.status, 201);
      assert.equal(again.replayed, true);
      assert.deepEqual(again.body, w.body);
      assert.equal((await service.payouts.withdraw(user, 'CNY', 201n, 'k1')).status, 422);
      const short = await service.payouts.withdraw(user, 'CNY', 301n, 'k2');
      assert.equal(short.status, 409);
      assert.equal(code(short.body), 'INSUFFICIENT_FUNDS');
      assert.equal(code((await service.payouts.withdraw(user, 'NOPE', 1n, 'k3')).body), 'ASSET_NOT_FOUND');
      await assert.rejects(service.payouts.withdraw(user, 'CNY', 1n, null), (e: AllotError) => e.code === 'IDEMPOTENCY_KEY_REQUIRED');
      const b = await balance(user);
      assert.deepEqual([b?.available, b?.held, b?.paidOut], [300n, 0n, 200n]);
      await audit();
    });

    test('a withdrawal key still pays once after its idempotency record is purged', async () => {
      const user = await funded(500n);
      assert.equal((await service.payouts.withdraw(user, 'CNY', 100n, 'kp')).status, 201);
      await sql`DELETE FROM idempotency_keys WHERE idem_key = ${'kp'} AND campaign_id = ${`wd:${user}`}`.execute(service.db);
      // Spend the rest: the old withdrawal must still be found, not refused for funds.
      assert.equal((await service.payouts.withdraw(user, 'CNY', 400n, 'kq')).status, 201);
      const again = await service.payouts.withdraw(user, 'CNY', 100n, 'kp');
      assert.equal(again.status, 201);
      assert.equal(again.replayed, true);
      assert.equal((await balance(user))?.paidOut, 500n);
      assert.equal((await service.payouts.withdraw(user, 'CNY', 50n, 'kp')).status, 422);
      await audit();
    });

    test('100 concurrent withdrawals of one user over 10 keys pay once per key up to the balance', async () => {
      const user = await funded(700n);
      const outs = await Promise.all(Array.from({ length: 100 }, (_, i) => service.payouts.withdraw(user, 'CNY', 100n, `c-${i % 10}`)));
      const ok = new Set(outs.filter((o) => o.status === 201).map((o) => (o.body as { withdrawal: { id: string } }).withdrawal.id));
      assert.equal(ok.size, 7);
      assert.equal((await balance(user))?.available, 0n);
      assert.equal((await balance(user))?.paidOut, 700n);
      await audit();
    });

    test('a 64-bit amount above 2^53 is exact end to end', async () => {
      const big = 2n ** 63n - 1n;
      const user = id('u');
      await service.payouts.fund({ fundingId: id('f'), userId: user, asset: 'SAT', amount: big });
      assert.equal((await balance(user, 'SAT'))?.available, big);
      await assert.rejects(service.payouts.fund({ fundingId: id('f'), userId: user, asset: 'SAT', amount: 1n }), (e: AllotError) => e.code === 'VALIDATION_FAILED');
      assert.equal((await service.payouts.withdraw(user, 'SAT', big - 1n, 'b1')).status, 201);
      const b = await balance(user, 'SAT');
      assert.deepEqual([b?.available, b?.paidOut], [1n, big - 1n]);
      await audit();
    });

    test('a transfer: held at receipt, executed once, posted; an identical repeat answers it; a different one is refused', async () => {
      rail.behaviour = 'succeed';
      const user = await funded(500n);
      const orderId = id('o');
      const first = await send(user, 100n, orderId);
      assert.equal(first.status, 202);
      assert.equal((await balance(user))?.held, 100n);
      await service.payouts.idle();
      const t = await service.payouts.getTransfer(orderId);
      assert.equal(t.state, 'succeeded');
      assert.equal(t.railRef, `ref-${orderId}`);
      const again = await send(user, 100n, orderId);
      assert.equal(again.status, 200);
      assert.equal(again.replayed, true);
      await assert.rejects(
        service.payouts.transfer({ orderId, userId: user, asset: 'CNY', amount: 100n, destination: 'addr-2' }),
        (e: AllotError) => e.code === 'ORDER_EXISTS' && (e.details?.differs as string[]).join() === 'destination',
      );
      await service.payouts.idle();
      assert.equal(rail.sends.get(railKey(orderId)), 1, 'sent once');
      const b = await balance(user);
      assert.deepEqual([b?.available, b?.held, b?.paidOut], [400n, 0n, 100n]);
      await audit();
    });

    test('a refused transfer (insufficient funds) changes nothing and leaves its id unused', async () => {
      const user = await funded(50n);
      const orderId = id('o');
      await assert.rejects(send(user, 100n, orderId), (e: AllotError) => e.code === 'INSUFFICIENT_FUNDS');
      await assert.rejects(service.payouts.getTransfer(orderId), (e: AllotError) => e.code === 'ORDER_NOT_FOUND');
      assert.equal((await balance(user))?.available, 50n);
      await audit();
    });

    test('a definite rail failure releases the hold', async () => {
      rail.behaviour = 'fail';
      const user = await funded(500n);
      const orderId = id('o');
      await send(user, 120n, orderId);
      await service.payouts.idle();
      const t = await service.payouts.getTransfer(orderId);
      assert.equal(t.state, 'failed');
      assert.equal(t.reason, 'scripted failure');
      const b = await balance(user);
      assert.deepEqual([b?.available, b?.held, b?.paidOut], [500n, 0n, 0n]);
      await audit();
    });

    test('a rail timeout stops the order at unknown, held; an operator resolves it exactly once', async () => {
      rail.behaviour = 'timeout';
      const user = await funded(500n);
      const orderId = id('o');
      await send(user, 150n, orderId);
      await service.payouts.idle();
      assert.equal((await service.payouts.getTransfer(orderId)).state, 'unknown');
      assert.equal((await balance(user))?.held, 150n);
      // Not retried by the sweep, however much time passes.
      now += 3_600_000;
      await service.payouts.recover();
      await service.payouts.idle();
      assert.equal((await service.payouts.getTransfer(orderId)).state, 'unknown');
      assert.equal(rail.sends.get(railKey(orderId)), 1, 'never sent again');
      // Resolved concurrently, twice the same way: applied once.
      const rs = await Promise.all([service.payouts.resolve(orderId, 'succeeded', 'chain says tx 0xabc'), service.payouts.resolve(orderId, 'succeeded', 'again')]);
      assert.deepEqual(rs.map((r) => r.replayed).sort(), [false, true]);
      await assert.rejects(service.payouts.resolve(orderId, 'failed', 'no'), (e: AllotError) => e.code === 'ORDER_NOT_UNKNOWN');
      const b = await balance(user);
      assert.deepEqual([b?.available, b?.held, b?.paidOut], [350n, 0n, 150n]);
      await assert.rejects(service.payouts.resolve(id('nope'), 'failed', 'x'), (e: AllotError) => e.code === 'ORDER_NOT_FOUND');
      await audit();
    });

    test('the outbox: an order received but never started (its receiver died) is sent by the sweep after the grace', async () => {
      rail.behaviour = 'succeed';
      const user = await funded(500n);
      const orderId = id('o');
      // Receipt only, as if the process died right after answering 202.
      await (service.payouts as unknown as { store: { receiveTransfer(t: unknown): Promise<unknown> } }).store.receiveTransfer({
        orderId, userId: user, asset: 'CNY', amount: 10n, destination: 'x', state: 'received', attempts: 0, attemptId: null, leaseUntil: null, railRef: null, reason: null, resolution: null, createdAt: now, updatedAt: now,
      });
      await service.payouts.recover();
      await service.payouts.idle();
      assert.equal((await service.payouts.getTransfer(orderId)).state, 'received', 'within the grace the receiver still owns it');
      now += 1_000;
      await service.payouts.recover();
      await service.payouts.idle();
      assert.equal((await service.payouts.getTransfer(orderId)).state, 'succeeded');
      await service.payouts.recover();
      await service.payouts.idle();
      assert.equal(rail.sends.get(railKey(orderId)), 1, 'sent once: the outbox row went with the start');
      await audit();
    });

    describe('crash while executing (the order committed as executing, its executor gone)', () => {
      const store = () => (service.payouts as unknown as { store: import('../../src/ports/payout-store.ts').PayoutStore }).store;
      const crashedWhileExecuting = async (amount: bigint) => {
        const user = await funded(500n);
        const orderId = id('o');
        await store().receiveTransfer({ orderId, userId: user, asset: 'CNY', amount, destination: 'x', state: 'received', attempts: 0, attemptId: null, leaseUntil: null, railRef: null, reason: null, resolution: null, createdAt: now, updatedAt: now });
        const t = await store().startExecution(orderId, `att-dead-${orderId}`, now, now + 2_000);
        assert.ok(t);
        return { user, orderId, order: { key: railKey(orderId), orderId, userId: user, asset: 'CNY', amount, destination: 'x' } };
      };

      test('the rail executed it: recovery posts it without sending again', async () => {
        const { user, orderId, order } = await crashedWhileExecuting(40n);
        rail.behaviour = 'succeed';
        await rail.execute(order); // the dead executor's request reached the rail
        const calls = rail.calls;
        await service.payouts.recover();
        assert.equal((await service.payouts.getTransfer(orderId)).state, 'executing', 'not before the lease runs out');
        now += 2_001;
        await service.payouts.recover();
        await service.payouts.idle();
        assert.equal((await service.payouts.getTransfer(orderId)).state, 'succeeded');
        assert.equal(rail.calls, calls, 'recovery asked, it did not send');
        assert.equal(rail.sends.get(order.key), 1);
        assert.equal((await balance(user))?.paidOut, 40n);
        await audit();
      });

      test('the rail never saw it: recovery sends it once, under the same rail key', async () => {
        const { orderId } = await crashedWhileExecuting(41n);
        rail.behaviour = 'succeed';
        now += 2_001;
        await Promise.all([service.payouts.recover(), service.payouts.recover()]);
        await service.payouts.idle();
        const t = await service.payouts.getTransfer(orderId);
        assert.equal(t.state, 'succeeded');
        assert.equal(t.attempts, 2);
        assert.equal(rail.sends.get(railKey(orderId)), 1, 'sent once, by the recovery');
        await audit();
      });

      test('the rail is still deciding: the order waits, then settles when the rail knows', async () => {
        const { orderId, order } = await crashedWhileExecuting(42n);
        rail.behaviour = 'fail';
        await rail.execute(order);
        rail.pending.add(order.key);
        now += 2_001;
        await service.payouts.recover();
        assert.equal((await service.payouts.getTransfer(orderId)).state, 'executing');
        // The dead executor wakes up while the recovery's attempt owns the order: whatever it
        // learned, its writes are refused (the attempt id is compared in the WHERE).
        assert.equal(await store().markUnknown(orderId, `att-dead-${orderId}`, 'late', now), false);
        assert.equal(await store().settle(orderId, `att-dead-${orderId}`, { status: 'succeeded', railRef: 'late' }, now), false);
        assert.equal((await service.payouts.getTransfer(orderId)).state, 'executing');
        rail.pending.delete(order.key);
        now += 10_000;
        await service.payouts.recover();
        assert.equal((await service.payouts.getTransfer(orderId)).state, 'failed');
        await audit();
      });

      test('the rail cannot be asked: unknown, never sent blindly', async () => {
        const { orderId } = await crashedWhileExecuting(43n);
        rail.down = true;
        try {
          now += 2_001;
          const calls = rail.calls;
          await service.payouts.recover();
          assert.equal((await service.payouts.getTransfer(orderId)).state, 'unknown');
          assert.equal(rail.calls, calls);
          assert.equal(rail.sends.get(railKey(orderId)), undefined, 'never sent');
        } finally {
          rail.down = false;
        }
        await audit();
      });

      test('the old executor wakes after a takeover: its answer is refused, the ledger is posted once', async () => {
        const { orderId, order } = await crashedWhileExecuting(44n);
        rail.behaviour = 'succeed';
        const outcome = await rail.execute(order);
        now += 2_001;
        await service.payouts.recover();
        assert.equal((await service.payouts.getTransfer(orderId)).state, 'succeeded');
        assert.equal(await store().settle(orderId, `att-dead-${orderId}`, outcome, now), false);
        assert.equal(await store().markUnknown(orderId, `att-dead-${orderId}`, 'late', now), false);
        await audit();
      });
    });

    test('conservation under randomized operations, concurrency and crashes (fast-check)', { timeout: 240_000 }, async () => {
      const users = ['a', 'b', 'c'].map((u) => `${u}-${run}`);
      const op = fc.oneof(
        fc.record({ kind: fc.constant('fund' as const), user: fc.nat(2), amount: fc.bigInt(1n, 500n) }),
        fc.record({ kind: fc.constant('withdraw' as const), user: fc.nat(2), amount: fc.bigInt(1n, 300n), key: fc.nat(4) }),
        fc.record({ kind: fc.constant('transfer' as const), user: fc.nat(2), amount: fc.bigInt(1n, 300n), order: fc.nat(6), rail: fc.constantFrom<Behaviour>('succeed', 'fail', 'timeout', 'lost') }),
        fc.record({ kind: fc.constant('resolve' as const), order: fc.nat(6), outcome: fc.constantFrom('succeeded' as const, 'failed' as const) }),
        fc.record({ kind: fc.constant('crash' as const), order: fc.nat(6) }),
        fc.record({ kind: fc.constant('recover' as const) }),
      );
      let prop = 0;
      const runs = d.backend === 'pglite' ? 12 : 8;
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(op, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }), async (steps) => {
          const p = `${run}-p${++prop}`;
          const orderId = (i: number) => `fc-${p}-${i}`;
          for (const batch of steps) {
            // Each batch's operations run concurrently.
            await Promise.all(
              batch.map(async (o) => {
                try {
                  if (o.kind === 'fund') await service.payouts.fund({ fundingId: `fcf-${p}-${++n}`, userId: users[o.user]!, asset: 'FC', amount: o.amount });
                  if (o.kind === 'withdraw') await service.payouts.withdraw(users[o.user]!, 'FC', o.amount, `fck-${p}-${o.key}`);
                  if (o.kind === 'transfer') {
                    rail.behaviour = o.rail;
                    await service.payouts.transfer({ orderId: orderId(o.order), userId: users[o.user]!, asset: 'FC', amount: o.amount, destination: 'd' });
                  }
                  if (o.kind === 'resolve') await service.payouts.resolve(orderId(o.order), o.outcome, 'fc');
                  if (o.kind === 'crash') {
                    // The executor dies after committing `executing` (the order stays there).
                    const s = (service.payouts as unknown as { store: import('../../src/ports/payout-store.ts').PayoutStore }).store;
                    await s.startExecution(orderId(o.order), `att-fc-dead-${++n}`, now, now + 2_000);
                  }
                  if (o.kind === 'recover') {
                    now += 2_500;
                    await service.payouts.recover();
                  }
                } catch (err) {
                  const known = ['INSUFFICIENT_FUNDS', 'ASSET_NOT_FOUND', 'ORDER_EXISTS', 'ORDER_NOT_FOUND', 'ORDER_NOT_UNKNOWN', 'IDEMPOTENCY_IN_PROGRESS', 'VALIDATION_FAILED'];
                  if (!(err instanceof AllotError && known.includes(err.code))) throw err;
                }
              }),
            );
            await service.payouts.idle();
            await audit();
          }
          // Every order ends decided or waiting, never sent twice to the rail.
          for (const [key, sends] of rail.sends) if (key.includes(`fc-${p}-`)) assert.equal(sends, 1, `${key} sent ${sends} times`);
        }),
        { numRuns: runs },
      );
    });
  });
}
