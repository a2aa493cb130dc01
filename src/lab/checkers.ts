// The race lab's verdicts: checks a recorded history and the database snapshot taken after the
// run against the invariants of DESIGN section 1, plus the latency/throughput figures of a run.
import { isDeepStrictEqual } from 'node:util';
import type { CheckResult, HistoryEvent, LabSnapshot, SnapshotClaim } from './types.ts';

export interface RunVerdict {
  checks: CheckResult[];
  /** claims in the database beyond the stock */
  oversold: number;
  /** claims beyond a user's limit (total or daily, whichever is larger), summed over users */
  duplicates: number;
  /** distinct acknowledged claim ids the database does not hold */
  lostAcks: number;
}

const EXAMPLES = 3;

/** Checks one campaign's run; events of other campaigns are ignored. */
export function checkRun(history: HistoryEvent[], snap: LabSnapshot): RunVerdict {
  const events = history.filter((e) => e.campaignId === snap.campaignId);
  const claimIds = new Set(snap.claims.map((c) => c.id));

  const stock = checkStock(snap);
  const counter = checkCounter(snap);
  const limits = checkUserLimits(snap);
  const acked = checkAckedDurable(events, claimIds);
  const checks: CheckResult[] = [
    stock.result,
    counter,
    limits.total,
    limits.daily,
    acked.result,
    checkNoPhantoms(events, snap.claims),
    checkIdempotentReplays(events),
    checkFences(events),
  ];
  return { checks, oversold: stock.oversold, duplicates: limits.duplicates, lostAcks: acked.lostAcks };
}

function result(name: string, violations: number, okMessage: string, failMessage: () => string): CheckResult {
  return violations === 0
    ? { name, ok: true, violations: 0, message: okMessage }
    : { name, ok: false, violations, message: failMessage() };
}

function examples(ids: Iterable<string>): string {
  const picked: string[] = [];
  for (const id of ids) {
    if (picked.length === EXAMPLES) {
      picked.push('…');
      break;
    }
    picked.push(id);
  }
  return picked.join(', ');
}

function bump<K>(map: Map<K, number>, key: K, by = 1): number {
  const n = (map.get(key) ?? 0) + by;
  map.set(key, n);
  return n;
}

function checkStock(snap: LabSnapshot): { result: CheckResult; oversold: number } {
  const oversold = Math.max(0, snap.claims.length - snap.stock);
  const counterOver = snap.issued > snap.stock ? 1 : 0;
  const res = result('issued<=stock', oversold + counterOver, `${snap.claims.length} claims, issued ${snap.issued}, stock ${snap.stock}`, () => {
    const parts: string[] = [];
    if (oversold > 0) parts.push(`${snap.claims.length} claims for a stock of ${snap.stock} (${oversold} oversold)`);
    if (counterOver) parts.push(`issued counter ${snap.issued} exceeds stock ${snap.stock}`);
    return parts.join('; ');
  });
  return { result: res, oversold };
}

// issued + remaining = stock only means something if the counter agrees with the rows; a naive
// read-modify-write strategy loses counter updates and shows up here.
function checkCounter(snap: LabSnapshot): CheckResult {
  const diff = Math.abs(snap.issued - snap.claims.length);
  return result('issued=claims', diff, `issued counter ${snap.issued} matches ${snap.claims.length} claim rows`, () => `issued counter ${snap.issued} but ${snap.claims.length} claim rows (off by ${diff})`);
}

