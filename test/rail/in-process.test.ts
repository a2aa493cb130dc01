// The in-process simulated rail: the PaymentRail contract without HTTP, a hung answer turned into
// RailUnknownError by the timeout while the outcome still happened, and the caller's signal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RailUnknownError, railKey, type RailOrder } from '../../src/ports/payment-rail.ts';
import { InProcessSimRail } from '../../src/rail/in-process.ts';

const order = (id: string, over: Partial<RailOrder> = {}): RailOrder => ({
  key: railKey(id),
  orderId: id,
  userId: 'usr_1',
  asset: 'USD',
  amount: 9223372036854775807n,
  destination: 'acct_1',
  ...over,
});

test('execute, repeat and lookup', async () => {
  const rail = new InProcessSimRail();
  assert.equal(rail.name, 'simulated (in-process)');
  assert.deepEqual(await rail.lookup(railKey('ord_1')), { status: 'not_found' });
  const outcome = await rail.execute(order('ord_1'));
  assert.equal(outcome.status, 'succeeded');
  assert.deepEqual(await rail.execute(order('ord_1')), outcome);
  assert.deepEqual(await rail.lookup(railKey('ord_1')), outcome);
  await assert.rejects(rail.execute(order('ord_1', { amount: 1n })), (err: unknown) => !(err instanceof RailUnknownError) && /already used/.test((err as Error).message));
  assert.equal(rail.core.stats().executed, 1);
  await rail.close();
});

test('a hung answer times out as RailUnknownError; the order was still paid once', async () => {
  const rail = new InProcessSimRail({ latencyMs: 1, timeoutRate: 1, hangMs: 60_000, timeoutMs: 150 });
  const started = performance.now();
  await assert.rejects(rail.execute(order('ord_2')), (err: unknown) => err instanceof RailUnknownError && /within 150 ms/.test(err.message));
  assert.ok(performance.now() - started < 1000);
  assert.equal((await rail.lookup(railKey('ord_2'))).status, 'succeeded');
  assert.equal(rail.core.get(railKey('ord_2'))!.executions, 1);
  await rail.close();
});

test("the caller's signal: already aborted sends nothing; aborted while waiting leaves the order going", async () => {
  const rail = new InProcessSimRail({ latencyMs: 200 });
  await assert.rejects(rail.execute(order('ord_3'), AbortSignal.abort()), RailUnknownError);
  assert.deepEqual(await rail.lookup(railKey('ord_3')), { status: 'not_found' });
  const ac = new AbortController();
  const running = rail.execute(order('ord_4'), ac.signal);
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(running, (err: unknown) => err instanceof RailUnknownError && /aborted/.test(err.message));
  assert.deepEqual(await rail.lookup(railKey('ord_4')), { status: 'pending' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal((await rail.lookup(railKey('ord_4'))).status, 'succeeded');
  await rail.close();
});

test('close() with an order pending: RailUnknownError, and the order was never executed', async () => {
  const rail = new InProcessSimRail({ latencyMs: 10_000 });
  const running = rail.execute(order('ord_5'));
  await rail.close();
  await assert.rejects(running, RailUnknownError);
  assert.equal(rail.core.stats().executed, 0);
});

test('stateFile: a new in-process rail answers what the last one did', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'allot-rail-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const stateFile = path.join(dir, 'rail.jsonl');
  const one = new InProcessSimRail({ stateFile });
  const outcome = await one.execute(order('ord_6'));
  await one.close();
  const two = new InProcessSimRail({ stateFile });
  assert.deepEqual(await two.lookup(railKey('ord_6')), outcome);
  assert.deepEqual(await two.execute(order('ord_6')), outcome);
  assert.equal(two.core.stats().executed, 1);
  await two.close();
});
