// Lottery domain: candidate lists, weighted picks, verifiable draw values, proofs, the
// chi-square check of the weights, and the worked example of docs/lottery.md.
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import vm from 'node:vm';
import {
  canonicalCandidates,
  chiSquare,
  drawValue,
  gammaQ,
  pickPrize,
  seedCommitment,
  seededDrawSource,
  verifyDrawProof,
  type DrawAttempt,
  type DrawProof,
  type PrizeWeight,
} from '../../src/core/lottery.ts';

const SEED = 'a3f1c2d4e5b60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00';
const JUST_BELOW_ONE = 1 - 2 ** -53;

const pw = (prizeId: string | null, weight: number): PrizeWeight => ({ prizeId, weight });
const picked = (candidates: PrizeWeight[], value: number): string | null | undefined => {
  const p = pickPrize(candidates, value);
  return p === null ? undefined : p.prizeId;
};

test('pickPrize: boundaries pick the first and the last candidate', () => {
  const c = [pw('a', 1), pw('b', 2), pw('c', 3)];
  assert.equal(picked(c, 0), 'a');
  assert.equal(picked(c, JUST_BELOW_ONE), 'c');
  assert.equal(picked([pw('only', 7)], 0), 'only');
  assert.equal(picked([pw('only', 7)], JUST_BELOW_ONE), 'only');
});

test('pickPrize: hand-computed picks, integer exact', () => {
  const c = [pw('a', 1), pw('b', 2), pw('c', 5)]; // cumulative 1, 3, 8
  assert.equal(picked(c, 0.124), 'a'); // target floor(0.992) = 0
  assert.equal(picked(c, 0.125), 'b'); // target 1: 1 is not > 1, 3 is
  assert.equal(picked(c, 0.374), 'b'); // target 2
  assert.equal(picked(c, 0.375), 'c'); // target 3: 3 is not > 3, 8 is
  // the double 1/6 lies just below 1/6, so exactly 6 × (1/6) < 1: target 0, although the
  // float product 6 * (1/6) rounds to 1.0
  const sixths = [pw('a', 1), pw('b', 5)];
  assert.equal(Math.floor((1 / 6) * 6), 1);
  assert.equal(picked(sixths, 1 / 6), 'a');
  assert.equal(picked(sixths, 1 / 6 + 2 ** -52), 'b');
  // the smallest draw value n / 2^52 whose exact target over `total` is k
  const atTarget = (k: number, total: number) => Number((BigInt(k) * 2n ** 52n + BigInt(total) - 1n) / BigInt(total)) / 2 ** 52;
  const example = [pw('p1', 1), pw('p2', 50), pw(null, 30)]; // cumulative 1, 51, 81
  assert.equal(picked(example, atTarget(0, 81)), 'p1');
  assert.equal(picked(example, atTarget(1, 81) - 2 ** -52), 'p1'); // still target 0
  assert.equal(picked(example, atTarget(1, 81)), 'p2');
  assert.equal(picked(example, atTarget(50, 81)), 'p2');
  assert.equal(picked(example, atTarget(51, 81) - 2 ** -52), 'p2');
  assert.equal(picked(example, atTarget(51, 81)), null); // the miss
  assert.equal(picked(example, atTarget(80, 81)), null);
  // value = n / 2^52 with n·81 ≡ -1 (mod 2^52): the exact target is 3, but the double product
  // value * 81 rounds up to 4.0, so Math.floor(value * total) would pick the wrong candidate.
  const n = 222399981598543n;
  const value = Number(n) / 2 ** 52;
  assert.equal((n * 81n) >> 52n, 3n);
  assert.equal(Math.floor(value * 81), 4);
  assert.equal(picked([pw('a', 4), pw('b', 77)], value), 'a');
});

