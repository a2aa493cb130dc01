// The scheduled purge of idempotency keys (KeyPurgeScheduler over the allot_leases row): two
// service instances on one PostgreSQL / MariaDB with a short interval delete every key past its
// retention, one instance at a time (never two purges at once: the lease), keys inside their
// retention (and a running key whose request still holds it) survive, and close() stops it.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { AllotService, type ServiceOptions } from '../../src/service/service.ts';
import { dialects } from '../helpers/dialects.ts';

const DAY = 86_400_000;
const RETENTION = 7 * DAY;
const EXPIRED = 600;
const FRESH = 40;

for (const d of dialects({ servers: true })) {
  describe(`scheduled key purge on ${d.name}`, () => {
    const scope = `purge-${randomUUID().slice(0, 8)}`;
    let setup: AllotService;
    const config: ServiceOptions['config'] = { databaseUrl: '', dbPoolSize: 4, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false };

    before(async () => {
      config.databaseUrl = d.url();
      // Migrates (allot_leases included); its own purge is off (no interval).
      setup = await AllotService.open({ config, payouts: { sweepIntervalMs: 0 } });
    });
    after(async () => {
      await setup?.close();
    });

    const count = async (where: ReturnType<typeof sql>) =>
      Number((await sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM idempotency_keys WHERE campaign_id = ${scope} AND ${where}`.execute(setup.db)).rows[0]!.n);
    const taken = async () =>
      Number((await sql<{ n: unknown }>`SELECT taken AS n FROM allot_leases WHERE name = 'idempotency-keys-purge'`.execute(setup.db)).rows[0]?.n ?? 0);

    test('two instances, interval 100 ms: every expired key deleted, one purge at a time, the rest kept, close() stops it', async () => {
      const now = Date.now();
      const row = (key: string, state: string, lockedUntil: number, createdAt: number) =>
        sql`(${scope}, ${key}, ${'f'.repeat(64)}, ${state}, 'req_test', ${lockedUntil}, ${state === 'done' ? 201 : null}, ${state === 'done' ? '{}' : null}, ${createdAt})`;
      const rows = [
        // past retention: done, and running ones whose lease ran out long ago (a crashed request)
        ...Array.from({ length: EXPIRED }, (_, i) => row(`old-${i}`, i % 5 === 0 ? 'running' : 'done', now - RETENTION - DAY, now - RETENTION - DAY - i * 1000)),
        // inside retention
        ...Array.from({ length: FRESH }, (_, i) => row(`new-${i}`, 'done', 0, now - RETENTION + DAY + i * 1000)),
        // past retention but still held by its request: not purged
        row('old-running-held', 'running', now + 3_600_000, now - RETENTION - DAY),
      ];
      await sql`INSERT INTO idempotency_keys (campaign_id, idem_key, fingerprint, state, owner, locked_until, status_code, response, created_at) VALUES ${sql.join(rows)}`.execute(setup.db);
      const takenBefore = await taken();

      // Every purge is watched from the moment its instance takes the lease until it reports
      // its end (which it does before handing the lease on).
      let active = 0;
      let maxActive = 0;
      const starts = { a: 0, b: 0 };
      const runs: Array<{ instance: string; deleted: number; lostLease: boolean }> = [];
      const errors: unknown[] = [];
      const open = (instance: 'a' | 'b') =>
        AllotService.open({
          config: { ...config, keyPurgeIntervalMs: 100, keyRetentionMs: RETENTION },
          payouts: { sweepIntervalMs: 0 },
          // Small batches with a pause between them: a purge spans many statements, so two
          // instances purging at once would overlap.
          keyPurge: {
            batchSize: 25,
            pauseMs: 2,
            firstRunMs: 50,
            onStart: () => {
              starts[instance]++;
              maxActive = Math.max(maxActive, ++active);
            },
            onRun: (r) => {
              active--;
              runs.push({ instance, deleted: r.deleted, lostLease: r.lostLease });
            },
            onError: (err) => errors.push(err),
          },
        });
      const [a, b] = await Promise.all([open('a'), open('b')]);
      let closed = false;
      try {
        const deadline = Date.now() + 30_000;
        while ((await count(sql`idem_key LIKE 'old-%' AND idem_key <> 'old-running-held'`)) > 0) {
          assert.ok(Date.now() < deadline, `expired keys left after 30 s; runs: ${JSON.stringify(runs)}; errors: ${errors.map(String).join('; ')}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        // A few more intervals: both instances keep trying, the lease passes between them.
        await new Promise((r) => setTimeout(r, 600));
        await Promise.all([a.close(), b.close()]);
        closed = true;
        const runsAtClose = runs.length;
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(runs.length, runsAtClose, 'a purge ran after close()');

        assert.deepEqual(errors.map(String), [], 'a purge failed (or ran after close(), on a closed database)');
        assert.equal(maxActive, 1, `two purges ran at once; runs: ${JSON.stringify(runs)}`);
        assert.equal(active, 0);
        assert.ok(runs.length >= 2, `runs: ${JSON.stringify(runs)}`);
        assert.ok(runs.every((r) => !r.lostLease), JSON.stringify(runs));
        assert.ok(runs.reduce((s, r) => s + r.deleted, 0) >= EXPIRED, JSON.stringify(runs));
        // Each take of the lease is a purge one of the instances ran and reported.
        assert.equal((await taken()) - takenBefore, starts.a + starts.b);
        assert.equal(starts.a + starts.b, runs.length);

        assert.equal(await count(sql`idem_key LIKE 'new-%'`), FRESH, 'keys inside their retention were purged');
        assert.equal(await count(sql`idem_key = 'old-running-held'`), 1, 'a key still held by its request was purged');
      } finally {
        if (!closed) await Promise.all([a.close(), b.close()]);
        await sql`DELETE FROM idempotency_keys WHERE campaign_id = ${scope}`.execute(setup.db);
      }
    });
  });
}
