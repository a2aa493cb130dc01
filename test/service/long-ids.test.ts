// The longest ids the API allows (128 characters each) through the `redis-lock` strategy: the
// user lock's resource, `claim:user:<campaign>:<user>`, is 268 characters long, more than the
// lock_fences column holds (255). It is stored under its bounded form (@allot/lock
// boundedResource): the claims succeed on every dialect, and two users whose resources share a
// long prefix keep separate fences.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { AllotService } from '../../src/service/service.ts';
import { userLockKey } from '../../src/strategies/redis-lock.ts';
import { boundedResource } from '../../packages/lock/src/index.ts';
import { dialects } from '../helpers/dialects.ts';

const MAX_ID = 128; // src/core/campaign.ts ID_PATTERN, src/http/schemas.ts Id
const pad = (head: string, fill: string) => (head + fill.repeat(MAX_ID)).slice(0, MAX_ID);

// Redis locks when `npm test` provides Redis (both paths meet the same raiseFence; in-process
// locks keep names as they are), in-process locks otherwise.
const cases = dialects().map((d) => ({ d, locks: process.env.REDIS_URL ? ('redis' as const) : ('in-process' as const) }));

for (const { d, locks } of cases) {
  describe(`128-character ids with redis-lock on ${d.name}, ${locks} locks`, () => {
    const lockPrefix = `t-long-${randomUUID().slice(0, 8)}:`;
    let service: AllotService;
    let redis: Redis | undefined;
    before(async () => {
      service = await AllotService.open({
        config: {
          databaseUrl: d.url(),
          dbPoolSize: 4,
          dbTimeoutMs: 5000,
          defaultStrategy: 'conditional',
          allowUnsafeStrategies: false,
          lockPrefix,
          ...(locks === 'redis' ? { locksUrl: process.env.REDIS_URL } : {}),
        },
      });
      assert.equal(service.locks.kind, locks);
      if (locks === 'redis') redis = new Redis(process.env.REDIS_URL!);
    });
    after(async () => {
      redis?.disconnect();
      await service?.close();
    });

    test('claims succeed, and users sharing a long prefix keep separate fences', async () => {
      const campaign = pad(`long-${randomUUID().slice(0, 8)}-`, 'c');
      // Identical but for the last character: their resources share 267 of 268 characters.
      const [u1, u2] = [pad('', 'u').slice(0, -1) + '1', pad('', 'u').slice(0, -1) + '2'];
      assert.equal(userLockKey(campaign, u1).length, 268);
      await service.createCampaign({ id: campaign, kind: 'coupon', name: 'long ids', stock: 10, perUserLimit: 2, strategy: 'redis-lock' });
      for (const user of [u1, u2, u1, u2]) {
        const out = await service.claim(campaign, user, null);
        assert.equal(out.status, 201, `claim for a 128-character user id: ${JSON.stringify(out.body)}`);
      }
      assert.equal((await service.claim(campaign, u1, null)).status, 409, 'the per-user limit still holds');
      assert.equal((await service.audit(campaign)).ok, true);

      // One lock_fences row per full resource, under its bounded form.
      const rows = (await sql<{ resource: string }>`SELECT resource FROM lock_fences WHERE resource LIKE ${`claim:user:${campaign.slice(0, 40)}%`}`.execute(service.db)).rows;
      assert.deepEqual(rows.map((r) => r.resource).sort(), [u1, u2].map((u) => boundedResource(userLockKey(campaign, u))).sort());
      assert.ok(rows.every((r) => r.resource.length <= 255));
      if (redis) {
        // Redis keys are bounded by the same rule.
        const keys = await redis.keys(`${lockPrefix}*`);
        assert.ok(keys.length > 0);
        for (const k of keys) assert.ok(k.length <= lockPrefix.length + 3 + 225, `unbounded Redis key (${k.length} chars): ${k}`);
      }
    });
  });
}
