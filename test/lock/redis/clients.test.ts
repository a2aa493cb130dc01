// The two RedisClient adapters: commands, scripts and a duplicated subscriber connection.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { fromIoredis, type IoredisLike } from '../../../packages/lock/src/index.ts';
import { connect, redisUrl, uniquePrefix } from '../../lock/redis-harness.ts';

describe('RedisClient adapters', () => {
  let srv: { url: string; stop(): Promise<void> };
  before(async () => {
    srv = await redisUrl();
  });
  after(async () => {
    await srv.stop();
  });

  for (const kind of ['ioredis', 'node-redis'] as const) {
    it(`${kind}: eval, command, and pub/sub through duplicate()`, async () => {
      const client = await connect(kind, srv.url);
      const sub = await client.duplicate();
      try {
        assert.equal(client.kind, kind);
        const key = `${uniquePrefix('adapter')}k`;
        assert.deepEqual(await client.eval("return {redis.call('SET', KEYS[1], ARGV[1]) and 1, ARGV[2]}", [key], ['v', 7]), [1, '7']);
        assert.equal(await client.command(['GET', key]), 'v');
        await client.command(['DEL', key]);
        const time = (await client.command(['TIME'])) as unknown[];
        assert.equal(time.length, 2);
        const got: string[] = [];
        sub.onMessage((channel, message) => got.push(`${channel}=${message}`));
        await sub.subscribe(`${key}:ch`);
        await sub.subscribe(`${key}:ch`);
        await client.command(['PUBLISH', `${key}:ch`, 'hello']);
        for (let i = 0; i < 50 && got.length === 0; i++) await delay(5);
        assert.deepEqual(got, [`${key}:ch=hello`]);
        await sub.unsubscribe(`${key}:ch`);
        await client.command(['PUBLISH', `${key}:ch`, 'again']);
        await delay(30);
        assert.equal(got.length, 1);
      } finally {
        await sub.quit();
        await client.quit();
      }
    });
  }

  it('ioredis: a subscriber that reconnects subscribes its channels again, and a connection closed meanwhile leaves no unhandled rejection', async () => {
    // ioredis' own resubscription (autoResubscribe) sends SUBSCRIBE from its ready handler and
    // drops the promise: a connection closed before the reply rejected it unhandled (seen as a
    // flake of test/lock/faults.test.ts). The adapter resubscribes itself, handling the failure.
    const rejections: unknown[] = [];
    const onRejection = (r: unknown) => rejections.push(r);
    process.on('unhandledRejection', onRejection);
    const key = `${uniquePrefix('resub')}ch`;
    const admin = new Redis(srv.url);
    const base = new Redis(srv.url);
    base.on('error', () => undefined);
    const raws: Redis[] = [];
    // the adapter over a client whose duplicates the test can reach
    const like = Object.assign(Object.create(base) as Redis, {
      duplicate: (o?: object) => {
        const d = base.duplicate(o);
        d.on('error', () => undefined);
        raws.push(d);
        return d;
      },
    });
    const client = fromIoredis(like as unknown as IoredisLike);
    try {
      // 1. reconnects and hears its channel again
      const sub = await client.duplicate();
      const got: string[] = [];
      let reconnected = 0;
      sub.onMessage((_, m) => got.push(m));
      sub.onReconnect(() => reconnected++);
      await sub.subscribe(key);
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      for (let i = 0; i < 200 && reconnected === 0; i++) await delay(10);
      assert.equal(reconnected, 1, 'the reconnection was reported');
      for (let i = 0; i < 200 && got.length === 0; i++) {
        await admin.publish(key, 'again');
        await delay(10);
      }
      assert.ok(got.includes('again'), 'subscribed again after the reconnection');
      await sub.quit();
      // 2. closed right as it reconnects: its resubscription fails, handled
      const sub2 = await client.duplicate();
      const raw2 = raws.at(-1)!;
      await sub2.subscribe(key);
      let closedOnReady = false;
      raw2.once('close', () =>
        raw2.once('ready', () => {
          // the connection drops right as it is ready (before any reply can come back)
          (raw2 as unknown as { stream: { destroy(): void } }).stream.destroy();
          raw2.disconnect();
          closedOnReady = true;
        }),
      );
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      for (let i = 0; i < 200 && !closedOnReady; i++) await delay(10);
      assert.ok(closedOnReady);
      await delay(200);
      assert.deepEqual(rejections.map(String), [], 'no unhandled rejection');
    } finally {
      process.off('unhandledRejection', onRejection);
      for (const r of raws) r.disconnect();
      base.disconnect();
      admin.disconnect();
    }
  });
});
