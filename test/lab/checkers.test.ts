// The lab's checkers: a clean run passes every check, and each doctored run fails exactly the
// check that guards the invariant it breaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRun, latencyStats, throughput, timeline } from '../../src/lab/checkers.ts';
import type { HistoryEvent, LabSnapshot, SnapshotClaim } from '../../src/lab/types.ts';

const CAMPAIGN = 'cmp_1';
const DAY = '2025-06-01';

interface OpSpec {
  userId: string;
  key?: string | null;
  outcome: 'ok' | 'fail' | 'unknown' | 'none';
  claimId?: string;
  status?: number;
  code?: string;
  fence?: string;
  replayed?: boolean;
  body?: unknown;
  latency?: number;
}

class History {
  readonly events: HistoryEvent[] = [];
  private nextOp = 1;
  private clock = 0;

  add(spec: OpSpec): this {
    const op = this.nextOp++;
    const base = { op, worker: op % 4, campaignId: CAMPAIGN, userId: spec.userId, key: spec.key ?? null };
    const t0 = (this.clock += 5);
    this.events.push({ ...base, type: 'invoke', t: t0 });
    if (spec.outcome === 'none') return this;
    const t = (this.clock = t0 + (spec.latency ?? 3));
    if (spec.outcome === 'ok') {
      const claimId = spec.claimId ?? `clm_${op}`;
      this.events.push({
        ...base,
        type: 'ok',
        t,
        status: spec.status ?? 201,
        claimId,
        replayed: spec.replayed ?? false,
        body: spec.body ?? { claim: { id: claimId, userId: spec.userId } },
        ...(spec.fence !== undefined ? { fence: spec.fence, fenceResource: `campaign:${CAMPAIGN}` } : {}),
      });
    } else if (spec.outcome === 'fail') {
      const code = spec.code ?? 'SOLD_OUT';
      this.events.push({ ...base, type: 'fail', t, status: spec.status ?? 409, code, body: { error: { code } } });
    } else {
      this.events.push({ ...base, type: 'unknown', t, status: 0, error: 'socket hang up' });
    }
    return this;
  }
}

const claim = (id: string, userId: string, idemKey: string | null = null, utcDay = DAY): SnapshotClaim => ({ id, userId, utcDay, idemKey });

function snapshot(claims: SnapshotClaim[], over: Partial<LabSnapshot> = {}): LabSnapshot {
  return { campaignId: CAMPAIGN, stock: 3, issued: claims.length, perUserLimit: 1, perUserDailyLimit: 1, claims, ...over };
}

/** Three winners (one replayed), two refusals: the stock is exactly used up. */
function clean(): { h: History; claims: SnapshotClaim[] } {
  const h = new History()
    .add({ userId: 'u1', key: 'k1', outcome: 'ok', claimId: 'clm_a', fence: '1' })
    .add({ userId: 'u2', key: 'k2', outcome: 'ok', claimId: 'clm_b', fence: '2' })
    .add({ userId: 'u3', outcome: 'ok', claimId: 'clm_c', fence: '3' })
    .add({ userId: 'u4', key: 'k4', outcome: 'fail' })
    .add({ userId: 'u1', key: 'k1', outcome: 'ok', claimId: 'clm_a', replayed: true, fence: '1' })
    .add({ userId: 'u5', outcome: 'fail' });
  return { h, claims: [claim('clm_a', 'u1', 'k1'), claim('clm_b', 'u2', 'k2'), claim('clm_c', 'u3')] };
}

function failing(history: HistoryEvent[], snap: LabSnapshot): string[] {
  return checkRun(history, snap)
    .checks.filter((c) => !c.ok)
    .map((c) => c.name);
}

test('a clean history and its snapshot pass every check', () => {
  const { h, claims } = clean();
  const v = checkRun(h.events, snapshot(claims));
  assert.deepEqual(
    v.checks.map((c) => c.name),
    ['issued<=stock', 'issued=claims', 'per-user-limit', 'per-user-daily-limit', 'acked-durable', 'no-phantom-claims', 'idempotent-replays', 'fences-monotonic'],
  );
  for (const c of v.checks) {
    assert.equal(c.ok, true, `${c.name}: ${c.message}`);
    assert.equal(c.violations, 0);
    assert.ok(c.message.length > 0);
  }
  assert.deepEqual({ oversold: v.oversold, duplicates: v.duplicates, lostAcks: v.lostAcks }, { oversold: 0, duplicates: 0, lostAcks: 0 });
});

test('events of another campaign are ignored', () => {
  const { h, claims } = clean();
  h.events.push({ type: 'ok', op: 999, worker: 0, t: 1, campaignId: 'other', userId: 'x', key: null, claimId: 'clm_elsewhere' });
  assert.deepEqual(failing(h.events, snapshot(claims)), []);
});

