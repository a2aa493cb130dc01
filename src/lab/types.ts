// The race lab's data: the history every worker records, the database snapshot taken after a
// run, the checkers' verdicts and one result row per strategy x backend.

/** invoke: a request was sent; ok: a claim was issued (201, replayed or not); fail: a definite
 * refusal or an error that issued nothing; unknown: the outcome could not be learned. An invoke
 * with no completion (its worker was killed) counts as unknown. */
export type OpType = 'invoke' | 'ok' | 'fail' | 'unknown';

export interface HistoryEvent {
  type: OpType;
  /** operation id, unique in a run; the invoke and its completion share it */
  op: number;
  worker: number;
  /** ms since the run started (one clock for every worker: the driver's start instant in epoch ms is subtracted from Date.now()) */
  t: number;
  campaignId: string;
  userId: string;
  /** Idempotency-Key, or null */
  key: string | null;
  /** completions: the HTTP status of the answer (0 when none came) */
  status?: number;
  /** ok: the claim id */
  claimId?: string;
  /** fail: the error code (SOLD_OUT, USER_LIMIT_REACHED, UNAVAILABLE, …) */
  code?: string;
  /** the answer was a stored one (Idempotent-Replayed) */
  replayed?: boolean;
  /** attempts the strategy retried (optimistic conflicts, deadlocks, stale fences) */
  retries?: number;
  /** ok with a lock-based strategy: the fence that authorized the write and its resource */
  fence?: string;
  fenceResource?: string;
  /** ms since the run started when that write committed (the lock still held) */
  fenceAt?: number;
  /** the answer body, for replay comparisons (ok and fail) */
  body?: unknown;
  /** unknown/fail: what went wrong */
  error?: string;
}

export interface SnapshotClaim {
  id: string;
  userId: string;
  utcDay: string;
  idemKey: string | null;
}

/** What the database holds for the campaign after the run. */
export interface LabSnapshot {
  campaignId: string;
  stock: number;
  issued: number;
  perUserLimit: number;
  perUserDailyLimit: number | null;
  claims: SnapshotClaim[];
}

export interface CheckResult {
  name: string;
  ok: boolean;
  /** how many violations (0 when ok) */
  violations: number;
  /** a short human explanation of what failed, with a few example ids */
  message: string;
}

/** One strategy x backend x worker-count run of a scenario. The first fields are the JSON
 * contract of `allot lab --json`. */
export interface LabRow {
  strategy: string;
  backend: string;
  requests: number;
  ok: number;
  soldOut: number;
  userLimit: number;
  /** claims in the database beyond the stock (0 when issued <= stock) */
  oversold: number;
  /** claims beyond a user's limit (total or daily), summed over users */
  duplicates: number;
  /** acknowledged claims (ok) that the database does not hold */
  lostAcks: number;
  retries: number;
  claimsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  scenario: string;
  /** answered requests (any outcome) per second over the run's span: what a strategy costs
   * when the stock, not the strategy, limits claims/s */
  requestsPerSec: number;
  workers: number;
  /** other refusals and errors that issued nothing (503, CAMPAIGN_NOT_ACTIVE, …) */
  errors: number;
  unknown: number;
  stock: number;
  issued: number;
  claimsInDb: number;
  durationMs: number;
  /** faults injected during the run, as given on the command line */
  faults: string[];
  /** true when this strategy is expected to violate here (unsafe strategies) */
  unsafe: boolean;
  /** every checker passed */
  passed: boolean;
  checks: CheckResult[];
  /** issued over time: [ms since start, cumulative ok], at most ~200 points */
  timeline: Array<[number, number]>;
}

export interface LabReport {
  scenario: string;
  description: string;
  startedAt: string;
  rows: LabRow[];
}