test('pickPrize: zero-weight candidates are never picked; zero total gives null', () => {
  const c = [pw('zero-first', 0), pw('b', 5), pw('zero-mid', 0), pw('d', 5), pw('zero-last', 0)];
  assert.equal(picked(c, 0), 'b');
  assert.equal(picked(c, JUST_BELOW_ONE), 'd');
  for (let k = 0; k < 1000; k++) {
    const p = picked(c, k / 1000);
    assert.ok(p === 'b' || p === 'd', `value ${k / 1000} picked ${p}`);
  }
  assert.equal(pickPrize([], 0.3), null);
  assert.equal(pickPrize([pw('a', 0), pw(null, 0)], 0.3), null);
  for (const bad of [1, -0.1, Number.NaN, Infinity]) assert.throws(() => pickPrize(c, bad), RangeError);
  assert.throws(() => pickPrize([pw('a', -1), pw('b', 3)], 0.5), RangeError);
  assert.throws(() => pickPrize([pw('a', 1.5)], 0.5), RangeError);
});

test('canonicalCandidates: sorted by id, stockless and zero-weight prizes dropped, the miss last', () => {
  const prizes = [
    { id: 'b', weight: 3, remaining: 1 },
    { id: 'a2', weight: 1, remaining: 9 },
    { id: 'gone', weight: 40, remaining: 0 },
    { id: 'B', weight: 2, remaining: 5 },
    { id: 'never', weight: 0, remaining: 100 },
    { id: 'a10', weight: 7, remaining: 2 },
    { id: 'a', weight: 5, remaining: 1 },
  ];
  assert.deepEqual(canonicalCandidates(prizes, 30), [pw('B', 2), pw('a', 5), pw('a10', 7), pw('a2', 1), pw('b', 3), pw(null, 30)]);
  assert.deepEqual(canonicalCandidates(prizes, 0), [pw('B', 2), pw('a', 5), pw('a10', 7), pw('a2', 1), pw('b', 3)]);
  // the input order does not matter
  assert.deepEqual(canonicalCandidates([...prizes].reverse(), 30), canonicalCandidates(prizes, 30));
  // nothing in stock: only the miss is left (the service answers fallback / SOLD_OUT instead)
  assert.deepEqual(canonicalCandidates([{ id: 'x', weight: 1, remaining: 0 }], 30), [pw(null, 30)]);
  assert.deepEqual(canonicalCandidates([], 0), []);
  assert.throws(() => canonicalCandidates([{ id: 'x', weight: 1, remaining: 1 }, { id: 'x', weight: 2, remaining: 1 }], 0), /duplicate/);
  assert.throws(() => canonicalCandidates([], -1), RangeError);
});

test('seedCommitment is SHA-256 of the seed bytes; malformed seeds are refused', () => {
  assert.equal(seedCommitment(SEED), createHash('sha256').update(Buffer.from(SEED, 'hex')).digest('hex'));
  assert.equal(seedCommitment(SEED.toUpperCase()), seedCommitment(SEED));
  assert.notEqual(seedCommitment(SEED), createHash('sha256').update(SEED).digest('hex')); // bytes, not text
  for (const bad of ['', 'abc', 'zz', `${SEED}g0`]) assert.throws(() => seedCommitment(bad), RangeError);
});

test('drawValue: deterministic, differs by attempt and claim, in [0, 1), known answer', () => {
  const a = drawValue(SEED, 'c42', 3);
  assert.deepEqual(drawValue(SEED, 'c42', 3), a);
  assert.notEqual(drawValue(SEED, 'c42', 4).value, a.value);
  assert.notEqual(drawValue(SEED, 'c43', 3).value, a.value);
  assert.notEqual(drawValue(SEED.replace(/^a3/, 'a4'), 'c42', 3).value, a.value);
  // known answer, computed independently
  const mac = createHmac('sha256', Buffer.from(SEED, 'hex')).update('c42:3', 'utf8').digest('hex');
  assert.equal(a.hmac, mac);
  assert.equal(a.value, parseInt(mac.slice(0, 13), 16) / 2 ** 52);
  assert.ok(Number.isInteger(a.value * 2 ** 52));
  for (let i = 0; i < 2000; i++) {
    const v = drawValue(SEED, `c${i}`, 1 + (i % 4)).value;
    assert.ok(v >= 0 && v < 1, `value ${v}`);
  }
  assert.throws(() => drawValue(SEED, 'c1', 0), RangeError);
  assert.throws(() => drawValue(SEED, 'c1', 1.5), RangeError);
  assert.throws(() => drawValue('xyz', 'c1', 1), RangeError);
});