test('an extra claim beyond the stock fails issued<=stock only', () => {
  const { h, claims } = clean();
  h.add({ userId: 'u9', outcome: 'ok', claimId: 'clm_x', fence: '4' });
  const snap = snapshot([...claims, claim('clm_x', 'u9')]);
  assert.deepEqual(failing(h.events, snap), ['issued<=stock']);
  const v = checkRun(h.events, snap);
  assert.equal(v.oversold, 1);
  const c = v.checks.find((x) => x.name === 'issued<=stock')!;
  assert.equal(c.violations, 2, 'one row beyond stock, plus the counter beyond stock');
  assert.match(c.message, /oversold/);
});

test('an issued counter that disagrees with the rows fails issued=claims only', () => {
  const { h, claims } = clean();
  const snap = snapshot(claims, { issued: 2 });
  assert.deepEqual(failing(h.events, snap), ['issued=claims']);
  assert.match(checkRun(h.events, snap).checks[1]!.message, /issued counter 2 but 3 claim rows/);
});

test('a user with two claims at limit 1 fails per-user-limit only', () => {
  const { h, claims } = clean();
  h.add({ userId: 'u1', key: 'k1b', outcome: 'ok', claimId: 'clm_d', fence: '4' });
  const snap = snapshot([...claims, claim('clm_d', 'u1', 'k1b', '2025-06-02')], { stock: 4 });
  assert.deepEqual(failing(h.events, snap), ['per-user-limit']);
  const v = checkRun(h.events, snap);
  assert.equal(v.duplicates, 1);
  assert.match(v.checks[2]!.message, /u1 \(2\)/);
});

test('a daily excess fails per-user-daily-limit only; a claim over both limits counts once', () => {
  const { h, claims } = clean();
  h.add({ userId: 'u1', key: 'k1b', outcome: 'ok', claimId: 'clm_d', fence: '4' });
  const sameDay = [...claims, claim('clm_d', 'u1', 'k1b')];
  const snap = snapshot(sameDay, { stock: 4, perUserLimit: 2 });
  assert.deepEqual(failing(h.events, snap), ['per-user-daily-limit']);
  assert.equal(checkRun(h.events, snap).duplicates, 1);
  assert.match(checkRun(h.events, snap).checks[3]!.message, /u1@2025-06-01/);

  const both = checkRun(h.events, snapshot(sameDay, { stock: 4, perUserLimit: 1 }));
  assert.deepEqual(both.checks.filter((c) => !c.ok).map((c) => c.name), ['per-user-limit', 'per-user-daily-limit']);
  assert.equal(both.duplicates, 1);

  const noDaily = snapshot(sameDay, { stock: 4, perUserLimit: 2, perUserDailyLimit: null });
  assert.deepEqual(failing(h.events, noDaily), []);
});

test('an acknowledged claim missing from the database fails acked-durable only', () => {
  const { h, claims } = clean();
  const snap = snapshot(claims.filter((c) => c.id !== 'clm_b'));
  assert.deepEqual(failing(h.events, snap), ['acked-durable']);
  const v = checkRun(h.events, snap);
  assert.equal(v.lostAcks, 1);
  assert.match(v.checks[4]!.message, /clm_b/);
});

test('a claim for a user whose only answer was a refusal fails no-phantom-claims only', () => {
  const { h, claims } = clean();
  const snap = snapshot([...claims, claim('clm_p', 'u4', 'k4')], { stock: 4 });
  assert.deepEqual(failing(h.events, snap), ['no-phantom-claims']);
  const msg = checkRun(h.events, snap).checks[5]!.message;
  assert.match(msg, /clm_p \(u4\)/);
  assert.match(msg, /1 for users who were refused/);
});

test('a claim explained by an op of unknown outcome passes', () => {
  const { h, claims } = clean();
  h.add({ userId: 'u6', key: 'k6', outcome: 'unknown' });
  const snap = snapshot([...claims, claim('clm_u', 'u6', 'k6')], { stock: 4 });
  assert.deepEqual(failing(h.events, snap), []);
});

test('an unknown op must match the claim key and explains one claim only', () => {
  const { h, claims } = clean();
  h.add({ userId: 'u6', key: 'k6', outcome: 'unknown' });
  const wrongKey = snapshot([...claims, claim('clm_u', 'u6', 'other-key')], { stock: 4 });
  assert.deepEqual(failing(h.events, wrongKey), ['no-phantom-claims']);
  const two = snapshot([...claims, claim('clm_u', 'u6', 'k6'), claim('clm_v', 'u6', 'k6')], { stock: 5, perUserLimit: 2, perUserDailyLimit: null });
  const v = checkRun(h.events, two);
  assert.deepEqual(v.checks.filter((c) => !c.ok).map((c) => c.name), ['no-phantom-claims']);
  assert.equal(v.checks[5]!.violations, 1);
});

test('an invoke with no completion explains a claim and passes', () => {
  const { h, claims } = clean();
  h.add({ userId: 'u7', outcome: 'none' });
  const snap = snapshot([...claims, claim('clm_k', 'u7')], { stock: 4 });
  assert.deepEqual(failing(h.events, snap), []);
});

