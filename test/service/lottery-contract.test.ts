// The lottery contract, once per dialect and safe strategy, through the service: weighted draws
// never over-issue a prize, a miss counts against the user, the fallback comes when the prizes
// are gone and SOLD_OUT after it (not counted against the user), concurrent draws keep every
// prize's issued equal to its claims, and every draw's proof verifies once the seed is revealed.
// The service makes a random seed per campaign: the tests check invariants, never which prize
// a draw picks.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Campaign } from '../../src/core/campaign.ts';
import { verifyDrawProof, type DrawProof } from '../../src/core/lottery.ts';
import type { ClaimOutcome } from '../../src/service/claim-engine.ts';
import { AllotService } from '../../src/service/service.ts';
import { dialects, LOTTERY_STRATEGIES as STRATEGIES } from '../helpers/dialects.ts';

const T0 = Date.parse('2026-11-22T10:00:00Z');

/** The pool of the issue: p1 (2 units, weight 1), p2 (3 units, weight 3), the fallback c (1 unit,
 * weight 0: never drawn by weight), and a miss of weight 2. */
const POOL = [
  { id: 'p1', name: 'Phone', stock: 2, weight: 1 },
  { id: 'p2', name: 'Headphones', stock: 3, weight: 3 },
  { id: 'c', name: 'Voucher', stock: 1, weight: 0 },
];

type Drawn = { status: number; code: string | undefined; claimId: string | undefined; prizeId: string | null | undefined };

function drawn(o: ClaimOutcome | { status: 503; body: null }): Drawn {
  const body = o.body as { claim?: { id: string; prizeId: string | null }; error?: { code?: string } } | null;
  return { status: o.status, code: body?.error?.code, claimId: body?.claim?.id, prizeId: body?.claim?.prizeId };
}

function prizeOf(c: Campaign, id: string): { stock: number; issued: number } {
  const p = c.prizes.find((x) => x.id === id);
  assert.ok(p, `prize ${id} in the campaign view`);
  return p;
}

function assertWithinStock(c: Campaign): void {
  for (const p of c.prizes) assert.ok(p.issued >= 0 && p.issued <= p.stock, `prize ${p.id}: issued ${p.issued} of ${p.stock}`);
}

