// The lock breaker on its own (no servers): a run of backend errors opens it, an open breaker
// fails lock operations at once and cuts short the acquisitions already waiting, a failed ping
// opens it, and a half-open probe that gets an answer closes it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { LockAbortedError, LockBackendError, type AcquireOptions, type Lease, type LockProvider } from '@allot/lock';
import { breakerProvider, LockBreaker, LocksDownError } from '../../src/service/lock-breaker.ts';

/** A provider whose acquisitions wait (like a provider retrying a dead backend until its timeout) until aborted. */
function hangingProvider(): LockProvider & { started: number } {
  const p = {
    backend: 'fake',
    started: 0,
    acquire: (key: string, o?: AcquireOptions): Promise<Lease> => {
      p.started++;
      return new Promise((_, reject) => {
        const t = setTimeout(() => reject(new LockBackendError(key, 'acquire', new Error('timed out after 10 s'))), 10_000);
        o?.signal?.addEventListener('abort', () => {
          clearTimeout(t);
          reject(new LockAbortedError(key, o.signal?.reason));
        }, { once: true });
      });
    },
    tryAcquire: async () => null,
    using: async () => {
      throw new Error('not used');
    },
    adopt: async () => {
      throw new Error('not used');
    },
    close: async () => {},
  };
  return p;
}

test('backend errors open the breaker; waiting acquisitions end at once with LocksDownError; new ones are not tried', async () => {
  let up = false;
  const registry = new Registry();
  const breaker = new LockBreaker(async () => {
    if (!up) throw new Error('ECONNREFUSED');
  }, { failureThreshold: 3, probeIntervalMs: 50, pingTimeoutMs: 200 }, registry);
  const raw = hangingProvider();
  const p = breakerProvider(raw, breaker);
  try {
    const t0 = performance.now();
    const waiting = [p.acquire('a'), p.acquire('b')].map((x) => x.then(() => 'acquired', (e: unknown) => e));
    for (let i = 0; i < 3; i++) breaker.onEvent({ type: 'backendError', error: new Error('connection lost') });
    const ends = await Promise.all(waiting);
    for (const e of ends) assert.ok(e instanceof LocksDownError && e instanceof LockBackendError, String(e));
    assert.ok(performance.now() - t0 < 1000, 'cut short, not left to their 10 s timeout');
    assert.notEqual(breaker.state, 'closed');
    const before = raw.started;
    await assert.rejects(p.acquire('c'), LocksDownError);
    await assert.rejects(p.using('c', undefined, async () => 1), LocksDownError);
    assert.equal(raw.started, before, 'an open breaker does not call the backend');
    assert.match(await registry.metrics(), /allot_lock_breaker_opened_total 1/);

    // Still down: probes fail and it stays open; back up: a probe closes it.
    await sleep(150);
    assert.notEqual(breaker.state, 'closed');
    up = true;
    const deadline = Date.now() + 2000;
    while (breaker.state !== 'closed' && Date.now() < deadline) await sleep(20);
    assert.equal(breaker.state, 'closed');
    assert.match(await registry.metrics(), /allot_lock_breaker_state\{state="closed"\} 1/);
  } finally {
    await p.close();
  }
});

test('a failed or unanswered ping opens the breaker; the caller\'s own abort stays an abort', async () => {
  const breaker = new LockBreaker(() => new Promise<void>(() => undefined), { pingTimeoutMs: 50, probeIntervalMs: 10_000 });
  const p = breakerProvider(hangingProvider(), breaker);
  try {
    const ac = new AbortController();
    const mine = p.acquire('x', { signal: ac.signal });
    ac.abort(new Error('client went away'));
    await assert.rejects(mine, (e: unknown) => e instanceof LockAbortedError);
    assert.equal(breaker.state, 'closed');
    await assert.rejects(breaker.ping(), /no answer within 50 ms/);
    assert.equal(breaker.state, 'open');
    await assert.rejects(p.acquire('y'), LocksDownError);
  } finally {
    await p.close();
  }
});

test('successes between errors keep it closed (consecutive errors only)', async () => {
  const breaker = new LockBreaker(async () => {}, { failureThreshold: 3 });
  for (let i = 0; i < 10; i++) {
    breaker.failure(new Error('blip'));
    breaker.failure(new Error('blip'));
    breaker.success();
  }
  assert.equal(breaker.state, 'closed');
  breaker.stop();
});
