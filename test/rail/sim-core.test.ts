// The simulated rail's core: a key executes at most once whatever the concurrency, a key reused
// for another order is refused, failures are definite, lookups follow the key's life, and the
// state file carries finished outcomes across a new instance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RailOrder } from '../../src/ports/payment-rail.ts';
import { RailKeyReusedError, SIM_FAILURE_REASON, SimRailCore, SimRailError } from '../../src/rail/sim-core.ts';

const order = (n: number | string, over: Partial<RailOrder> = {}): RailOrder => ({
  key: `allot:ord_${n}`,
  orderId: `ord_${n}`,
  userId: 'usr_1',
  asset: 'USD',
  amount: 1250n,
  destination: 'acct_1',
  ...over,
});

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'allot-rail-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('200 concurrent executes of one key pay once and all answer the same outcome', async () => {
  const core = new SimRailCore({ latencyMs: 20 });
  const o = order(1);
  const answers = await Promise.all(Array.from({ length: 200 }, () => core.execute({ ...o })));
  const refs = new Set(answers.map((a) => (a.outcome.status === 'succeeded' ? a.outcome.railRef : a.outcome.reason)));
  assert.equal(refs.size, 1, 'every repeat answers the first outcome');
  assert.equal(answers[0]!.outcome.status, 'succeeded');
  assert.equal(core.get(o.key)!.executions, 1);
  assert.equal(core.get(o.key)!.requests, 200, 'every request under the key is counted, paid or not');
  const stats = core.stats();
  assert.equal(stats.executed, 1);
  assert.equal(stats.received, 1);
  assert.equal(stats.duplicatesRefused, 199);
  // a late repeat, after the outcome: still the same, still one payment
  const late = await core.execute({ ...o });
  assert.ok(refs.has(late.outcome.status === 'succeeded' ? late.outcome.railRef : ''));
  assert.equal(core.stats().executed, 1);
  assert.equal(core.get(o.key)!.requests, 201);
  core.close();
});

test('a key reused for another order body is refused (422 KEY_REUSED) and nothing more is paid', async () => {
  const core = new SimRailCore({ latencyMs: 1 });
  await core.execute(order(2));
  for (const other of [{ amount: 1251n }, { orderId: 'ord_x' }, { userId: 'usr_2' }, { asset: 'EUR' }, { destination: 'acct_2' }]) {
    await assert.rejects(core.execute(order(2, other)), (err: unknown) => {
      assert.ok(err instanceof RailKeyReusedError);
      assert.equal(err.code, 'KEY_REUSED');
      assert.equal(err.httpStatus, 422);
      return true;
    });
  }
  // while pending too
  const first = core.execute(order(3));
  await assert.rejects(core.execute(order(3, { amount: 9n })), RailKeyReusedError);
  await first;
  assert.equal(core.stats().executed, 2);
  assert.equal(core.stats().keyReused, 6);
  assert.equal(core.get(order(2).key)!.amount, 1250n);
  core.close();
});

test('failureRate 1: a definite failure, nothing paid, and repeats keep failing the same way', async () => {
  const core = new SimRailCore({ latencyMs: 1, failureRate: 1 });
  const a = await core.execute(order(4));
  assert.deepEqual(a.outcome, { status: 'failed', reason: SIM_FAILURE_REASON });
  core.configure({ failureRate: 0 });
  const b = await core.execute(order(4));
  assert.deepEqual(b.outcome, a.outcome, 'a key is decided once');
  assert.equal(core.get(order(4).key)!.executions, 0);
  assert.deepEqual(core.lookup(order(4).key), a.outcome);
  const s = core.stats();
  assert.equal(s.failed, 1);
  assert.equal(s.executed, 0);
  core.close();
});

test('lookup: not_found, then pending while the latency runs, then succeeded', async () => {
  const core = new SimRailCore({ latencyMs: 100 });
  const o = order(5);
  assert.deepEqual(core.lookup(o.key), { status: 'not_found' });
  const running = core.execute(o);
  assert.deepEqual(core.lookup(o.key), { status: 'pending' });
  assert.equal(core.stats().pending, 1);
  const { outcome } = await running;
  assert.equal(outcome.status, 'succeeded');
  assert.deepEqual(core.lookup(o.key), outcome);
  core.close();
});

test('timeoutRate decides the order normally and only asks the answer to hang', async () => {
  const core = new SimRailCore({ latencyMs: 1, timeoutRate: 1, hangMs: 1234 });
  const a = await core.execute(order(6));
  assert.equal(a.hangMs, 1234);
  assert.equal(a.outcome.status, 'succeeded');
  assert.equal(core.get(order(6).key)!.executions, 1);
  core.close();
});

