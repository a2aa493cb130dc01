// Multi-instance race: 4 separate worker processes, 600 concurrent claims against a stock of
// 100 from 300 users, every user claiming twice (half of the repeats are retries with the same
// Idempotency-Key, half new requests). Run per server dialect and strategy.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { AllotService } from '../../src/service/service.ts';
import { dialects, STRATEGIES } from '../helpers/dialects.ts';
import { once, shuffle, startWorkers, stopWorkers } from './race-harness.ts';
import type { WorkerMessage } from './race-worker.ts';

const WORKERS = 4;
const USERS = 300;
const STOCK = 100;
const WORKER = fileURLToPath(new URL('./race-worker.ts', import.meta.url));

interface Result {
  userId: string;
  key: string | null;
  status: number;
  body: { claim?: { id: string; userId: string }; error?: { code: string } } | null;
  error?: string;
}



function claimsFor(): Array<{ userId: string; key: string | null }> {
  const claims: Array<{ userId: string; key: string | null }> = [];
  for (let u = 0; u < USERS; u++) {
    const userId = `user-${u}`;
    if (u % 2 === 0) {
      // A retry: the same request twice under one key.
      claims.push({ userId, key: `k-${u}` }, { userId, key: `k-${u}` });
    } else {
      // A double click: two distinct requests.
      claims.push({ userId, key: null }, { userId, key: `k-${u}` });
    }
  }
  return shuffle(claims);
}

async function race(children: ChildProcess[], campaignId: string): Promise<Result[]> {
  const claims = claimsFor();
  const share = (i: number) => claims.filter((_, j) => j % WORKERS === i);
  const armed = children.map((c) => once<{ type: string }>(c, 'armed'));
  children.forEach((c, i) => c.send({ type: 'job', campaignId, claims: share(i) } satisfies WorkerMessage));
  await Promise.all(armed);
  const done = children.map((c) => once<{ type: string; results?: Result[] }>(c, 'done'));
  for (const c of children) c.send({ type: 'go' } satisfies WorkerMessage);
  return (await Promise.all(done)).flatMap((m) => m.results ?? []);
}

for (const d of dialects({ servers: true })) {
  describe(`race on ${d.name}`, () => {
    let service: AllotService;
    let workers: ChildProcess[] = [];
    const lockPrefix = `race-${randomUUID().slice(0, 8)}:`;
    before(async () => {
      service = await AllotService.open({
        config: { databaseUrl: d.url(), dbPoolSize: 4, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: process.env.REDIS_URL, lockPrefix },
      });
      // The service above migrated the database; the workers open it without migrating.
      workers = await startWorkers(WORKER, WORKERS, d.url(), lockPrefix);
    });
    after(async () => {
      await stopWorkers(workers);
      await service?.close();
    });

    for (const strategy of STRATEGIES) {
      test(`${strategy}: ${WORKERS} processes, ${USERS * 2} claims, stock ${STOCK}`, async () => {
        const id = `race-${strategy}-${randomUUID().slice(0, 8)}`;
        await service.createCampaign({ id, kind: 'coupon', name: 'race', stock: STOCK, strategy });
        const results = await race(workers, id);
        assert.equal(results.length, USERS * 2);
        // Optimistic strategies may give up under contention: a 503 that issued nothing, counted.
        const optimistic = strategy.startsWith('optimistic');
        const gaveUp = (r: Result) => optimistic && r.status === 0 && /conflicted with others/.test(r.error ?? '');
        const failures = results.filter((r) => (r.status === 0 || r.status >= 500) && !gaveUp(r));
        assert.deepEqual(failures, [], 'no claim failed with an error');

        const ok = results.filter((r) => r.status === 201);
        const acked = new Set(ok.map((r) => r.body!.claim!.id));
        const expected = optimistic ? acked.size : STOCK;
        if (optimistic) assert.ok(acked.size > 0 && acked.size <= STOCK, `acknowledged ${acked.size}`);
        else assert.equal(acked.size, STOCK, 'exactly the stock was acknowledged');
        for (const r of results.filter((x) => x.status === 409)) {
          assert.ok(['SOLD_OUT', 'USER_LIMIT_REACHED'].includes(r.body!.error!.code), `unexpected refusal ${r.body!.error!.code}`);
        }

        // Retries under one key got one outcome.
        const byKey = new Map<string, Result[]>();
        for (const r of results) if (r.key) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
        for (const [key, rs] of byKey) {
          if (rs.length === 2 && !rs.some(gaveUp)) assert.deepEqual(rs[0]!.body, rs[1]!.body, `key ${key} answered two outcomes`);
        }

        // The database holds exactly the acknowledged claims, at most one per user.
        const campaign = await service.getCampaign(id);
        assert.equal(campaign.issued, expected);
        const rows = [];
        let cursor: string | null = null;
        do {
          const page = await service.listClaims(id, null, 1000, cursor);
          rows.push(...page.items);
          cursor = page.nextCursor;
        } while (cursor);
        assert.equal(rows.length, expected);
        assert.deepEqual(new Set(rows.map((r) => r.id)), acked, 'every 201 has exactly one durable row, and no row lacks a 201');
        assert.equal(new Set(rows.map((r) => r.userId)).size, rows.length, 'nobody holds two claims');
        const audit = await service.audit(id);
        assert.equal(audit.ok, true, JSON.stringify(audit.checks));
      });
    }
  });
}
