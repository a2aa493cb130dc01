// Database outage during a stream of claims, on a private PostgreSQL and MariaDB: every 201 is
// durable, every other answer is a 503 UNAVAILABLE with Retry-After (and, unless it says the
// commit outcome is unknown, left nothing behind), and claims succeed again after the database
// returns, without restarting the service.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/http/app.ts';
import { AllotService } from '../../src/service/service.ts';
import { startMariadb, startPostgres, type TestServer } from '../helpers/servers.ts';

const TOKEN = 'outage-test-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };

interface Answer {
  userId: string;
  status: number;
  code?: string;
  outcome?: string;
  claimId?: string;
  retryAfter?: string;
  phase: 'before' | 'down' | 'after';
}

const CASES = [
  { name: 'postgres', start: startPostgres },
  { name: 'mariadb', start: startMariadb },
];

const only = process.env.ALLOT_TEST_DIALECTS?.split(',');
for (const c of CASES.filter((x) => !only || only.includes(x.name === 'mariadb' ? 'mysql' : x.name))) {
  describe(`database outage on ${c.name}`, () => {
    let server: TestServer;
    let service: AllotService;
    let app: FastifyInstance;
    before(async () => {
      server = await c.start();
      service = await AllotService.open({
        config: { databaseUrl: server.url, dbPoolSize: 6, dbTimeoutMs: 2000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
        onPoolError: () => undefined,
      });
      app = await buildApp({ service, adminToken: TOKEN });
    });
    after(async () => {
      await app?.close();
      await service?.close().catch(() => undefined);
      await server?.destroy();
    });

    test('stop and restart the database under load', async (t) => {
      const created = await app.inject({ method: 'POST', url: '/v1/campaigns', headers: auth, payload: { id: 'outage', name: 'outage', stock: 100000 } });
      assert.equal(created.statusCode, 201);

      const answers: Answer[] = [];
      let phase: Answer['phase'] = 'before';
      let seq = 0;
      let running = true;
      const worker = async () => {
        while (running) {
          const userId = `u-${seq++}`;
          const at = phase;
          const res = await app.inject({ method: 'POST', url: '/v1/campaigns/outage/claims', headers: auth, payload: { userId } });
          const body = res.json() as { claim?: { id: string }; error?: { code: string; outcome?: string } };
          answers.push({
            userId, status: res.statusCode, phase: at,
            code: body.error?.code, outcome: body.error?.outcome, claimId: body.claim?.id,
            retryAfter: res.headers['retry-after'] as string | undefined,
          });
          if (res.statusCode !== 201) await new Promise((r) => setTimeout(r, 20));
        }
      };
      const workers = Array.from({ length: 6 }, worker);

      await new Promise((r) => setTimeout(r, 500));
      phase = 'down';
      await server.stop();
      await new Promise((r) => setTimeout(r, 1500));
      const readyDown = await app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(readyDown.statusCode, 503, '/readyz reports the outage');
      await server.start();
      phase = 'after';
      // Recovery without a restart: wait (bounded) until claims go through again.
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && answers.filter((a) => a.phase === 'after' && a.status === 201).length < 20) {
        await new Promise((r) => setTimeout(r, 100));
      }
      running = false;
      await Promise.all(workers);

      const readyUp = await app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(readyUp.statusCode, 200, '/readyz recovers');
      assert.ok(answers.filter((a) => a.phase === 'before' && a.status === 201).length > 0, 'claims succeeded before the outage');
      assert.ok(answers.filter((a) => a.status === 503).length > 0, 'the outage was seen as 503s');
      assert.ok(answers.filter((a) => a.phase === 'after' && a.status === 201).length >= 20, 'claims succeed again after the restart');

      for (const a of answers) {
        assert.ok(a.status === 201 || a.status === 503, `unexpected answer ${a.status} ${a.code}`);
        if (a.status === 503) {
          assert.equal(a.code, 'UNAVAILABLE');
          assert.ok(a.retryAfter, '503 carries Retry-After');
        }
      }

      // Durability: every 201 has its row; rows exist only for 201s, or for answers that said
      // the commit outcome was unknown.
      const claims = [];
      let cursor: string | null = null;
      do {
        const page = await service.listClaims('outage', null, 1000, cursor);
        claims.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor);
      const rowByUser = new Map(claims.map((x) => [x.userId, x.id]));
      for (const a of answers) {
        if (a.status === 201) assert.equal(rowByUser.get(a.userId), a.claimId, `acknowledged claim of ${a.userId} is durable`);
        else if (a.outcome !== 'unknown') assert.equal(rowByUser.has(a.userId), false, `${a.userId} got 503 "nothing issued" but has a row`);
      }
      const acked = answers.filter((a) => a.status === 201).length;
      const unknown = answers.filter((a) => a.outcome === 'unknown').length;
      assert.ok(claims.length >= acked && claims.length <= acked + unknown);
      t.diagnostic(`answers: ${answers.length}, 201: ${acked}, 503: ${answers.filter((a) => a.status === 503).length} (outcome unknown: ${unknown}), rows: ${claims.length}`);
      const audit = await service.audit('outage');
      assert.equal(audit.ok, true, JSON.stringify(audit.checks));
    });
  });
}
