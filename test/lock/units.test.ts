// Unit tests of the lock library's small parts: defaults, errors, the wake latch, polling fallback, metrics.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { Registry } from 'prom-client';
import {
  BackendLockProvider,
  DEFAULT_LOCK_OPTIONS,
  LockAbortedError,
  LockBackendError,
  LockErrorCode,
  LockLostError,
  LockTimeoutError,
  LockValidityError,
  MemoryLockBackend,
  NotOwnerError,
  ScriptCode,
  errorForCode,
  createMemoryLockProvider,
  MemoryFenceAnchor,
  StaleFenceError,
} from '../../packages/lock/src/index.ts';
import { registerLockMetrics } from '../../packages/lock/src/prometheus.ts';
import { WakeLatch, jitteredBackoffMs } from '../../packages/lock/src/wait.ts';

describe('lock units', () => {
  it('keeps defaults in one frozen object with units in names', async () => {
    assert.ok(Object.isFrozen(DEFAULT_LOCK_OPTIONS));
    assert.equal(DEFAULT_LOCK_OPTIONS.ttlMs, 30_000);
    await assert.rejects(createMemoryLockProvider().acquire('k', { ttlMs: 0 }), RangeError);
  });

  it('gives every error a stable code and keeps causes', () => {
    const cause = new Error('ECONNRESET');
    const errors = [
      new LockTimeoutError('k', 10, 2),
      new LockLostError('k', 'expired'),
      new NotOwnerError('k', 'me'),
      new LockBackendError('k', 'acquire', cause),
      new LockAbortedError('k', 'stop'),
      new LockValidityError('k', 120, 100, 3),
      new StaleFenceError('r', 5n),
    ];
    assert.deepEqual(errors.map((e) => e.code), ['LOCK_TIMEOUT', 'LOCK_LOST', 'LOCK_NOT_OWNER', 'LOCK_BACKEND', 'LOCK_ABORTED', 'LOCK_VALIDITY', 'LOCK_STALE_FENCE']);
    assert.equal(new Set(Object.values(LockErrorCode)).size, Object.values(LockErrorCode).length);
    assert.equal(errors[3]!.cause, cause);
    assert.match(errors[3]!.message, /ECONNRESET/);
    assert.equal(errors[4]!.name, 'AbortError');
    assert.ok(errorForCode(ScriptCode.notOwner, 'k', 'o', 'release') instanceof NotOwnerError);
    assert.equal(errorForCode(ScriptCode.fenceExhausted, 'k', 'o', 'acquire').code, 'LOCK_FENCE_EXHAUSTED');
  });

  it('counts a wake-up that lands between a failed attempt and the wait', async () => {
    const latch = new WakeLatch();
    latch.arm();
    latch.signal(); // arrives "during the attempt"
    const t0 = performance.now();
    assert.equal(await latch.wait(1_000), true);
    assert.ok(performance.now() - t0 < 50);
    latch.arm();
    assert.equal(await latch.wait(20), false, 'a consumed wake-up is not replayed');
    latch.arm();
    setTimeout(() => latch.limit(10), 5);
    const t1 = performance.now();
    assert.equal(await latch.wait(5_000), false);
    assert.ok(performance.now() - t1 < 500, 'limit() shortens a running wait');
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('x')), 5);
    await assert.rejects(latch.wait(5_000, ac.signal), /x/);
  });

  it('bounds jittered backoff', () => {
    for (let i = 0; i < 30; i++) {
      const d = jitteredBackoffMs(i, 5, 250);
      assert.ok(d >= 1 && d <= 250);
    }
    assert.equal(jitteredBackoffMs(3, 5, 250, () => 0.5), 20);
  });

  it('falls back to jittered polling when wake-ups are unavailable', async () => {
    const backend = new MemoryLockBackend();
    backend.subscribe = () => Promise.reject(new Error('pub/sub unavailable'));
    const events: string[] = [];
    const p = new BackendLockProvider(backend, { onEvent: (e) => events.push(e.type) });
    const a = await p.acquire('k', { ttlMs: 10_000 });
    const waiting = p.acquire('k', { ttlMs: 10_000, timeoutMs: 2_000 });
    await delay(30);
    const t0 = performance.now();
    await a.release();
    const b = await waiting;
    assert.ok(performance.now() - t0 < 400);
    assert.ok(events.includes('waitFallback'));
    await b.release();
  });

  it('bounds an attempt on a backend that stops answering, and releases a late success', async () => {
    const backend = new MemoryLockBackend();
    const realAttempt = backend.attempt.bind(backend);
    let release: (() => void) | undefined;
    backend.attempt = (req) =>
      new Promise((resolve) => {
        release = () => void realAttempt(req).then(resolve);
      });
    const p = new BackendLockProvider(backend);
    const t0 = performance.now();
    await assert.rejects(p.acquire('hung', { ttlMs: 10_000, timeoutMs: 1_200 }), (e: unknown) => e instanceof LockBackendError && /no reply within/.test(e.message));
    const took = performance.now() - t0;
    assert.ok(took >= 1_150 && took < 1_600, `gave up after ${took.toFixed(0)} ms`);
    release?.(); // the reply arrives late and takes the lock...
    await delay(20);
    backend.attempt = realAttempt;
    const l = await p.tryAcquire('hung');
    assert.ok(l, '...and the provider released it in the background');
    await l.release();
  });

  it('binds metrics to a prom-client Registry', async () => {
    const registry = new Registry();
    const metrics = registerLockMetrics(registry);
    const p = createMemoryLockProvider({ metrics });
    const a = await p.acquire('k', { ttlMs: 200 });
    const waiting = p.acquire('k', { ttlMs: 10_000 });
    await delay(10);
    await a.release();
    await (await waiting).release();
    await assert.rejects(p.acquire('held', { ttlMs: 10_000 }).then(() => p.acquire('held', { timeoutMs: 10 })), LockTimeoutError);
    metrics.fenceRejected?.({ resource: 'r' });
    const text = await registry.metrics();
    assert.match(text, /allot_lock_acquire_seconds_count\{backend="memory",fair="false"\} 3/);
    assert.match(text, /allot_lock_handover_seconds_count\{backend="memory"\} 1/);
    assert.match(text, /allot_lock_timeouts_total\{backend="memory"\} 1/);
    assert.match(text, /allot_lock_fence_rejections_total 1/);
  });

  it('MemoryFenceAnchor issues strictly increasing epochs', async () => {
    const a = new MemoryFenceAnchor();
    const e1 = await a.nextEpoch();
    assert.ok((await a.nextEpoch()) > e1);
    await assert.rejects(a.nextEpoch(AbortSignal.abort()));
  });
});