for (const d of dialects()) {
  describe(`lottery contract on ${d.name}`, () => {
    let service: AllotService;
    before(async () => {
      service = await AllotService.open({
        config: { databaseUrl: d.url(), dbPoolSize: 8, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: process.env.REDIS_URL, lockPrefix: `test-${randomUUID().slice(0, 8)}:` },
        clock: { now: () => T0 },
      });
    });
    after(async () => {
      await service?.close();
    });

    for (const strategy of STRATEGIES) {
      const newLottery = async (extra: Record<string, unknown> = {}) => {
        const id = `lt-${strategy}-${randomUUID().slice(0, 8)}`;
        await service.createCampaign({ id, kind: 'lottery', name: 'lottery contract', prizes: POOL, missWeight: 2, fallback: 'c', perUserLimit: 1, strategy, ...extra });
        return id;
      };
      // Optimistic strategies may give up under contention (503, nothing issued): counted, not failed.
      const optimistic = strategy.startsWith('optimistic');
      const draw = (id: string, user: string): Promise<Drawn> =>
        service.claim(id, user, null).then(drawn, (e: { code?: string; details?: { reason?: string } }) => {
          if (optimistic && e.code === 'UNAVAILABLE' && e.details?.reason === 'contention') return drawn({ status: 503, body: null });
          throw e;
        });
      /** Every claim's proof verifies after the reveal and names the claim's prize. */
      const checkProofs = async (id: string): Promise<DrawProof[]> => {
        await service.revealSeed(id);
        const claims = (await service.listClaims(id, null, 100, null)).items;
        const proofs: DrawProof[] = [];
        for (const c of claims) {
          const proof = await service.drawProof(c.id);
          const v = verifyDrawProof(proof);
          assert.deepEqual(v, { ok: true, problems: [] }, `proof of ${c.id} (prize ${String(c.prizeId)}): ${JSON.stringify(proof)}`);
          assert.equal(proof.prizeId, c.prizeId);
          proof.attempts.slice(0, -1).forEach((a) => assert.equal(a.lostRace, true, `attempt ${a.attempt} of ${c.id} was followed by another`));
          proofs.push(proof);
        }
        return proofs;
      };
      const auditOk = async (id: string) => {
        const a = await service.audit(id);
        assert.equal(a.ok, true, JSON.stringify(a.checks));
        return a;
      };

      describe(strategy, () => {
        test('draws until the pool is spent: misses count, the fallback after the prizes, then SOLD_OUT (not counted)', async () => {
          const id = await newLottery();
          const won = new Map<string | null, number>();
          let missUser: string | null = null;
          let soldOutUser: string | null = null;
          let fallbackSeen = false;
          for (let i = 0; i < 60 && soldOutUser === null; i++) {
            const before = await service.getCampaign(id);
            const p1Gone = prizeOf(before, 'p1').issued === prizeOf(before, 'p1').stock;
            const p2Gone = prizeOf(before, 'p2').issued === prizeOf(before, 'p2').stock;
            const user = `u${i}`;
            const r = await draw(id, user);
            if (r.status === 409 && r.code === 'SOLD_OUT') {
              soldOutUser = user;
              assert.ok(p1Gone && p2Gone && fallbackSeen, 'SOLD_OUT only once every prize and the fallback are gone');
              break;
            }
            assert.equal(r.status, 201, JSON.stringify(r));
            won.set(r.prizeId ?? null, (won.get(r.prizeId ?? null) ?? 0) + 1);
            if (p1Gone && p2Gone) {
              // Nothing left to draw: the fallback, not a miss.
              assert.equal(r.prizeId, 'c', 'the fallback once p1 and p2 are gone');
              fallbackSeen = true;
            } else {
              assert.notEqual(r.prizeId, 'c', 'the fallback (weight 0) is not drawn while prizes remain');
              // Sold out is per prize: a spent prize is not drawn again, the others still are.
              if (p1Gone) assert.notEqual(r.prizeId, 'p1');
              if (p2Gone) assert.notEqual(r.prizeId, 'p2');
            }
            if (r.prizeId === null && missUser === null) {
              // A miss is an answer (201, no prize) and counts against the user's limit of 1.
              missUser = user;
              const again = await draw(id, user);
              assert.equal(again.status, 409, JSON.stringify(again));
              assert.equal(again.code, 'USER_LIMIT_REACHED');
            }
            assertWithinStock(await service.getCampaign(id));
          }
          assert.ok(soldOutUser !== null, 'the pool is spent within 60 draws');
          assert.deepEqual([won.get('p1'), won.get('p2'), won.get('c')], [2, 3, 1], 'every unit issued exactly once');
          const spent = await service.getCampaign(id);
          assert.deepEqual(spent.prizes.map((p) => [p.id, p.issued]), [['c', 1], ['p1', 2], ['p2', 3]]);
          // SOLD_OUT did not count: the refused user holds no claim and draws once stock is added.
          assert.deepEqual((await service.listClaims(id, soldOutUser, 10, null)).items, []);
          await service.addStock(id, { prizeId: 'p1', add: 1 });
          const late = await draw(id, soldOutUser);
          assert.equal(late.status, 201, JSON.stringify(late));
          assert.ok(late.prizeId === 'p1' || late.prizeId === null, `p1 or a miss, got ${String(late.prizeId)}`);
          if (late.prizeId === null) missUser ??= soldOutUser;
          if (missUser === null) {
            // No miss yet (the draws are random): more p2 units, and fresh users until one misses
            // (each draw misses with probability 2/5; 40 draws all hitting: (3/5)^40, about 1e-9).
            await service.addStock(id, { prizeId: 'p2', add: 40 });
            for (let i = 0; i < 40 && missUser === null; i++) {
              const user = `extra${i}`;
              const r = await draw(id, user);
              assert.equal(r.status, 201, JSON.stringify(r));
              if (r.prizeId === null) {
                missUser = user;
                const again = await draw(id, user);
                assert.equal(again.code, 'USER_LIMIT_REACHED', JSON.stringify(again));
              }
            }
          }
          assert.ok(missUser !== null, 'a miss was drawn');
          assert.equal((await service.listClaims(id, missUser, 10, null)).items.length, 1);
          assert.equal((await service.listClaims(id, missUser, 10, null)).items[0]!.prizeId, null);
          assertWithinStock(await service.getCampaign(id));
          await auditOk(id);
          // Every draw verifies, the fallback claim (nothing left to draw) included.
          const proofs = await checkProofs(id);
          assert.ok(proofs.some((p) => p.fallback && p.prizeId === 'c'), 'the fallback claim has its proof');
        });

        test('sold out is per prize: after p1 sells out, p2 is still drawn', async () => {
          // No miss, and p2 far from selling out: draws are p1 or p2 until p1 is gone (p1 is
          // drawn with probability 1/2 each time: 40 draws without it, 2^-40).
          const id = await newLottery({ prizes: [{ id: 'p1', name: 'Phone', stock: 1, weight: 1 }, { id: 'p2', name: 'Pen', stock: 60, weight: 1 }], missWeight: 0, fallback: null });
          let n = 0;
          for (; n < 40; n++) {
            const r = await draw(id, `u${n}`);
            assert.equal(r.status, 201, JSON.stringify(r));
            assert.ok(r.prizeId === 'p1' || r.prizeId === 'p2');
            if (r.prizeId === 'p1') break;
          }
          assert.ok(n < 40, 'p1 was drawn');
          for (let i = 0; i < 3; i++) {
            const r = await draw(id, `after${i}`);
            assert.equal(r.status, 201, JSON.stringify(r));
            assert.equal(r.prizeId, 'p2');
          }
          const c = await service.getCampaign(id);
          assert.equal(prizeOf(c, 'p1').issued, 1);
          assert.equal(prizeOf(c, 'p2').issued, n + 3);
          await auditOk(id);
        });

        test('concurrent draws never over-issue a prize; issued equals claims; every proof verifies', async () => {
          const id = await newLottery();
          const outs = await Promise.all(Array.from({ length: 40 }, (_, i) => draw(id, `u${i}`)));
          for (const o of outs) {
            assert.ok(o.status === 201 || (o.status === 409 && o.code === 'SOLD_OUT') || (optimistic && o.status === 503), JSON.stringify(o));
          }
          const c = await service.getCampaign(id);
          assertWithinStock(c);
          const ok = outs.filter((o) => o.status === 201);
          assert.ok(ok.length >= 1, 'something was drawn');
          for (const p of c.prizes) assert.equal(ok.filter((o) => o.prizeId === p.id).length, p.issued, `answers for ${p.id} = its issued`);
          const a = await auditOk(id);
          const issuedCheck = a.checks.find((x) => x.name === 'issued=claims') as { claimsWithPrize?: number; misses?: number } | undefined;
          assert.equal(issuedCheck?.claimsWithPrize, c.issued);
          assert.equal(issuedCheck?.misses, ok.filter((o) => o.prizeId === null).length);
          // Nobody drew twice (limit 1), and every 201 is a stored claim.
          const claims = (await service.listClaims(id, null, 100, null)).items;
          assert.equal(claims.length, ok.length);
          assert.equal(new Set(claims.map((x) => x.userId)).size, claims.length);
          await checkProofs(id);
        });

        test('a lost race redraws among the rest, and its proof verifies (earlier attempts marked lostRace)', async () => {
          // One unit of a heavy prize: concurrent draws pick it, one takes it, the others lose
          // the race and redraw among what is left. Rounds until a redraw shows (a few at most).
          let redraws: DrawProof[] = [];
          for (let round = 0; round < 4 && redraws.length === 0; round++) {
            const id = await newLottery({ prizes: [{ id: 'big', name: 'Car', stock: 1, weight: 1000 }, { id: 'small', name: 'Pen', stock: 100, weight: 1 }], missWeight: 0, fallback: null });
            const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => draw(id, `u${i}`)));
            for (const o of outs) assert.ok(o.status === 201 || (optimistic && o.status === 503), JSON.stringify(o));
            const c = await service.getCampaign(id);
            assert.equal(prizeOf(c, 'big').issued, 1, 'the heavy unit went to exactly one draw');
            assertWithinStock(c);
            await auditOk(id);
            redraws = (await checkProofs(id)).filter((p) => p.attempts.length > 1);
          }
          assert.ok(redraws.length > 0, 'concurrent draws lost a race and redrew');
          for (const p of redraws) {
            assert.ok(p.attempts.slice(0, -1).every((a) => a.lostRace === true && a.picked === 'big'));
            assert.equal(p.prizeId, 'small');
          }
        });

        test('pause: CAMPAIGN_NOT_ACTIVE, nothing drawn; resume: draws again', async () => {
          const id = await newLottery();
          await service.setPaused(id, true);
          const paused = await draw(id, 'u1');
          assert.equal(paused.status, 409, JSON.stringify(paused));
          assert.equal(paused.code, 'CAMPAIGN_NOT_ACTIVE');
          assert.equal((await service.getCampaign(id)).issued, 0);
          await service.setPaused(id, false);
          const r = await draw(id, 'u1');
          assert.equal(r.status, 201, JSON.stringify(r));
          assert.ok(r.prizeId === null || r.prizeId === 'p1' || r.prizeId === 'p2');
          await auditOk(id);
        });
      });
    }
  });
}
