// Lottery domain: candidate lists, weighted picks, verifiable draw values and their proofs.
// Pure: no I/O, no clock, no Math.random. The seed is supplied by the caller (randomness is
// injected); node:crypto is used only for deterministic hashing. See docs/lottery.md.
import { createHash, createHmac } from 'node:crypto';

/** One candidate of a draw attempt. `prizeId: null` is the miss weight: drawing nothing. */
export type PrizeWeight = { prizeId: string | null; weight: number };

/**
 * The candidate list of one draw attempt: prizes with stock left (remaining > 0) and a
 * positive weight, sorted by id, then the miss last when missWeight > 0.
 *
 * Odds policy: weights renormalize implicitly over what is listed. A prize without stock is
 * simply absent, so when it sells out the chances of every other prize AND of the miss rise
 * in proportion. The alternative (keeping a sold-out prize's weight as extra misses) was not
 * chosen: a user's chance of winning something would silently drop as prizes run out.
 * docs/lottery.md states this policy to users.
 *
 * Order: ids compare with `<` on strings (UTF-16 code units), which is bytewise order for the
 * ASCII ids campaigns allow (ID_PATTERN). The order is part of the proof: a verifier insists on
 * it, so nobody who knows the seed can reorder candidates to steer a pick.
 *
 * When no prize has stock the list is just the miss (or empty): the service answers the
 * fallback or SOLD_OUT then rather than drawing a certain miss (API.md).
 */
export function canonicalCandidates(
  prizes: Array<{ id: string; weight: number; remaining: number }>,
  missWeight: number,
): PrizeWeight[] {
  checkWeight(missWeight, 'missWeight');
  const seen = new Set<string>();
  const kept: PrizeWeight[] = [];
  for (const p of prizes) {
    if (seen.has(p.id)) throw new RangeError(`duplicate prize id ${JSON.stringify(p.id)}`);
    seen.add(p.id);
    checkWeight(p.weight, `weight of prize ${JSON.stringify(p.id)}`);
    if (p.remaining > 0 && p.weight > 0) kept.push({ prizeId: p.id, weight: p.weight });
  }
  kept.sort((a, b) => compareIds(a.prizeId as string, b.prizeId as string));
  if (missWeight > 0) kept.push({ prizeId: null, weight: missWeight });
  return kept;
}

/**
 * Picks by cumulative weight in the given order: with total = the sum of weights and
 * target = floor(value × total), the first candidate whose cumulative weight exceeds target.
 * target is computed exactly (BigInt on the binary expansion of value), so a draw value of
 * n / 2^52 gives target = floor(n × total / 2^52) with no rounding, in any language.
 * Zero-weight candidates are never picked. Null when the total is 0 (nothing can be drawn).
 */
export function pickPrize(candidates: PrizeWeight[], value: number): PrizeWeight | null {
  if (!(Number.isFinite(value) && value >= 0 && value < 1)) throw new RangeError(`draw value must be in [0, 1), got ${value}`);
  let total = 0n;
  for (const c of candidates) {
    checkWeight(c.weight, `weight of candidate ${JSON.stringify(c.prizeId)}`);
    total += BigInt(c.weight);
  }
  if (total === 0n) return null;
  const target = exactFloorTimes(value, total);
  let cumulative = 0n;
  for (const c of candidates) {
    cumulative += BigInt(c.weight);
    if (cumulative > target) return c;
  }
  // Unreachable: target < total because value < 1.
  throw new Error('pickPrize: target beyond the total weight');
}

/** floor(value × total), exact: value = m / 2^k with m an integer (every finite double is). */
function exactFloorTimes(value: number, total: bigint): bigint {
  let m = value;
  let k = 0n;
  // Doubling is exact for doubles below 1 (no overflow); it ends after at most 1074 steps.
  while (!Number.isInteger(m)) {
    m *= 2;
    k += 1n;
  }
  return (BigInt(m) * total) >> k;
}