test('seededDrawSource: the same seed gives the same sequence', () => {
  const s1 = seededDrawSource(SEED);
  const s2 = seededDrawSource(SEED);
  const other = seededDrawSource('00'.repeat(32));
  const seq = (s: ReturnType<typeof seededDrawSource>) => Array.from({ length: 50 }, (_, i) => s.value(`c${i >> 1}`, 1 + (i & 1)));
  assert.deepEqual(seq(s1), seq(s2));
  assert.notDeepEqual(seq(s1), seq(other));
  assert.throws(() => seededDrawSource('not hex'), RangeError);
});

test('the configured weights are honoured (chi-square), and the check can fail', () => {
  const candidates = canonicalCandidates(
    [
      { id: 'p1', weight: 1, remaining: 1_000_000 },
      { id: 'p2', weight: 50, remaining: 1_000_000 },
      { id: 'p3', weight: 20, remaining: 1_000_000 },
    ],
    30,
  );
  const order = candidates.map((c) => c.prizeId);
  assert.deepEqual(order, ['p1', 'p2', 'p3', null]);
  const source = seededDrawSource(SEED);
  const N = 20_000;
  const observed = [0, 0, 0, 0];
  for (let i = 0; i < N; i++) {
    const p = pickPrize(candidates, source.value(`c${i}`, 1));
    assert.ok(p !== null);
    observed[order.indexOf(p.prizeId)]! += 1;
  }
  const expectedFor = (weights: number[]) => {
    const total = weights.reduce((s, w) => s + w, 0);
    return weights.map((w) => (N * w) / total);
  };
  const right = chiSquare(observed, expectedFor([1, 50, 20, 30]));
  assert.equal(right.df, 3);
  assert.ok(right.pValue > 0.001, `observed ${observed} vs weights 1:50:20:30: chi2 ${right.statistic}, p ${right.pValue}`);
  const wrong = chiSquare(observed, expectedFor([10, 50, 20, 30]));
  assert.ok(wrong.pValue < 0.001, `negative control: observed ${observed} vs weights 10:50:20:30 gave p ${wrong.pValue}`);
});

test('chiSquare and gammaQ: known values', () => {
  const d = Math.sqrt(96); // (d² + d²) / 50 = 3.84
  const r = chiSquare([50 + d, 50 - d], [50, 50]);
  assert.ok(Math.abs(r.statistic - 3.84) < 1e-9);
  assert.equal(r.df, 1);
  assert.ok(Math.abs(r.pValue - 0.05) < 1e-3, `p ${r.pValue}`);
  assert.ok(Math.abs(r.pValue - 0.050043521248705) < 1e-9, `p ${r.pValue}`);
  assert.deepEqual(chiSquare([10, 20, 30], [10, 20, 30]), { statistic: 0, df: 2, pValue: 1 });
  assert.ok(Math.abs(chiSquare([60, 40], [50, 50]).pValue - 0.0455002638963584) < 1e-9);
  // textbook 5% critical values
  for (const [x, df] of [[5.991, 2], [7.815, 3], [9.488, 4], [18.307, 10], [124.342, 100]] as const) {
    assert.ok(Math.abs(gammaQ(df / 2, x / 2) - 0.05) < 2e-4, `df ${df}: ${gammaQ(df / 2, x / 2)}`);
  }
  // Q(1, x) = e^-x exactly: covers the series (x < 2) and the continued fraction (x ≥ 2)
  for (const x of [0.01, 0.5, 1.9, 2, 3, 10, 50]) assert.ok(Math.abs(gammaQ(1, x) / Math.exp(-x) - 1) < 1e-12, `Q(1, ${x})`);
  assert.equal(gammaQ(2.5, 0), 1);
  assert.equal(chiSquare([1, 0], [0, 1]).pValue, 0); // observed where nothing is expected
  assert.throws(() => chiSquare([1], [1, 2]), RangeError);
});

