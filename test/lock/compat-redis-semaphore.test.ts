// redis-semaphore's own Mutex tests, run against allot's compatibility layer (@allot/lock/compat).
//
// Ported from swarthy/redis-semaphore v5.7.0, test/src/RedisMutex.test.ts (commit 63c2d013),
// MIT License, Copyright (c) 2018 Alexander Mochalin. The test bodies, their order, names, option
// values and delays are the original's; only the harness differs:
//   - node:test instead of mocha; each chai `expect` is the node:assert equivalent, one for one:
//     .to.be.eql -> deepStrictEqual, .to.be.true/.false -> equal(x, true/false), .to.be.ok -> ok,
//     .to.match -> match, .to.throw(msg) / .to.be.rejectedWith(msg) -> throws / rejects with a
//     message that includes msg (chai's rule), spy .to.be.called / .to.not.called -> ok(spy.called) / ok(!spy.called);
//   - a five-line spy instead of sinon;
//   - a private redis-server (flushed before each test like the original's) instead of docker
//     compose, stopped and started for the "[Node shutdown]" case;
//   - `client` is the original's ioredis client (same options) seen through a proxy that maps the
//     key redis-semaphore uses, "mutex:<key>", to the Redis key where allot keeps lock <key>: the
//     tests read, overwrite and delete the lock's key exactly as before.
// Not ported: "ioredis-mock support" (ioredis-mock is not a dependency of allot; its Lua emulation
// is not something allot's scripts are tested against).
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startRedis, type TestServer } from '../helpers/servers.ts';
import { MemoryFenceAnchor, RedisLockBackend, fromIoredis } from '../../packages/lock/src/index.ts';
import { LostLockError, Mutex, type TimeoutOptions } from '../../packages/lock/src/compat.ts';

// --- harness ---------------------------------------------------------------------------------

let server: TestServer;
let raw: Redis;
let client: Redis;