function checkUserLimits(snap: LabSnapshot): { total: CheckResult; daily: CheckResult; duplicates: number } {
  const perUser = new Map<string, number>();
  const perDay = new Map<string, Map<string, number>>();
  for (const c of snap.claims) {
    bump(perUser, c.userId);
    let days = perDay.get(c.userId);
    if (!days) perDay.set(c.userId, (days = new Map()));
    bump(days, c.utcDay);
  }

  let totalExcess = 0;
  const totalUsers: string[] = [];
  let dailyExcess = 0;
  const dailyExamples: string[] = [];
  let duplicates = 0;
  const dailyLimit = snap.perUserDailyLimit;
  for (const [user, n] of perUser) {
    const over = Math.max(0, n - snap.perUserLimit);
    if (over > 0) {
      totalExcess += over;
      totalUsers.push(`${user} (${n})`);
    }
    let overDaily = 0;
    if (dailyLimit !== null) {
      for (const [day, d] of perDay.get(user) ?? []) {
        const x = Math.max(0, d - dailyLimit);
        if (x > 0) {
          overDaily += x;
          dailyExamples.push(`${user}@${day} (${d})`);
        }
      }
    }
    dailyExcess += overDaily;
    // A claim beyond both limits is one duplicate, not two.
    duplicates += Math.max(over, overDaily);
  }

  const total = result('per-user-limit', totalExcess, `no user holds more than ${snap.perUserLimit} claim(s)`, () => `${totalExcess} claim(s) beyond the per-user limit ${snap.perUserLimit}: ${examples(totalUsers)}`);
  const daily =
    dailyLimit === null
      ? { name: 'per-user-daily-limit', ok: true, violations: 0, message: 'no daily limit' }
      : result('per-user-daily-limit', dailyExcess, `no user holds more than ${dailyLimit} claim(s) on one UTC day`, () => `${dailyExcess} claim(s) beyond the daily limit ${dailyLimit}: ${examples(dailyExamples)}`);
  return { total, daily, duplicates };
}

function checkAckedDurable(events: HistoryEvent[], claimIds: Set<string>): { result: CheckResult; lostAcks: number } {
  const lost = new Set<string>();
  const acked = new Set<string>();
  const withoutId: number[] = [];
  for (const e of events) {
    if (e.type !== 'ok') continue;
    if (e.claimId === undefined) {
      withoutId.push(e.op);
      continue;
    }
    acked.add(e.claimId);
    if (!claimIds.has(e.claimId)) lost.add(e.claimId);
  }
  const res = result('acked-durable', lost.size + withoutId.length, `all ${acked.size} acknowledged claims are in the database`, () => {
    const parts: string[] = [];
    if (lost.size > 0) parts.push(`${lost.size} acknowledged claim(s) missing from the database: ${examples(lost)}`);
    if (withoutId.length > 0) parts.push(`${withoutId.length} ok answer(s) without a claim id (ops ${examples(withoutId.map(String))})`);
    return parts.join('; ');
  });
  return { result: res, lostAcks: lost.size };
}

/** Operations whose outcome nobody learned: an `unknown` completion, or an invoke never completed. */
function unknownOps(events: HistoryEvent[]): HistoryEvent[] {
  const invokes = new Map<number, HistoryEvent>();
  const out: HistoryEvent[] = [];
  for (const e of events) {
    if (e.type === 'invoke') invokes.set(e.op, e);
    else if (e.type === 'unknown') out.push(e);
  }
  for (const e of events) if (e.type !== 'invoke') invokes.delete(e.op);
  for (const e of invokes.values()) out.push(e);
  return out;
}