// Builds a proof from real draws, as the service would: attempt after attempt, the first
// `racesLost` prizes picked lose their race (their stock goes to 0), up to `bound` attempts.
function simulateDraw(opts: {
  seed: string;
  claimId: string;
  prizes: Array<{ id: string; weight: number; remaining: number }>;
  missWeight: number;
  racesLost?: number;
  bound?: number;
  fallbackId?: string | null;
}): DrawProof | 'SOLD_OUT' {
  const prizes = opts.prizes.map((p) => ({ ...p }));
  const bound = opts.bound ?? 3;
  let racesLost = opts.racesLost ?? 0;
  const attempts: DrawAttempt[] = [];
  let prizeId: string | null = null;
  let fallback = false;
  for (let attempt = 1; ; attempt++) {
    const candidates = canonicalCandidates(prizes, opts.missWeight);
    const { hmac, value } = drawValue(opts.seed, opts.claimId, attempt);
    const p = pickPrize(candidates, value);
    const record: DrawAttempt = { attempt, candidates, value, hmac, picked: p === null ? null : p.prizeId };
    attempts.push(record);
    if (p === null) {
      fallback = true;
      break;
    }
    if (p.prizeId !== null && racesLost > 0) {
      racesLost--;
      record.lostRace = true;
      prizes.find((x) => x.id === p.prizeId)!.remaining = 0;
      if (attempt >= bound) {
        fallback = true;
        break;
      }
      continue;
    }
    prizeId = p.prizeId;
    break;
  }
  if (fallback) {
    if (opts.fallbackId === undefined || opts.fallbackId === null) return 'SOLD_OUT';
    prizeId = opts.fallbackId;
  }
  return { campaignId: 'camp', claimId: opts.claimId, seedCommitment: seedCommitment(opts.seed), seed: opts.seed, attempts, prizeId, fallback };
}

const POOL = [
  { id: 'p1', weight: 1, remaining: 3 },
  { id: 'p2', weight: 50, remaining: 500 },
  { id: 'p3', weight: 20, remaining: 40 },
];

function proof(opts: Partial<Parameters<typeof simulateDraw>[0]> & { claimId: string }): DrawProof {
  const p = simulateDraw({ seed: SEED, prizes: POOL, missWeight: 30, ...opts });
  assert.notEqual(p, 'SOLD_OUT');
  return p as DrawProof;
}

function assertRejected(p: DrawProof, pattern: RegExp): void {
  const r = verifyDrawProof(p);
  assert.equal(r.ok, false, `expected a problem matching ${pattern}`);
  assert.ok(r.problems.some((m) => pattern.test(m)), `no problem matches ${pattern}: ${JSON.stringify(r.problems)}`);
}