test('the same key answered 201 and then 409 fails idempotent-replays only', () => {
  const { h, claims } = clean();
  h.add({ userId: 'u1', key: 'k1', outcome: 'fail', code: 'USER_LIMIT_REACHED' });
  const snap = snapshot(claims);
  assert.deepEqual(failing(h.events, snap), ['idempotent-replays']);
  const c = checkRun(h.events, snap).checks[6]!;
  assert.equal(c.violations, 1);
  assert.match(c.message, /k1 \(u1: 201 vs 409\)/);
});

test('replays compare bodies, per user, and ignore answers that are never stored', () => {
  const { h, claims } = clean();
  // A 503 and an IN_PROGRESS under a used key decide nothing: no mismatch.
  h.add({ userId: 'u1', key: 'k1', outcome: 'fail', status: 503, code: 'UNAVAILABLE' });
  h.add({ userId: 'u1', key: 'k1', outcome: 'fail', status: 409, code: 'IDEMPOTENCY_IN_PROGRESS' });
  // The same key used by another user is another request.
  h.add({ userId: 'u8', key: 'k1', outcome: 'fail', code: 'SOLD_OUT' });
  assert.deepEqual(failing(h.events, snapshot(claims)), []);

  const other = clean();
  other.h.add({ userId: 'u1', key: 'k1', outcome: 'ok', claimId: 'clm_a', replayed: true, body: { claim: { id: 'clm_a', userId: 'someone-else' } } });
  assert.deepEqual(failing(other.h.events, snapshot(other.claims)), ['idempotent-replays']);
});

test('a stale fence accepted after a newer one fails fences-monotonic only', () => {
  const { h, claims } = clean();
  h.add({ userId: 'u8', outcome: 'ok', claimId: 'clm_s', fence: '2' });
  const snap = snapshot([...claims, claim('clm_s', 'u8')], { stock: 4 });
  assert.deepEqual(failing(h.events, snap), ['fences-monotonic']);
  assert.match(checkRun(h.events, snap).checks[7]!.message, /fence 2 after 3/);
});

test('fences compare as big integers, and a history without fences passes', () => {
  const h = new History()
    .add({ userId: 'u1', outcome: 'ok', claimId: 'a', fence: '9007199254740993' })
    .add({ userId: 'u2', outcome: 'ok', claimId: 'b', fence: '10000000000000000000' });
  const snap = snapshot([claim('a', 'u1'), claim('b', 'u2')]);
  assert.deepEqual(failing(h.events, snap), []);
  const plain = new History().add({ userId: 'u1', outcome: 'ok', claimId: 'a' });
  const c = checkRun(plain.events, snapshot([claim('a', 'u1')])).checks[7]!;
  assert.equal(c.ok, true);
  assert.match(c.message, /no fenced writes/);
});

test('latency percentiles, throughput and timeline', () => {
  const h = new History();
  for (let i = 0; i < 100; i++) h.add({ userId: `u${i}`, outcome: i < 60 ? 'ok' : 'fail', latency: i + 1 });
  h.add({ userId: 'lost', outcome: 'none' });
  const { p50Ms, p99Ms } = latencyStats(h.events);
  assert.equal(p50Ms, 50);
  assert.equal(p99Ms, 99);
  const first = h.events[0]!.t;
  const last = Math.max(...h.events.filter((e) => e.type !== 'invoke').map((e) => e.t));
  assert.ok(Math.abs(throughput(h.events) - 60 / ((last - first) / 1000)) < 1e-9);

  const tl = timeline(h.events, 10);
  assert.equal(tl.length, 10);
  assert.deepEqual(tl[tl.length - 1], [Math.max(...h.events.filter((e) => e.type === 'ok').map((e) => e.t)), 60]);
  for (let i = 1; i < tl.length; i++) assert.ok(tl[i]![0] > tl[i - 1]![0] && tl[i]![1] >= tl[i - 1]![1]);
  assert.equal(timeline(h.events).length, 60);
  assert.deepEqual(timeline([]), []);
  assert.deepEqual(latencyStats([]), { p50Ms: 0, p99Ms: 0 });
  assert.equal(throughput([]), 0);
});

test('a 100k-event history is checked (completes; no timing asserted)', () => {
  const h = new History();
  const claims: SnapshotClaim[] = [];
  const stock = 10_000;
  for (let i = 0; i < 50_000; i++) {
    const userId = `u${i}`;
    if (i < stock) {
      h.add({ userId, key: `k${i}`, outcome: 'ok', claimId: `c${i}`, fence: String(i + 1) });
      claims.push(claim(`c${i}`, userId, `k${i}`));
    } else h.add({ userId, key: `k${i}`, outcome: 'fail' });
  }
  assert.equal(h.events.length, 100_000);
  const v = checkRun(h.events, snapshot(claims, { stock }));
  assert.deepEqual(v.checks.filter((c) => !c.ok).map((c) => c.name), []);
  assert.equal(timeline(h.events).length, 200);
});
