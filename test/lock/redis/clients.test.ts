// The two RedisClient adapters: commands, scripts and a duplicated subscriber connection.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
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
});