test('verifyDrawProof: proofs built from real draws verify', () => {
  for (let i = 0; i < 50; i++) {
    const p = proof({ claimId: `c${i}` });
    assert.deepEqual(verifyDrawProof(p), { ok: true, problems: [] }, `c${i}`);
  }
  const raced = proof({ claimId: 'raced', missWeight: 0, racesLost: 1 });
  assert.equal(raced.attempts.length, 2);
  assert.equal(raced.attempts[0]!.lostRace, true);
  assert.ok(!raced.attempts[1]!.candidates.some((c) => c.prizeId === raced.attempts[0]!.picked));
  assert.deepEqual(verifyDrawProof(raced), { ok: true, problems: [] });
  // every race lost up to the bound: the fallback prize
  const fellBack = proof({ claimId: 'unlucky', missWeight: 0, racesLost: 3, fallbackId: 'p9' });
  assert.equal(fellBack.attempts.length, 3);
  assert.equal(fellBack.prizeId, 'p9');
  assert.deepEqual(verifyDrawProof(fellBack), { ok: true, problems: [] });
  // nothing could be picked: the fallback prize
  const empty = proof({ claimId: 'empty', prizes: [], missWeight: 0, fallbackId: 'p9' });
  assert.deepEqual(empty.attempts[0]!.candidates, []);
  assert.deepEqual(verifyDrawProof(empty), { ok: true, problems: [] });
  assert.equal(simulateDraw({ seed: SEED, claimId: 'x', prizes: [], missWeight: 0 }), 'SOLD_OUT');
});

