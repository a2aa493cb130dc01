// The simulated rail as a separate process: spawnSimRail waits for its ready line, HttpRail talks
// to it, stop() ends it; with a state file, outcomes survive a SIGKILL and a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { railKey, type RailOrder } from '../../src/ports/payment-rail.ts';
import { HttpRail } from '../../src/rail/http-rail.ts';
import { spawnSimRail } from '../../src/rail/spawn.ts';

const order = (id: string): RailOrder => ({ key: railKey(id), orderId: id, userId: 'usr_1', asset: 'USD', amount: 9223372036854775807n, destination: 'acct_1' });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('spawns the rail process, round trip over HTTP, stop() ends it cleanly', async (t) => {
  const rail = await spawnSimRail({ latencyMs: 5 });
  t.after(() => rail.stop());
  assert.match(rail.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const client = new HttpRail({ url: rail.url });
  const outcome = await client.execute(order('ord_1'));
  assert.equal(outcome.status, 'succeeded');
  assert.deepEqual(await client.lookup(railKey('ord_1')), outcome);
  assert.ok(alive(rail.pid));
  await rail.stop();
  assert.equal(rail.child.exitCode, 0, 'SIGTERM is a clean exit');
  assert.ok(!alive(rail.pid), 'the process is gone');
  await rail.stop(); // idempotent
});

test('with a state file, an outcome survives kill -9 and a restart', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'allot-rail-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const stateFile = path.join(dir, 'rail.jsonl');
  const first = await spawnSimRail({ stateFile });
  t.after(() => first.stop());
  const outcome = await new HttpRail({ url: first.url }).execute(order('ord_2'));
  first.child.kill('SIGKILL');
  await first.stop();
  assert.equal(first.child.signalCode, 'SIGKILL');

  const second = await spawnSimRail({ stateFile });
  t.after(() => second.stop());
  const client = new HttpRail({ url: second.url });
  assert.deepEqual(await client.lookup(railKey('ord_2')), outcome);
  assert.deepEqual(await client.execute(order('ord_2')), outcome);
  const listing = (await (await fetch(`${second.url}/v1/sim/executions`)).json()) as { stats: { executed: number } };
  assert.equal(listing.stats.executed, 1);
});

test('a rail that cannot start fails with its stderr', async () => {
  await assert.rejects(spawnSimRail({ failureRate: 7 }), /exited \(code 2\) before it was ready[\s\S]*--failure-rate must be a number/);
});