function checkWeight(weight: number, what: string): void {
  if (!Number.isSafeInteger(weight) || weight < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${weight}`);
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Verifiable randomness

const HEX_BYTES = /^(?:[0-9a-fA-F]{2})+$/;

function seedBytes(seedHex: string): Buffer {
  // Buffer.from(…, 'hex') stops silently at the first bad character; refuse instead.
  if (!HEX_BYTES.test(seedHex)) throw new RangeError('seed must be a non-empty hex string of whole bytes');
  return Buffer.from(seedHex, 'hex');
}

/** The public commitment to a secret seed: SHA-256 of the seed bytes (hex decoded), lowercase hex. */
export function seedCommitment(seedHex: string): string {
  return createHash('sha256').update(seedBytes(seedHex)).digest('hex');
}

const TWO_POW_52 = 2 ** 52;

/**
 * The value of one draw attempt: HMAC-SHA256 keyed with the seed bytes over the UTF-8 message
 * `${claimId}:${attempt}`; value = the first 52 bits of the MAC (its first 13 hex digits) as an
 * integer, divided by 2^52, so 0 ≤ value < 1 and it is exact in a double. Attempts count from 1.
 */
export function drawValue(seedHex: string, claimId: string, attempt: number): { hmac: string; value: number } {
  if (!Number.isSafeInteger(attempt) || attempt < 1) throw new RangeError(`attempt must be an integer ≥ 1, got ${attempt}`);
  const mac = createHmac('sha256', seedBytes(seedHex)).update(`${claimId}:${attempt}`, 'utf8').digest();
  // 48 bits from the first 6 bytes, then the high nibble of the 7th: 52 bits, below 2^53.
  const n = mac.readUIntBE(0, 6) * 16 + (mac[6]! >> 4);
  return { hmac: mac.toString('hex'), value: n / TWO_POW_52 };
}

/** Where draw values come from: seeded in production (verifiable) and in tests. */
export interface DrawSource {
  value(claimId: string, attempt: number): number;
}

export function seededDrawSource(seedHex: string): DrawSource {
  seedBytes(seedHex); // fail at construction on a malformed seed, not at the first draw
  return { value: (claimId, attempt) => drawValue(seedHex, claimId, attempt).value };
}

// ---------------------------------------------------------------------------------------------
// Proofs

/** One draw attempt as recorded with the claim. */
export interface DrawAttempt {
  attempt: number;
  candidates: PrizeWeight[];
  value: number;
  hmac: string;
  picked: string | null;
  /** The picked prize's last unit went to someone else between the draw and the claim, so another attempt followed (or the fallback). */
  lostRace?: boolean;
}

/** What `GET /v1/claims/:claimId/proof` returns: enough to recompute the draw once the seed is revealed. */
export interface DrawProof {
  campaignId: string;
  claimId: string;
  seedCommitment: string;
  seed: string | null;
  attempts: DrawAttempt[];
  prizeId: string | null;
  fallback: boolean;
}

/**
 * Recomputes a draw from its proof. Checks: the seed is revealed and hashes to the commitment;
 * each attempt's hmac and value recompute from (seed, claimId, attempt); each candidate list is
 * canonical (sorted by id, no duplicates, positive integer weights, the miss last); each pick
 * equals pickPrize(candidates, value); attempts are numbered 1..n; every attempt but the last
 * lost its race; the final prizeId is the last pick, unless `fallback` is true, in which case
 * the last attempt picked a prize that lost its race or nothing could be picked, and prizeId is
 * the fallback prize. What it cannot check: the stock and weights the candidates claim, and the
 * fallback prize's id (both come from the campaign, not the proof).
 */
export function verifyDrawProof(proof: DrawProof): { ok: boolean; problems: string[] } {
  const problems: string[] = [];
  const seed = proof.seed;
  let seedOk = false;
  if (seed === null) {
    problems.push('seed: not revealed, the draw cannot be recomputed yet');
  } else {
    try {
      const commitment = seedCommitment(seed);
      if (commitment !== proof.seedCommitment.toLowerCase()) {
        problems.push(`seed: SHA-256 of the revealed seed is ${commitment}, not the commitment ${proof.seedCommitment}`);
      } else {
        seedOk = true;
      }
    } catch (e) {
      problems.push(`seed: ${(e as Error).message}`);
    }
  }

  const attempts = proof.attempts;
  if (attempts.length === 0) problems.push('attempts: none recorded');
  let lastDrawn: PrizeWeight | null | undefined; // undefined: not computable
  attempts.forEach((a, i) => {
    const at = `attempt ${i + 1}`;
    if (a.attempt !== i + 1) problems.push(`${at}: numbered ${a.attempt}, attempts must be numbered 1..n`);
    if (seedOk && seed !== null && Number.isSafeInteger(a.attempt) && a.attempt >= 1) {
      const d = drawValue(seed, proof.claimId, a.attempt);
      if (d.hmac !== a.hmac.toLowerCase()) problems.push(`${at}: hmac is ${a.hmac}, recomputed ${d.hmac}`);
      if (d.value !== a.value) problems.push(`${at}: value is ${a.value}, recomputed ${d.value}`);
    }
    const candidateProblem = canonicalProblem(a.candidates);
    if (candidateProblem !== null) problems.push(`${at}: candidates ${candidateProblem}`);
    let drawn: PrizeWeight | null | undefined;
    try {
      drawn = pickPrize(a.candidates, a.value);
      const expected = drawn === null ? null : drawn.prizeId;
      if (expected !== a.picked) {
        problems.push(`${at}: picked ${JSON.stringify(a.picked)}, but value ${a.value} over these candidates picks ${drawn === null ? 'nothing (total weight 0)' : JSON.stringify(expected)}`);
      }
    } catch (e) {
      problems.push(`${at}: cannot pick: ${(e as Error).message}`);
    }
    const last = i === attempts.length - 1;
    if (a.lostRace === true && a.picked === null) problems.push(`${at}: marked lostRace but picked no prize (a miss cannot lose a race)`);
    if (!last && a.lostRace !== true) problems.push(`${at}: followed by another attempt but not marked lostRace`);
    if (last) lastDrawn = drawn;
  });

  const last = attempts[attempts.length - 1];
  if (last !== undefined) {
    if (!proof.fallback) {
      if (last.lostRace === true) problems.push(`prizeId: the last attempt lost its race, so the claim must be a fallback`);
      else if (lastDrawn === null) problems.push(`prizeId: nothing could be picked in the last attempt, so the claim must be a fallback`);
      else if (proof.prizeId !== last.picked) problems.push(`prizeId: ${JSON.stringify(proof.prizeId)} is not the last attempt's pick ${JSON.stringify(last.picked)}`);
    } else {
      const raceLost = last.lostRace === true && last.picked !== null;
      if (!raceLost && lastDrawn !== null) {
        problems.push(`fallback: the last attempt picked ${JSON.stringify(last.picked)} without losing a race, so no fallback was due`);
      }
      if (proof.prizeId === null) problems.push('prizeId: a fallback claim must name the fallback prize');
    }
  }
  return { ok: problems.length === 0, problems };
}