test('the injected random decides: a deterministic sequence gives deterministic outcomes', async () => {
  const seq = [0.1, 0.9, 0.4];
  let i = 0;
  const core = new SimRailCore({ latencyMs: 1, failureRate: 0.5, random: () => seq[i++ % seq.length]! });
  const outcomes = [];
  for (const n of [7, 8, 9]) outcomes.push((await core.execute(order(n))).outcome.status);
  assert.deepEqual(outcomes, ['failed', 'succeeded', 'failed']);
  core.close();
});

test('invalid orders and configs are refused with 400 codes', async () => {
  const core = new SimRailCore({ latencyMs: 1 });
  for (const bad of [{ amount: 0n }, { amount: -1n }, { amount: 2n ** 63n }, { key: '' }, { destination: '' }]) {
    await assert.rejects(core.execute(order(10, bad)), (err: unknown) => err instanceof SimRailError && err.code === 'INVALID_ORDER' && err.httpStatus === 400);
  }
  assert.throws(() => core.configure({ failureRate: 1.5 }), /failureRate/);
  assert.throws(() => new SimRailCore({ latencyMs: -1 }), /latencyMs/);
  assert.equal(core.stats().received, 0);
  core.close();
});

test('close() leaves pending keys unexecuted and rejects their waiters', async () => {
  const core = new SimRailCore({ latencyMs: 10_000 });
  const running = core.execute(order(11));
  core.close();
  await assert.rejects(running, (err: unknown) => err instanceof SimRailError && err.code === 'RAIL_CLOSED');
  assert.equal(core.stats().executed, 0);
  await assert.rejects(core.execute(order(12)), /closed/);
});

test('stateFile: finished outcomes survive a new core instance, amounts as decimal strings', async (t) => {
  const file = path.join(tempDir(t), 'sub', 'rail.jsonl');
  const big = 9223372036854775807n;
  const one = new SimRailCore({ latencyMs: 1, stateFile: file });
  const ok = await one.execute(order(20, { amount: big }));
  one.configure({ failureRate: 1 });
  const ko = await one.execute(order(21));
  one.close();

  const lines = readFileSync(file, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2);
  assert.equal(JSON.parse(lines[0]!).amount, big.toString());

  const two = new SimRailCore({ latencyMs: 1, stateFile: file });
  assert.deepEqual(two.lookup(order(20).key), ok.outcome);
  assert.deepEqual(two.lookup(order(21).key), ko.outcome);
  assert.equal(two.get(order(20).key)!.amount, big);
  // a repeat after the restart is answered, not executed again; another body is still refused
  assert.deepEqual((await two.execute(order(20, { amount: big }))).outcome, ok.outcome);
  await assert.rejects(two.execute(order(20)), RailKeyReusedError);
  assert.equal(two.stats().executed, 1);
  assert.equal(two.get(order(20).key)!.requests, 2, 'the count as of the outcome, plus the repeat (a refused body is not counted)');
  two.close();
});

test('stateFile: a line torn by a crash is cut off; a whole last line missing its newline is kept', async (t) => {
  const file = path.join(tempDir(t), 'rail.jsonl');
  const one = new SimRailCore({ latencyMs: 1, stateFile: file });
  await one.execute(order(30));
  one.close();
  appendFileSync(file, '{"key":"allot:ord_31","ord');

  const two = new SimRailCore({ latencyMs: 1, stateFile: file });
  assert.equal(two.lookup(order(30).key).status, 'succeeded');
  assert.deepEqual(two.lookup(order(31).key), { status: 'not_found' });
  await two.execute(order(32));
  two.close();

  const three = new SimRailCore({ stateFile: file });
  assert.equal(three.lookup(order(32).key).status, 'succeeded');
  assert.equal(three.stats().received, 2);
  three.close();

  // only the newline was lost: the outcome was written, so it counts
  writeFileSync(file, readFileSync(file, 'utf8').replace(/\n$/, ''));
  const four = new SimRailCore({ latencyMs: 1, stateFile: file });
  assert.equal(four.lookup(order(32).key).status, 'succeeded');
  await four.execute(order(33));
  four.close();
  const five = new SimRailCore({ stateFile: file });
  assert.deepEqual(five.executions().map((e) => e.orderId), ['ord_30', 'ord_32', 'ord_33']);
  five.close();
});