function mapKeys(r: Redis): Redis {
  const layout = new RedisLockBackend({ client: fromIoredis(r), fenceAnchor: new MemoryFenceAnchor() });
  const k = (key: string) => (key.startsWith('mutex:') ? layout.keys(key.slice('mutex:'.length)).lock : key);
  const overrides: Record<string, unknown> = {
    get: (key: string) => r.get(k(key)),
    set: (key: string, ...rest: (string | number)[]) => (r.set as (...a: unknown[]) => Promise<unknown>)(k(key), ...rest),
    del: (key: string) => r.del(k(key)),
  };
  return new Proxy(r, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in overrides) return overrides[prop];
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const downRedisServer = (_n: number) => server.stop();
const upRedisServer = (_n: number) => server.start();

interface Spy {
  (this: unknown, ...args: unknown[]): void;
  called: boolean;
  firstCall: { firstArg: unknown };
  resetHistory(): void;
}
function spy(fn?: (this: never, ...args: never[]) => void): Spy {
  const calls: unknown[][] = [];
  const s = function (this: unknown, ...args: unknown[]) {
    calls.push(args);
    (fn as ((this: unknown, ...a: unknown[]) => void) | undefined)?.apply(this, args);
  } as Spy;
  Object.defineProperties(s, {
    called: { get: () => calls.length > 0 },
    firstCall: { get: () => ({ firstArg: calls[0]?.[0] }) },
  });
  s.resetHistory = () => void (calls.length = 0);
  return s;
}

// mocha + redis-semaphore's test/unhandledRejection.ts: while a "lost lock" case runs, unhandled
// rejections go to the spy instead of failing the run.
const unhandledRejectionSpy = spy();
let saved: NodeJS.UnhandledRejectionListener[] = [];
function catchUnhandledRejection() {
  unhandledRejectionSpy.resetHistory();
  saved = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', unhandledRejectionSpy);
}
function throwUnhandledRejection() {
  process.removeListener('unhandledRejection', unhandledRejectionSpy);
  for (const l of saved) process.on('unhandledRejection', l);
  saved = [];
}

const hasMessage = (msg: string) => (e: unknown) => e instanceof Error && e.message.includes(msg);

// --- redis-semaphore's test/src/RedisMutex.test.ts ------------------------------------------

const timeoutOptions: TimeoutOptions = {
  lockTimeout: 300,
  acquireTimeout: 100,
  refreshInterval: 80,
  retryInterval: 10,
};

describe('Mutex', () => {
  before(async () => {
    server = await startRedis();
    raw = new Redis(server.url, {
      connectionName: 'client1',
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy() {
        return 100;
      },
    });
    raw.on('error', () => undefined);
    await raw.connect();
    client = mapKeys(raw);
  });
  beforeEach(async () => {
    if (raw.status !== 'ready') await once(raw, 'ready');
    await raw.flushdb();
  });
  after(async () => {
    await raw.quit();
    await server.destroy();
  });

  it('should fail on invalid arguments', () => {
    assert.throws(() => new Mutex(null as unknown as Redis, 'key'), hasMessage('"client" is required'));
    assert.throws(() => new Mutex(client, ''), hasMessage('"key" is required'));
    assert.throws(() => new Mutex(client, 1 as unknown as string), hasMessage('"key" must be a string'));
    assert.throws(() => new Mutex(client, 'key', { identifier: '' }), hasMessage('identifier must be not empty random string'));
    assert.throws(() => new Mutex(client, 'key', { acquiredExternally: true }), hasMessage('acquiredExternally=true meanless without custom identifier'));
    assert.throws(
      () =>
        new Mutex(client, 'key', {
          externallyAcquiredIdentifier: '123',
          identifier: '123',
        }),
      hasMessage('Invalid usage. Use custom identifier and acquiredExternally: true'),
    );
    assert.throws(
      () =>
        new Mutex(client, 'key', {
          externallyAcquiredIdentifier: '123',
          acquiredExternally: true,
          identifier: '123',
        }),
      hasMessage('Invalid usage. Use custom identifier and acquiredExternally: true'),
    );
  });
  it('should set default options', () => {
    assert.ok(new Mutex(client, 'key', {}));
    assert.ok(new Mutex(client, 'key'));
  });
  it('should set random UUID as identifier', () => {
    assert.match(new Mutex(client, 'key').identifier, /^[0-9a-fA-F]{8}\b-[0-9a-fA-F]{4}\b-[0-9a-fA-F]{4}\b-[0-9a-fA-F]{4}\b-[0-9a-fA-F]{12}$/);
  });
  it('should add identifier suffix', () => {
    assert.match(new Mutex(client, 'key', { identifierSuffix: 'abc' }).identifier, /^[0-9a-fA-F]{8}\b-[0-9a-fA-F]{4}\b-[0-9a-fA-F]{4}\b-[0-9a-fA-F]{4}\b-[0-9a-fA-F]{12}-abc$/);
  });
  it('should use custom identifier if provided', () => {
    assert.deepStrictEqual(new Mutex(client, 'key', { identifier: 'abc' }).identifier, 'abc');
  });
  it('should acquire and release lock', async () => {
    const mutex = new Mutex(client, 'key');
    assert.equal(mutex.isAcquired, false);
    await mutex.acquire();
    assert.equal(mutex.isAcquired, true);
    assert.deepStrictEqual(await client.get('mutex:key'), mutex.identifier);
    await mutex.release();
    assert.equal(mutex.isAcquired, false);
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  it('should reject after timeout', async () => {
    const mutex1 = new Mutex(client, 'key', timeoutOptions);
    const mutex2 = new Mutex(client, 'key', timeoutOptions);
    await mutex1.acquire();
    await assert.rejects(mutex2.acquire(), hasMessage('Acquire mutex mutex:key timeout'));
    await mutex1.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  it('should abort when the given signal is aborted', async () => {
    const mutex1 = new Mutex(client, 'key', timeoutOptions);
    const mutex2 = new Mutex(client, 'key', timeoutOptions);
    await mutex1.acquire();
    await assert.rejects(mutex2.acquire(AbortSignal.timeout(10)), hasMessage('The operation was aborted due to timeout'));
    await mutex1.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  it('should return false for tryAcquire after timeout', async () => {
    const mutex1 = new Mutex(client, 'key', timeoutOptions);
    const mutex2 = new Mutex(client, 'key', timeoutOptions);
    await mutex1.acquire();
    const result = await mutex2.tryAcquire();
    assert.equal(result, false);
    await mutex1.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  it('should return true for successful tryAcquire', async () => {
    const mutex = new Mutex(client, 'key', timeoutOptions);
    const result = await mutex.tryAcquire();
    assert.equal(result, true);
    await mutex.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  it('should refresh lock every refreshInterval ms until release', async () => {
    const mutex = new Mutex(client, 'key', timeoutOptions);
    await mutex.acquire();
    await delay(400);
    assert.deepStrictEqual(await client.get('mutex:key'), mutex.identifier);
    await mutex.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  it('should stop refreshing lock every refreshInterval ms if stopped', async () => {
    const mutex = new Mutex(client, 'key', timeoutOptions);
    await mutex.acquire();
    mutex.stopRefresh();
    await delay(400);
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  it('should not call _refresh if already refreshing', async () => {
    const mutex = new Mutex(client, 'key', timeoutOptions);
    let callCount = 0;
    Object.assign(mutex, {
      _refresh: () =>
        delay(100).then(() => {
          callCount++;
          return true;
        }),
    });
    await mutex.acquire();
    await delay(400);
    assert.deepStrictEqual(callCount, 2); // not floor(400/80) = 9
  });

  it('should support externally acquired mutex (deprecated interface)', async () => {
    const externalMutex = new Mutex(client, 'key', {
      ...timeoutOptions,
      refreshInterval: 0,
    });
    const localMutex = new Mutex(client, 'key', {
      ...timeoutOptions,
      externallyAcquiredIdentifier: externalMutex.identifier,
    });
    await externalMutex.acquire();
    await localMutex.acquire();
    await delay(400);
    assert.deepStrictEqual(await client.get('mutex:key'), localMutex.identifier);
    await localMutex.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  it('should support externally acquired mutex', async () => {
    const externalMutex = new Mutex(client, 'key', {
      ...timeoutOptions,
      refreshInterval: 0,
    });
    const localMutex = new Mutex(client, 'key', {
      ...timeoutOptions,
      identifier: externalMutex.identifier,
      acquiredExternally: true,
    });
    await externalMutex.acquire();
    await localMutex.acquire();
    await delay(400);
    assert.deepStrictEqual(await client.get('mutex:key'), localMutex.identifier);
    await localMutex.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  describe('lost lock case', () => {
    beforeEach(() => {
      catchUnhandledRejection();
    });
    afterEach(() => {
      throwUnhandledRejection();
    });
    it('should throw unhandled error if lock was lost between refreshes (another instance acquired)', async () => {
      const mutex = new Mutex(client, 'key', timeoutOptions);
      await mutex.acquire();
      assert.equal(mutex.isAcquired, true);
      await client.set('mutex:key', '222'); // another instance
      await delay(200);
      assert.equal(mutex.isAcquired, false);
      assert.ok(unhandledRejectionSpy.called);
      assert.equal(unhandledRejectionSpy.firstCall.firstArg instanceof LostLockError, true);
    });
    it('should throw unhandled error if lock was lost between refreshes (lock expired)', async () => {
      const mutex = new Mutex(client, 'key', timeoutOptions);
      await mutex.acquire();
      assert.equal(mutex.isAcquired, true);
      await client.del('mutex:key'); // expired
      await delay(200);
      assert.equal(mutex.isAcquired, false);
      assert.ok(unhandledRejectionSpy.called);
      assert.equal(unhandledRejectionSpy.firstCall.firstArg instanceof LostLockError, true);
    });
    it('should call onLockLost callback if provided (another instance acquired)', async () => {
      const onLockLostCallback = spy(function (this: Mutex) {
        assert.equal(this.isAcquired, false);
      });
      const mutex = new Mutex(client, 'key', {
        ...timeoutOptions,
        onLockLost: onLockLostCallback,
      });
      await mutex.acquire();
      assert.equal(mutex.isAcquired, true);
      await client.set('mutex:key', '222'); // another instance
      await delay(200);
      assert.equal(mutex.isAcquired, false);
      assert.ok(!unhandledRejectionSpy.called);
      assert.ok(onLockLostCallback.called);
      assert.equal(onLockLostCallback.firstCall.firstArg instanceof LostLockError, true);
    });
    it('should call onLockLost callback if provided (lock expired)', async () => {
      const onLockLostCallback = spy(function (this: Mutex) {
        assert.equal(this.isAcquired, false);
      });
      const mutex = new Mutex(client, 'key', {
        ...timeoutOptions,
        onLockLost: onLockLostCallback,
      });
      await mutex.acquire();
      assert.equal(mutex.isAcquired, true);
      await client.del('mutex:key'); // expired
      await delay(200);
      assert.equal(mutex.isAcquired, false);
      assert.ok(!unhandledRejectionSpy.called);
      assert.ok(onLockLostCallback.called);
      assert.equal(onLockLostCallback.firstCall.firstArg instanceof LostLockError, true);
    });
  });
  it('should be reusable', { timeout: 10_000 }, async () => {
    const mutex = new Mutex(client, 'key', timeoutOptions);

    /* Lifecycle 1 */
    await mutex.acquire();
    await delay(300);
    assert.deepStrictEqual(await client.get('mutex:key'), mutex.identifier);
    await mutex.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
    await delay(300);
    assert.deepStrictEqual(await client.get('mutex:key'), null);

    await delay(300);

    /* Lifecycle 2 */
    await mutex.acquire();
    await delay(300);
    assert.deepStrictEqual(await client.get('mutex:key'), mutex.identifier);
    await mutex.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
    await delay(300);
    assert.deepStrictEqual(await client.get('mutex:key'), null);

    await delay(300);

    /* Lifecycle 3 */
    await mutex.acquire();
    await delay(300);
    assert.deepStrictEqual(await client.get('mutex:key'), mutex.identifier);
    await mutex.release();
    assert.deepStrictEqual(await client.get('mutex:key'), null);
    await delay(300);
    assert.deepStrictEqual(await client.get('mutex:key'), null);
  });
  describe('[Node shutdown]', () => {
    beforeEach(() => {
      catchUnhandledRejection();
    });
    afterEach(async () => {
      throwUnhandledRejection();
      await upRedisServer(1);
    });
    it('should lost lock when node become alive', { timeout: 60_000 }, async () => {
      const onLockLostCallback = spy(function (this: Mutex) {
        assert.equal(this.isAcquired, false);
      });
      const mutex1 = new Mutex(client, 'key', {
        ...timeoutOptions,
        onLockLost: onLockLostCallback,
      });
      await mutex1.acquire();
      await downRedisServer(1);

      await delay(1000);
      // lock expired now

      await upRedisServer(1);
      // mutex was expired, key was deleted in redis
      // give refresh mechanism time to detect lock lost
      // (includes client reconnection time)
      await delay(1000);

      assert.deepStrictEqual(await client.get('mutex:key'), null);
      assert.ok(onLockLostCallback.called);
      assert.equal(onLockLostCallback.firstCall.firstArg instanceof LostLockError, true);

      // lock was not reacquired by mutex1, so mutex2 can acquire the lock

      const mutex2 = new Mutex(client, 'key', timeoutOptions);
      await mutex2.acquire();
      assert.deepStrictEqual(await client.get('mutex:key'), mutex2.identifier);

      await Promise.all([mutex1.release(), mutex2.release()]);
    });
  });
  describe('ioredis-mock support', () => {
    it.skip('should acquire and release lock (not ported: ioredis-mock is not a dependency of allot)');
  });
});