/** Why a candidate list is not what canonicalCandidates would produce, or null. */
function canonicalProblem(candidates: PrizeWeight[]): string | null {
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    if (!Number.isSafeInteger(c.weight) || c.weight <= 0) return `are not canonical: weight of ${JSON.stringify(c.prizeId)} is ${c.weight}, not a positive integer`;
    if (c.prizeId === null) {
      if (i !== candidates.length - 1) return 'are not canonical: the miss must come last';
      continue;
    }
    const prev = candidates[i - 1];
    if (prev !== undefined && prev.prizeId !== null && !(prev.prizeId < c.prizeId)) {
      return `are not canonical: order ${JSON.stringify(prev.prizeId)} before ${JSON.stringify(c.prizeId)} (ids must be strictly increasing)`;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Statistics (used by tests to accept the configured weights)

/**
 * Pearson's chi-square goodness of fit. `expected` are counts (same total as `observed`);
 * df = categories − 1. Categories expected 0 and observed 0 are dropped; one expected 0 but
 * observed > 0 gives statistic Infinity and pValue 0. pValue = Q(df/2, statistic/2).
 */
export function chiSquare(observed: number[], expected: number[]): { statistic: number; df: number; pValue: number } {
  if (observed.length !== expected.length) throw new RangeError('observed and expected must have the same length');
  let statistic = 0;
  let categories = 0;
  for (let i = 0; i < observed.length; i++) {
    const o = observed[i]!;
    const e = expected[i]!;
    if (!(e >= 0) || !(o >= 0)) throw new RangeError(`counts must be non-negative (category ${i})`);
    if (e === 0) {
      if (o > 0) statistic = Infinity;
      if (o === 0) continue;
    } else {
      statistic += ((o - e) * (o - e)) / e;
    }
    categories++;
  }
  const df = categories - 1;
  if (df < 1) throw new RangeError('chi-square needs at least two categories');
  return { statistic, df, pValue: statistic === Infinity ? 0 : gammaQ(df / 2, statistic / 2) };
}

/**
 * The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a), a > 0, x ≥ 0:
 * a series for x < a + 1, a continued fraction (modified Lentz) otherwise (Numerical Recipes §6.2).
 */
export function gammaQ(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) throw new RangeError(`gammaQ needs a > 0 and x ≥ 0, got a=${a}, x=${x}`);
  if (x === 0) return 1;
  if (x === Infinity) return 0;
  return x < a + 1 ? 1 - gammaPSeries(a, x) : gammaQContinuedFraction(a, x);
}

const ITMAX = 10_000;
const EPS = 1e-15;
const FPMIN = 1e-300;

function gammaPSeries(a: number, x: number): number {
  let ap = a;
  let sum = 1 / a;
  let del = sum;
  for (let n = 0; n < ITMAX; n++) {
    ap += 1;
    del *= x / ap;
    sum += del;
    if (Math.abs(del) < Math.abs(sum) * EPS) break;
  }
  return sum * Math.exp(-x + a * Math.log(x) - lnGamma(a));
}

function gammaQContinuedFraction(a: number, x: number): number {
  let b = x + 1 - a;
  let c = 1 / FPMIN;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < ITMAX; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < FPMIN) d = FPMIN;
    c = b + an / c;
    if (Math.abs(c) < FPMIN) c = FPMIN;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) break;
  }
  return Math.exp(-x + a * Math.log(x) - lnGamma(a)) * h;
}

// Lanczos approximation (g = 7, n = 9), about 15 significant digits for a > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

function lnGamma(z: number): number {
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - lnGamma(1 - z);
  const x = z - 1;
  let s = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i++) s += LANCZOS[i]! / (x + i);
  const t = x + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(s);
}