test('verifyDrawProof: tampering is caught and named', () => {
  const base = proof({ claimId: 'raced', missWeight: 0, racesLost: 1 });
  const tamper = (edit: (p: DrawProof) => void): DrawProof => {
    const p = structuredClone(base);
    edit(p);
    return p;
  };
  assertRejected(tamper((p) => (p.seed = null)), /^seed: not revealed/);
  assertRejected(tamper((p) => (p.seed = '11'.repeat(32))), /^seed: .*commitment/);
  assertRejected(tamper((p) => (p.seed = 'nothex')), /^seed: /);
  assertRejected(tamper((p) => (p.attempts[1]!.value = drawValue(SEED, 'other', 2).value)), /^attempt 2: value is .* recomputed/);
  assertRejected(tamper((p) => (p.attempts[0]!.hmac = drawValue(SEED, 'other', 1).hmac)), /^attempt 1: hmac is .* recomputed/);
  assertRejected(tamper((p) => (p.claimId = 'someone-else')), /^attempt 1: hmac/);
  // a pick that is not what the value picks
  assertRejected(
    tamper((p) => {
      const a = p.attempts[1]!;
      a.picked = a.candidates.find((c) => c.prizeId !== a.picked)!.prizeId;
      p.prizeId = a.picked;
    }),
    /^attempt 2: picked .* but value .* picks/,
  );
  // the candidate list: the picked prize removed, or the order changed
  assertRejected(
    tamper((p) => {
      const a = p.attempts[1]!;
      a.candidates = a.candidates.filter((c) => c.prizeId !== a.picked);
    }),
    /^attempt 2: picked/,
  );
  assertRejected(tamper((p) => p.attempts[0]!.candidates.reverse()), /^attempt 1: candidates are not canonical/);
  assertRejected(tamper((p) => p.attempts[0]!.candidates.push(pw('zz', 0))), /^attempt 1: candidates are not canonical: weight/);
  // the final prize
  assertRejected(tamper((p) => (p.prizeId = 'p1' === p.prizeId ? 'p2' : 'p1')), /^prizeId: .* is not the last attempt's pick/);
  assertRejected(tamper((p) => (p.fallback = true)), /^fallback: the last attempt picked .* without losing a race/);
  // attempts: numbering, the race marks
  assertRejected(tamper((p) => (p.attempts[1]!.attempt = 3)), /^attempt 2: numbered 3/);
  assertRejected(tamper((p) => delete p.attempts[0]!.lostRace), /^attempt 1: followed by another attempt but not marked lostRace/);
  assertRejected(tamper((p) => (p.attempts[1]!.lostRace = true)), /^prizeId: the last attempt lost its race/);
  assertRejected(tamper((p) => (p.attempts = [])), /^attempts: none/);
  // a fallback claim must name its prize
  const fellBack = proof({ claimId: 'unlucky', missWeight: 0, racesLost: 3, fallbackId: 'p9' });
  assertRejected({ ...fellBack, prizeId: null }, /^prizeId: a fallback claim must name/);
});

test('the worked example of docs/lottery.md is what the module computes', () => {
  const doc = readFileSync(new URL('../../docs/lottery.md', import.meta.url), 'utf8');
  const seed = Array.from({ length: 32 }, (_, i) => i.toString(16).padStart(2, '0')).join('');
  assert.equal(seed, '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  const has = (text: string) => assert.ok(doc.includes(text), `docs/lottery.md lacks ${text}`);
  has(`| seed (hex) | \`${seed}\` |`);
  has('`clm_example:1`');

  const commitment = seedCommitment(seed);
  const d1 = drawValue(seed, 'clm_example', 1);
  const n1 = BigInt(`0x${d1.hmac.slice(0, 13)}`);
  const candidates = canonicalCandidates(
    [
      { id: 'p1', weight: 1, remaining: 3 },
      { id: 'p2', weight: 50, remaining: 500 },
    ],
    30,
  );
  assert.deepEqual(candidates, [pw('p1', 1), pw('p2', 50), pw(null, 30)]);
  const pick1 = pickPrize(candidates, d1.value);
  assert.ok(pick1 !== null && pick1.prizeId !== null);
  has(`| commitment = SHA-256(seed bytes) | \`${commitment}\` |`);
  has(`| hmac = HMAC-SHA256(seed bytes, message) | \`${d1.hmac}\` |`);
  has(`| n = first 52 bits (13 hex digits) | \`${d1.hmac.slice(0, 13)}\` = \`${n1}\` |`);
  has(`| value = n / 2^52 | \`${d1.value}\` |`);
  has(`| target = floor(n × 81 / 2^52) | \`${(n1 * 81n) >> 52n}\` |`);
  has(`| picked | \`${pick1.prizeId}\``);

  // the continuation: the Mug lost its race, attempt 2 among the rest
  const d2 = drawValue(seed, 'clm_example', 2);
  const rest = canonicalCandidates([{ id: 'p1', weight: 1, remaining: 3 }, { id: 'p2', weight: 50, remaining: 0 }], 30);
  const pick2 = pickPrize(rest, d2.value);
  assert.ok(pick2 !== null);
  has('`clm_example:2`');
  has(`hmac \`${d2.hmac}\``);
  has(`value \`${d2.value}\``);
  has(`target \`${(BigInt(`0x${d2.hmac.slice(0, 13)}`) * 31n) >> 52n}\``);
  has(pick2.prizeId === null ? 'picked the miss' : `picked \`${pick2.prizeId}\``);

  // the Node snippet runs and prints the same numbers
  const snippet = /^```js\n([\s\S]*?)^```$/m.exec(doc);
  assert.ok(snippet, 'docs/lottery.md has a ```js block');
  const lines: string[] = [];
  vm.runInNewContext(snippet[1]!, {
    require: createRequire(import.meta.url),
    Buffer,
    console: { log: (...args: unknown[]) => lines.push(args.map(String).join(' ')) },
  });
  assert.deepEqual(lines, [`commitment ${commitment}`, `hmac ${d1.hmac}`, `value ${d1.value}`, `target ${(n1 * 81n) >> 52n}`, `picked ${pick1.prizeId}`]);
  has(`\`value ${d1.value}\`, \`target ${(n1 * 81n) >> 52n}\` and \`picked ${pick1.prizeId}\``);

  // the example proof in the doc verifies
  const json = /^```json\n([\s\S]*?)^```$/gm;
  const blocks = [...doc.matchAll(json)].map((m) => m[1]!).filter((b) => b.includes('"attempts"'));
  assert.equal(blocks.length, 1);
  const docProof = JSON.parse(blocks[0]!) as DrawProof;
  assert.equal(docProof.seedCommitment, commitment);
  assert.deepEqual(verifyDrawProof(docProof), { ok: true, problems: [] });
});