function checkNoPhantoms(events: HistoryEvent[], claims: SnapshotClaim[]): CheckResult {
  const acked = new Set<string>();
  const refusedUsers = new Set<string>();
  for (const e of events) {
    if (e.type === 'ok' && e.claimId !== undefined) acked.add(e.claimId);
    else if (e.type === 'fail') refusedUsers.add(e.userId);
  }

  // Budgets of unknown ops: per (user, key) for keyed claims, and per user for any claim. Each op
  // explains at most one claim. Matching keyed claims first is optimal: they can only use their
  // own (user, key) ops, while keyless claims can use any op of the user.
  const byUserKey = new Map<string, number>();
  const byUser = new Map<string, number>();
  for (const op of unknownOps(events)) {
    bump(byUser, op.userId);
    if (op.key !== null) bump(byUserKey, userKey(op.userId, op.key));
  }
  const unacked = claims.filter((c) => !acked.has(c.id));
  const phantoms: SnapshotClaim[] = [];
  const keyless: SnapshotClaim[] = [];
  for (const c of unacked) {
    if (c.idemKey === null) {
      keyless.push(c);
      continue;
    }
    const uk = userKey(c.userId, c.idemKey);
    if ((byUserKey.get(uk) ?? 0) > 0 && (byUser.get(c.userId) ?? 0) > 0) {
      bump(byUserKey, uk, -1);
      bump(byUser, c.userId, -1);
    } else phantoms.push(c);
  }
  for (const c of keyless) {
    if ((byUser.get(c.userId) ?? 0) > 0) bump(byUser, c.userId, -1);
    else phantoms.push(c);
  }

  const explained = unacked.length - phantoms.length;
  return result('no-phantom-claims', phantoms.length, `every claim was acknowledged${explained > 0 ? ` or belongs to one of ${explained} op(s) of unknown outcome` : ''}`, () => {
    const refused = phantoms.filter((c) => refusedUsers.has(c.userId)).length;
    return `${phantoms.length} claim(s) in the database that no client was told about${refused > 0 ? ` (${refused} for users who were refused)` : ''}: ${examples(phantoms.map((c) => `${c.id} (${c.userId})`))}`;
  });
}

// NUL cannot occur in an Idempotency-Key (printable ASCII only), so the pair is unambiguous.
function userKey(userId: string, key: string): string {
  return `${userId}\u0000${key}`;
}

// Answers the service never stores under a key, so a retry may legitimately differ: transport
// errors and 5xx give the key back, IN_PROGRESS and KEY_REUSED refuse without deciding.
const NOT_STORED_CODES = new Set(['IDEMPOTENCY_IN_PROGRESS', 'IDEMPOTENCY_KEY_REUSED', 'UNAVAILABLE', 'INTERNAL']);

function isStoredAnswer(e: HistoryEvent): boolean {
  if (e.type === 'ok') return true;
  if (e.status === undefined || e.status === 0 || e.status >= 500) return false;
  return e.code === undefined || !NOT_STORED_CODES.has(e.code);
}

function checkIdempotentReplays(events: HistoryEvent[]): CheckResult {
  const first = new Map<string, HistoryEvent>();
  const mismatched = new Map<string, string>();
  let keyed = 0;
  for (const e of events) {
    if ((e.type !== 'ok' && e.type !== 'fail') || e.key === null || !isStoredAnswer(e)) continue;
    keyed++;
    const id = userKey(e.userId, e.key);
    const seen = first.get(id);
    if (!seen) {
      first.set(id, e);
      continue;
    }
    if (mismatched.has(id)) continue;
    if (seen.type !== e.type || seen.status !== e.status || !isDeepStrictEqual(seen.body, e.body)) {
      mismatched.set(id, `${e.key} (${e.userId}: ${seen.status ?? '?'} vs ${e.status ?? '?'})`);
    }
  }
  return result('idempotent-replays', mismatched.size, `${first.size} key(s) over ${keyed} keyed answer(s), each with one outcome`, () => `${mismatched.size} key(s) answered differently: ${examples(mismatched.values())}`);
}

// Ordered by completion time: an op that completed later with a lower fence than one completed
// strictly earlier wrote with a stale token. Ties in `t` are not ordered. Replays carry no fresh
// write, so they are skipped.
function checkFences(events: HistoryEvent[]): CheckResult {
  const byResource = new Map<string, Array<{ t: number; fence: bigint; op: number }>>();
  let fenced = 0;
  for (const e of events) {
    if (e.type !== 'ok' || e.fence === undefined || e.fenceResource === undefined || e.replayed) continue;
    let fence: bigint;
    try {
      fence = BigInt(e.fence);
    } catch {
      continue;
    }
    fenced++;
    let list = byResource.get(e.fenceResource);
    if (!list) byResource.set(e.fenceResource, (list = []));
    // The commit instant, taken while the lock was still held, orders fenced writes; completion
    // time (after the release) can invert two quick holders.
    list.push({ t: e.fenceAt ?? e.t, fence, op: e.op });
  }
  if (fenced === 0) return { name: 'fences-monotonic', ok: true, violations: 0, message: 'no fenced writes recorded' };

  const stale: string[] = [];
  for (const [resource, list] of byResource) {
    list.sort((a, b) => a.t - b.t);
    let maxBefore: { fence: bigint; op: number } | null = null;
    let i = 0;
    while (i < list.length) {
      const t = list[i]!.t;
      let j = i;
      while (j < list.length && list[j]!.t === t) j++;
      let groupMax: { fence: bigint; op: number } | null = maxBefore as { fence: bigint; op: number } | null;
      for (let k = i; k < j; k++) {
        const w = list[k]!;
        if (maxBefore !== null && w.fence < maxBefore.fence) stale.push(`op ${w.op} fence ${w.fence} after ${maxBefore.fence} on ${resource}`);
        if (groupMax === null || w.fence > groupMax.fence) groupMax = { fence: w.fence, op: w.op };
      }
      maxBefore = groupMax;
      i = j;
    }
  }
  return result('fences-monotonic', stale.length, `${fenced} fenced write(s) on ${byResource.size} resource(s), fences increasing`, () => `${stale.length} write(s) accepted with a stale fence: ${examples(stale)}`);
}

function completions(history: HistoryEvent[]): { invokeT: Map<number, number>; done: HistoryEvent[] } {
  const invokeT = new Map<number, number>();
  const done: HistoryEvent[] = [];
  for (const e of history) {
    if (e.type === 'invoke') invokeT.set(e.op, e.t);
    else done.push(e);
  }
  return { invokeT, done };
}

/** Nearest-rank percentiles of invoke→completion times; ops never completed are left out. */
export function latencyStats(history: HistoryEvent[]): { p50Ms: number; p99Ms: number } {
  const { invokeT, done } = completions(history);
  const lat: number[] = [];
  for (const e of done) {
    const t0 = invokeT.get(e.op);
    if (t0 !== undefined) lat.push(e.t - t0);
  }
  if (lat.length === 0) return { p50Ms: 0, p99Ms: 0 };
  lat.sort((a, b) => a - b);
  const pick = (p: number) => lat[Math.min(lat.length - 1, Math.max(0, Math.ceil(p * lat.length) - 1))]!;
  return { p50Ms: pick(0.5), p99Ms: pick(0.99) };
}

/** ok events in completion order, one per claim (a replayed answer issues nothing new). */
function issuedInOrder(history: HistoryEvent[]): number[] {
  const seen = new Set<string>();
  const times: number[] = [];
  for (const e of history) {
    if (e.type !== 'ok') continue;
    if (e.claimId !== undefined) {
      if (seen.has(e.claimId)) continue;
      seen.add(e.claimId);
    }
    times.push(e.t);
  }
  return times.sort((a, b) => a - b);
}

/** Claims issued per second, over the span from the first invoke to the last completion. */
export function throughput(history: HistoryEvent[]): number {
  const issued = issuedInOrder(history).length;
  if (issued === 0) return 0;
  let start = Infinity;
  let end = -Infinity;
  for (const e of history) {
    if (e.type === 'invoke') start = Math.min(start, e.t);
    else end = Math.max(end, e.t);
  }
  if (!Number.isFinite(start) || !Number.isFinite(end)) return 0;
  return issued / (Math.max(1, end - start) / 1000);
}

/** [ms, cumulative claims issued], at most maxPoints points, the last one always included. */
export function timeline(history: HistoryEvent[], maxPoints = 200): Array<[number, number]> {
  const times = issuedInOrder(history);
  const points: Array<[number, number]> = [];
  for (let i = 0; i < times.length; i++) {
    const t = times[i]!;
    // One point per millisecond: the count at its end.
    if (points.length > 0 && points[points.length - 1]![0] === t) points[points.length - 1]![1] = i + 1;
    else points.push([t, i + 1]);
  }
  const limit = Math.max(2, Math.floor(maxPoints));
  if (points.length <= limit) return points;
  const out: Array<[number, number]> = [];
  for (let i = 0; i < limit; i++) out.push(points[Math.round((i * (points.length - 1)) / (limit - 1))]!);
  return out;
}
