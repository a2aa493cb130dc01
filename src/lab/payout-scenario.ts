// The lab's `red-packet-withdrawal` scenario (field report 2): one user's red packet, 1,000
// withdrawal requests in about 1 s over N worker processes, against the seed's three stages and
// against allot's withdrawal. The payments are counted in the DATABASE (the seeds' `payments`
// rows, allot's `withdrawals` rows and ledger) and compared with what the workers' histories say
// was acknowledged.
//
// Each backend gets the lab's own namespace (a PostgreSQL schema or MariaDB database `lab_<id>`,
// src/lab/backends.ts, dropped at the end) holding the service's tables plus the seed's
// `participating` and `payments`; each design runs on a user of its own there.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { childModule } from '../adapters/system/child-module.ts';
import { connectSql, type SqlConnection } from '../adapters/sql/connect.ts';
import { AllotService } from '../service/service.ts';
import { closeLabServers, openLabDatabase, type LabDatabase } from './backends.ts';
import { shuffled } from './scenarios.ts';
import type { PayoutDesign, PayoutEvent, PayoutJob, PayoutOp, PayoutWorkerMessage } from './payout-worker.ts';
import type { CheckResult } from './types.ts';

// payout-worker.ts under tsx, or payout-worker.js from dist/ (as src/lab/driver.ts does).
const WORKER = childModule(import.meta.url, './payout-worker');
const ASSET = 'CNY';

export type PayoutBackend = 'postgres' | 'mysql';

export const PAYOUT_SCENARIO = {
  name: 'red-packet-withdrawal',
  description: 'One user\'s red packet, 1,000 withdrawal requests in about 1 s (ab -n 1000) over N processes: the seed\'s naive status flag, its in-process mutex (1 and N processes) and its guarded update, then allot\'s withdrawal (one key with repeats among distinct keys; 30 keys on 10 packets); payments counted in the database.',
  report: '2. Red-packet withdrawal',
  backends: ['postgres'] as PayoutBackend[],
};

export const DEFAULT_PAYOUT_WORKERS = 4;

export interface PayoutRun {
  /** stable id: naive, mutex-1, mutex-n, guarded, allot-one-key, allot-keys */
  id: string;
  /** the table's label */
  design: string;
  kind: PayoutDesign;
  workers: number;
  /** openid: the seeds' requests carry the openid alone; one-key: half the requests repeat
   * key k-1, the others each have a key of their own; many-keys: `manyKeys` keys, repeated */
  keys: 'openid' | 'one-key' | 'many-keys';
  /** allot: the balance, in red packets */
  packets: number;
  /** expected to pay more than once (the seed's broken stages) */
  unsafe: boolean;
}

export function payoutRuns(workers: number, manyKeys = 30, packets = 10): PayoutRun[] {
  const procs = (n: number) => `${n} process${n === 1 ? '' : 'es'}`;
  return [
    { id: 'naive', design: 'stage 1 naive status flag', kind: 'naive', workers, keys: 'openid', packets: 1, unsafe: true },
    { id: 'mutex-1', design: 'stage 2 mutex ×1 process', kind: 'mutex', workers: 1, keys: 'openid', packets: 1, unsafe: false },
    { id: 'mutex-n', design: `stage 2 mutex ×${procs(workers)}`, kind: 'mutex', workers, keys: 'openid', packets: 1, unsafe: workers > 1 },
    { id: 'guarded', design: 'stage 3 guarded update', kind: 'guarded', workers, keys: 'openid', packets: 1, unsafe: false },
    { id: 'allot-one-key', design: 'allot withdrawal (one key + repeats)', kind: 'allot', workers, keys: 'one-key', packets: 1, unsafe: false },
    { id: 'allot-keys', design: `allot withdrawal (${manyKeys} keys)`, kind: 'allot', workers, keys: 'many-keys', packets, unsafe: false },
  ];
}

export interface PayoutLabOptions {
  /** worker processes per run (default 4; stage 2 also runs on 1) */
  workers?: number;
  backends?: PayoutBackend[];
  /** server URLs; a throwaway server is started for a backend without one */
  databaseUrls?: Partial<Record<PayoutBackend, string>>;
  /** where histories go */
  outDir: string;
  /** requests per run (default 1,000) */
  requests?: number;
  /** over how long they are spread (default 1,000 ms) */
  spreadMs?: number;
  /** the seeds' business logic between read and update (default 15 ms: with 5 ms, on a loaded 2-core machine, stage 1 sometimes paid only once) */
  thinkMs?: number;
  /** the red packet in minor units (default 888) */
  amount?: number;
  /** distinct keys of the allot-keys run (default 30) */
  manyKeys?: number;
  /** the allot-keys run's balance in red packets (default 10) */
  packets?: number;
  /** only these runs (ids of payoutRuns) */
  runs?: string[];
  /** a run stops (its workers killed) after this long (default 60 s) */
  runTimeoutMs?: number;
  onProgress?(done: number, total: number): void;
  log?(line: string): void;
}

/** One design x backend. The first fields are the `--json` contract. */
export interface PayoutRow {
  design: string;
  workers: number;
  requests: number;
  /** payments in the database (seed: payments rows; allot: withdrawals rows) */
  paid: number;
  /** distinct keys among the requests (the seeds: the openid alone, 1) */
  distinctKeys: number;
  /** the most that may be paid: min(distinct keys, balance / amount) */
  expectedMax: number;
  verdict: 'safe' | 'VIOLATION';
  checks: CheckResult[];
  run: string;
  kind: PayoutDesign;
  backend: PayoutBackend;
  scenario: string;
  /** expected to violate (the seed's broken stages) */
  unsafe: boolean;
  amount: number;
  /** what the user could take in all (a red packet; allot: the funded balance) */
  funded: number;
  paidAmount: number;
  /** allot: the available balance after the run */
  available: number | null;
  /** 201 answers, replays included */
  acked: number;
  replayed: number;
  /** 409 INSUFFICIENT_FUNDS (allot), NOT_WITHDRAWABLE / ALREADY_WITHDRAWN (seeds) */
  refused: number;
  /** 409 IDEMPOTENCY_IN_PROGRESS: a repeat arrived while its key was in flight (not a payment) */
  inProgress: number;
  /** other refusals and errors that paid nothing */
  errors: number;
  /** no answer could be learned */
  unknown: number;
  p50Ms: number;
  p99Ms: number;
  durationMs: number;
  historyDir: string;
}

export interface PayoutReport {
  scenario: string;
  description: string;
  startedAt: string;
  rows: PayoutRow[];
}

// ---- checkers ---------------------------------------------------------------------------

/** What the database holds for the run's user. */
export interface PayoutSnapshot {
  kind: 'seed' | 'allot';
  userId: string;
  /** one withdrawal (a red packet) */
  amount: number;
  /** what the user could take in all */
  funded: number;
  /** seeds: payments rows (key null: the openid is the key); allot: withdrawals rows */
  payments: Array<{ id: string; key: string | null; amount: number }>;
  /** allot: available balance */
  available: number | null;
  /** allot: payouts.audit() */
  audit: { ok: boolean; failed: string[] } | null;
}

function groupCount<T>(xs: T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    const list = m.get(k);
    if (list) list.push(x);
    else m.set(k, [x]);
  }
  return m;
}

const few = (xs: string[]): string => `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? ', …' : ''}`;

/** The run's checks: paid-at-most-once-per-key, never-beyond-balance, acked-durable, and for
 * allot idempotent-replays and ledger-balanced. */
export function checkPayoutRun(history: PayoutEvent[], snap: PayoutSnapshot, expectedMax: number): CheckResult[] {
  const events = history.filter((e) => e.userId === snap.userId);
  const oks = events.filter((e) => e.type === 'ok');
  const checks: CheckResult[] = [];

  // paid-at-most-once-per-key: at most one payment per key in the database, and every 201 of
  // one key names the same payment.
  {
    const dbByKey = groupCount(snap.payments, (p) => p.key ?? snap.userId);
    const ackByKey = new Map<string, Set<string>>();
    for (const e of oks) {
      const set = ackByKey.get(e.key) ?? new Set<string>();
      set.add(e.paymentId!);
      ackByKey.set(e.key, set);
    }
    const bad: string[] = [];
    let violations = 0;
    for (const k of new Set([...dbByKey.keys(), ...ackByKey.keys()])) {
      const n = Math.max(dbByKey.get(k)?.length ?? 0, ackByKey.get(k)?.size ?? 0);
      if (n > 1) {
        violations += n - 1;
        bad.push(`${k} paid ${n} times`);
      }
    }
    checks.push({ name: 'paid-at-most-once-per-key', ok: violations === 0, violations, message: violations === 0 ? `${snap.payments.length} payment(s), at most one per key` : `${few(bad)} (payments ${few(snap.payments.map((p) => p.id))})` });
  }

  // never-beyond-balance: no more payments than the balance covers (and the keys allow), their
  // sum within what was funded, the balance never negative.
  {
    const total = snap.payments.reduce((a, p) => a + p.amount, 0);
    const over = Math.max(0, snap.payments.length - expectedMax);
    const negative = snap.available !== null && snap.available < 0;
    const ok = over === 0 && total <= snap.funded && !negative;
    const why = [
      over > 0 ? `${snap.payments.length} payments where at most ${expectedMax} may be` : '',
      total > snap.funded ? `${total} paid out of ${snap.funded}` : '',
      negative ? `available balance ${snap.available}` : '',
    ].filter(Boolean);
    checks.push({ name: 'never-beyond-balance', ok, violations: ok ? 0 : Math.max(1, over), message: ok ? `${total} of ${snap.funded} paid out` : why.join('; ') });
  }

  // acked-durable: every 201 names a payment the database holds.
  {
    const ids = new Set(snap.payments.map((p) => p.id));
    const lost = [...new Set(oks.map((e) => e.paymentId!).filter((id) => !ids.has(id)))];
    checks.push({ name: 'acked-durable', ok: lost.length === 0, violations: lost.length, message: lost.length === 0 ? `${oks.length} acknowledgement(s), all in the database` : `acknowledged but not in the database: ${few(lost)}` });
  }

  if (snap.kind === 'allot') {
    // idempotent-replays: every definite answer of one key is the same one (its withdrawal, or
    // its refusal); IDEMPOTENCY_IN_PROGRESS (a repeat while the key is in flight) and errors
    // that changed nothing (UNAVAILABLE, unknown) are not answers.
    const notAnswers = new Set(['IDEMPOTENCY_IN_PROGRESS', 'UNAVAILABLE', 'ERROR']);
    const outcomes = new Map<string, Set<string>>();
    for (const e of events) {
      const o = e.type === 'ok' ? `201 ${e.paymentId}` : e.type === 'fail' && !notAnswers.has(e.code ?? '') ? `${e.status} ${e.code}` : null;
      if (o === null) continue;
      const set = outcomes.get(e.key) ?? new Set<string>();
      set.add(o);
      outcomes.set(e.key, set);
    }
    const mixed = [...outcomes].filter(([, s]) => s.size > 1).map(([k, s]) => `${k}: ${[...s].join(' / ')}`);
    checks.push({ name: 'idempotent-replays', ok: mixed.length === 0, violations: mixed.length, message: mixed.length === 0 ? `${outcomes.size} key(s), one answer each` : `keys answered differently: ${few(mixed)}` });

    const audit = snap.audit ?? { ok: false, failed: ['no audit'] };
    checks.push({ name: 'ledger-balanced', ok: audit.ok, violations: audit.ok ? 0 : Math.max(1, audit.failed.length), message: audit.ok ? 'payouts.audit() ok' : `payouts.audit() failed: ${audit.failed.join(', ')}` });
  }
  return checks;
}

// ---- the workload -------------------------------------------------------------------------

/** The request keys of a run, in sending order. */
export function payoutKeys(run: Pick<PayoutRun, 'keys'>, requests: number, openid: string, manyKeys = 30): string[] {
  if (run.keys === 'openid') return Array.from({ length: requests }, () => openid);
  // Even requests repeat k-1, odd ones have a key of their own (k-2, k-3, …).
  if (run.keys === 'one-key') return Array.from({ length: requests }, (_, i) => (i % 2 === 0 ? 'k-1' : `k-${(i + 3) / 2}`));
  return shuffled(Array.from({ length: requests }, (_, i) => `k-${(i % manyKeys) + 1}`));
}

// ---- worker processes ---------------------------------------------------------------------

const alive = (c: ChildProcess): boolean => c.exitCode === null && c.signalCode === null;

/** The next message of `type` from a worker; rejects on an "error" message or its exit. */
function waitMessage(child: ChildProcess, type: PayoutWorkerMessage['type']): Promise<PayoutWorkerMessage> {
  return new Promise((resolve, reject) => {
    if (!alive(child)) return reject(new Error(`payout lab worker exited (${child.signalCode ?? child.exitCode}) before "${type}"`));
    const stop = () => {
      child.off('message', on as never);
      child.off('exit', onExit);
    };
    const on = (m: PayoutWorkerMessage) => {
      if (m.type === type) {
        stop();
        resolve(m);
      } else if (m.type === 'error') {
        stop();
        reject(new Error(`payout lab worker failed: ${m.message}`));
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      stop();
      reject(new Error(`payout lab worker exited (${signal ?? code}) before "${type}"`));
    };
    child.on('message', on as never);
    child.once('exit', onExit);
  });
}

function exited(child: ChildProcess, ms: number): Promise<void> {
  if (!alive(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Worker processes, kept from one design to the next (each job opens and closes its own
 * connections; starting a TypeScript process costs seconds here, a design's run about one). */
class WorkerPool {
  private workers: ChildProcess[] = [];
  private closed = false;

  constructor(private readonly log: (s: string) => void) {}

  /** n live workers, forking what is missing. */
  take(n: number): ChildProcess[] {
    if (this.closed) throw new Error('the payout lab was stopped: no more worker processes');
    this.workers = this.workers.filter(alive);
    while (this.workers.length < n) {
      const c = fork(WORKER.path, [], { execArgv: WORKER.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      // An unread 'error' (a send to a worker that died) must not crash the lab.
      c.on('error', (err) => this.log(`payout lab worker ${c.pid}: ${err.message}`));
      this.workers.push(c);
    }
    return this.workers.slice(0, n);
  }

  /** SIGKILL these workers (a run that failed or passed its deadline) and wait for them. */
  async kill(children: ChildProcess[]): Promise<void> {
    for (const c of children) if (alive(c)) c.kill('SIGKILL');
    await Promise.all(children.map((c) => exited(c, 5_000)));
  }

  /** Asks every worker to exit, then kills what is left. */
  async close(): Promise<void> {
    this.closed = true;
    const all = this.workers;
    this.workers = [];
    for (const c of all) {
      if (alive(c) && c.connected) c.send({ type: 'exit' }, (err) => err && c.kill('SIGKILL'));
    }
    await Promise.all(all.map((c) => exited(c, 3_000)));
    await this.kill(all);
  }
}

function readHistory(files: string[]): PayoutEvent[] {
  const out: PayoutEvent[] = [];
  for (const f of files) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        out.push(JSON.parse(line) as PayoutEvent);
      } catch {
        // a line cut by a kill: its invoke was written whole before it
      }
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

function latency(history: PayoutEvent[]): { p50Ms: number; p99Ms: number } {
  const invoked = new Map<number, number>();
  for (const e of history) if (e.type === 'invoke') invoked.set(e.op, e.t);
  const lat = history.filter((e) => e.type !== 'invoke' && invoked.has(e.op)).map((e) => e.t - invoked.get(e.op)!).sort((a, b) => a - b);
  if (lat.length === 0) return { p50Ms: 0, p99Ms: 0 };
  const pick = (p: number) => lat[Math.min(lat.length - 1, Math.max(0, Math.ceil(p * lat.length) - 1))]!;
  return { p50Ms: pick(0.5), p99Ms: pick(0.99) };
}

// ---- one run --------------------------------------------------------------------------------

interface Settings {
  requests: number;
  spreadMs: number;
  thinkMs: number;
  amount: number;
  manyKeys: number;
  runTimeoutMs: number;
}

interface RunContext {
  backend: PayoutBackend;
  url: string;
  conn: SqlConnection;
  service: AllotService;
  pool: WorkerPool;
  settings: Settings;
  opts: PayoutLabOptions;
  doneSoFar: number;
  total: number;
}

async function createSeedTables(conn: SqlConnection): Promise<void> {
  // The field report's table, and the side effect that counts: one row per payment made.
  await sql.raw(`CREATE TABLE participating (
    openid varchar(100) NOT NULL PRIMARY KEY,
    hit integer NOT NULL,
    redpack bigint NOT NULL,
    status integer NOT NULL,
    order_id varchar(100) NULL
  )`).execute(conn.db);
  await sql.raw(`CREATE TABLE payments (
    id varchar(100) NOT NULL PRIMARY KEY,
    openid varchar(100) NOT NULL,
    amount bigint NOT NULL,
    op_id integer NOT NULL,
    worker integer NOT NULL,
    created_at bigint NOT NULL
  )`).execute(conn.db);
  await sql.raw('CREATE INDEX payments_openid ON payments (openid)').execute(conn.db);
}

async function snapshot(ctx: RunContext, run: PayoutRun, userId: string, funded: number): Promise<PayoutSnapshot> {
  const amount = ctx.settings.amount;
  if (run.kind !== 'allot') {
    const rows = (await sql<Record<string, unknown>>`SELECT id, amount FROM payments WHERE openid = ${userId}`.execute(ctx.conn.db)).rows;
    return { kind: 'seed', userId, amount, funded, payments: rows.map((r) => ({ id: String(r.id), key: null, amount: Number(String(r.amount)) })), available: null, audit: null };
  }
  const rows = (await sql<Record<string, unknown>>`SELECT id, idem_key, amount FROM withdrawals WHERE user_id = ${userId}`.execute(ctx.conn.db)).rows;
  const balance = (await ctx.service.payouts.balances(userId)).find((b) => b.asset === ASSET);
  const audit = await ctx.service.payouts.audit();
  return {
    kind: 'allot',
    userId,
    amount,
    funded,
    payments: rows.map((r) => ({ id: String(r.id), key: String(r.idem_key), amount: Number(String(r.amount)) })),
    available: balance ? Number(balance.available) : null,
    audit: { ok: audit.ok, failed: audit.checks.filter((c) => !c.ok).map((c) => `${c.name}${c.asset ? `(${c.asset})` : ''}`) },
  };
}

async function runDesign(ctx: RunContext, run: PayoutRun): Promise<PayoutRow> {
  const { opts, settings: s } = ctx;
  const log = opts.log ?? (() => undefined);
  const runId = `${run.id}-${run.workers}w-${randomBytes(3).toString('hex')}`;
  const dir = join(opts.outDir, runId);
  mkdirSync(dir, { recursive: true });
  const userId = run.kind === 'allot' ? `user-${runId}` : `openid-${runId}`;
  const keys = payoutKeys(run, s.requests, userId, s.manyKeys);
  const ops: PayoutOp[] = keys.map((key, i) => ({ op: i + 1, key, at: s.requests > 1 ? Math.round((i * s.spreadMs) / s.requests) : 0 }));
  const distinctKeys = new Set(keys).size;

  // The user's red packet: a participating row (seeds), or a funding (allot).
  const funded = s.amount * run.packets;
  const warmupUserId = `warmup-${runId}`;
  if (run.kind === 'allot') {
    await ctx.service.payouts.fund({ fundingId: `f-${runId}`, userId, asset: ASSET, amount: BigInt(funded) });
    await ctx.service.payouts.fund({ fundingId: `f-${warmupUserId}`, userId: warmupUserId, asset: ASSET, amount: 1_000_000n });
  } else {
    await sql`INSERT INTO participating (openid, hit, redpack, status, order_id) VALUES (${userId}, 1, ${s.amount}, 0, NULL)`.execute(ctx.conn.db);
  }
  const expectedMax = Math.min(distinctKeys, Math.floor(funded / s.amount));

  const workers = run.workers;
  const historyFiles = Array.from({ length: workers }, (_, w) => join(dir, `history-${w}.jsonl`));
  const progress = new Array<number>(workers).fill(0);
  const started = Date.now();
  const children = ctx.pool.take(workers);
  const onProgress = children.map((_, w) => (m: PayoutWorkerMessage) => {
    if (m.type !== 'progress' && m.type !== 'done') return;
    progress[w] = m.done;
    opts.onProgress?.(ctx.doneSoFar + progress.reduce((a, b) => a + b, 0), ctx.total);
  });
  let timer: NodeJS.Timeout | undefined;
  let clean = false;
  try {
    // The deadline covers start-up too: a worker stuck connecting is killed, which ends the wait.
    timer = setTimeout(() => {
      log(`run ${runId} passed ${s.runTimeoutMs} ms: stopping its workers`);
      for (const c of children) c.kill('SIGKILL');
    }, s.runTimeoutMs);
    const ready = children.map((c) => waitMessage(c, 'ready'));
    // Once one fails the others are killed: their rejections are expected, not unhandled.
    for (const p of ready) p.catch(() => undefined);
    children.forEach((c, w) => {
      c.on('message', onProgress[w]!);
      const job: PayoutJob = {
        worker: w,
        historyFile: historyFiles[w]!,
        design: run.kind,
        databaseUrl: ctx.url,
        userId,
        asset: ASSET,
        amount: String(s.amount),
        thinkMs: s.thinkMs,
        poolSize: 10,
        ops: ops.filter((_, i) => i % workers === w),
        ...(run.kind === 'allot' ? { warmupUserId } : {}),
      };
      c.send({ type: 'job', job });
    });
    await Promise.all(ready);
    const finished = children.map((c) => waitMessage(c, 'done').then(() => true, () => false));
    const t0 = Date.now() + 100;
    for (const c of children) c.send({ type: 'go', t0 });
    clean = (await Promise.all(finished)).every(Boolean);
  } finally {
    clearTimeout(timer);
    children.forEach((c, w) => c.off('message', onProgress[w]!));
    // A worker that did not finish cleanly is not reused.
    if (!clean) await ctx.pool.kill(children);
  }
  const durationMs = Date.now() - started;
  ctx.doneSoFar += ops.length;

  const history = readHistory(historyFiles);
  const snap = await snapshot(ctx, run, userId, funded);
  const checks = checkPayoutRun(history, snap, expectedMax);
  const done = history.filter((e) => e.type !== 'invoke');
  const answered = new Set(done.map((e) => e.op));
  const refusedCodes = new Set(['INSUFFICIENT_FUNDS', 'NOT_WITHDRAWABLE', 'ALREADY_WITHDRAWN']);
  const passed = checks.every((c) => c.ok);
  return {
    design: run.design,
    workers,
    requests: ops.length,
    paid: snap.payments.length,
    distinctKeys,
    expectedMax,
    verdict: passed ? 'safe' : 'VIOLATION',
    checks,
    run: run.id,
    kind: run.kind,
    backend: ctx.backend,
    scenario: PAYOUT_SCENARIO.name,
    unsafe: run.unsafe,
    amount: s.amount,
    funded,
    paidAmount: snap.payments.reduce((a, p) => a + p.amount, 0),
    available: snap.available,
    acked: done.filter((e) => e.type === 'ok').length,
    replayed: done.filter((e) => e.type === 'ok' && e.replayed).length,
    refused: done.filter((e) => e.type === 'fail' && refusedCodes.has(e.code ?? '')).length,
    inProgress: done.filter((e) => e.type === 'fail' && e.code === 'IDEMPOTENCY_IN_PROGRESS').length,
    errors: done.filter((e) => e.type === 'fail' && !refusedCodes.has(e.code ?? '') && e.code !== 'IDEMPOTENCY_IN_PROGRESS').length,
    unknown: done.filter((e) => e.type === 'unknown').length + ops.filter((o) => !answered.has(o.op)).length,
    ...latency(history),
    durationMs,
    historyDir: dir,
  };
}

// ---- the scenario ---------------------------------------------------------------------------

function bounded(name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < min || x > max) throw new Error(`${name} must be a whole number from ${min} to ${max} (got ${v})`);
  return x;
}

export async function runPayoutLab(opts: PayoutLabOptions): Promise<PayoutReport> {
  const log = opts.log ?? (() => undefined);
  const workers = bounded('workers', opts.workers, DEFAULT_PAYOUT_WORKERS, 1, 64);
  const settings: Settings = {
    requests: bounded('requests', opts.requests, 1000, 1, 100_000),
    spreadMs: bounded('spreadMs', opts.spreadMs, 1000, 0, 600_000),
    thinkMs: bounded('thinkMs', opts.thinkMs, 15, 0, 10_000),
    amount: bounded('amount', opts.amount, 888, 1, 1_000_000_000),
    manyKeys: bounded('manyKeys', opts.manyKeys, 30, 1, 100_000),
    runTimeoutMs: bounded('runTimeoutMs', opts.runTimeoutMs, 60_000, 1_000, 3_600_000),
  };
  const packets = bounded('packets', opts.packets, 10, 1, 1_000_000);
  const backends = opts.backends ?? PAYOUT_SCENARIO.backends;
  for (const b of backends) if (b !== 'postgres' && b !== 'mysql') throw new Error(`${PAYOUT_SCENARIO.name} runs on postgres or mysql, not ${String(b)} (one process per PGlite data dir: no cross-process race)`);
  let runs = payoutRuns(workers, settings.manyKeys, packets);
  if (opts.runs) {
    const unknown = opts.runs.filter((id) => !runs.some((r) => r.id === id));
    if (unknown.length > 0) throw new Error(`unknown run(s) ${unknown.join(', ')}; the runs are ${runs.map((r) => r.id).join(', ')}`);
    runs = runs.filter((r) => opts.runs!.includes(r.id));
  }
  mkdirSync(opts.outDir, { recursive: true });
  const rows: PayoutRow[] = [];
  const startedAt = new Date().toISOString();
  const total = runs.length * backends.length * settings.requests;
  let doneSoFar = 0;
  const pool = new WorkerPool(log);
  // Interrupted (Ctrl-C, SIGTERM): kill the workers and drop the namespace before exiting, as
  // the finally blocks below would (bounded: 10 s).
  let current: LabDatabase | null = null;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping the workers and dropping the lab's namespace…`);
    const exit = () => process.exit(128 + (osConstants.signals[signal] ?? 0));
    setTimeout(exit, 10_000).unref();
    void (async () => {
      await pool.close().catch(() => undefined);
      await current?.drop().catch(() => undefined);
      await closeLabServers().catch(() => undefined);
    })().finally(exit);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const sig of signals) process.on(sig, onSignal);
  try {
    for (const backend of backends) {
      const db = await openLabDatabase(backend, { given: opts.databaseUrls?.[backend], outDir: opts.outDir, stockBackstop: true, log });
      current = db;
      try {
        const conn = await connectSql({ url: db.url, poolSize: 2, timeoutMs: 20_000 });
        let service: AllotService | null = null;
        try {
          await createSeedTables(conn);
          service = await AllotService.open({
            config: { databaseUrl: db.url, dbPoolSize: 2, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
            migrate: false,
            payouts: { sweepIntervalMs: 0 },
          });
          for (const run of runs) {
            log(`${PAYOUT_SCENARIO.name}: ${run.design} on ${backend}, ${run.workers} worker process(es)…`);
            const ctx: RunContext = { backend, url: db.url, conn, service, pool, settings, opts, doneSoFar, total };
            rows.push(await runDesign(ctx, run));
            doneSoFar = ctx.doneSoFar;
          }
        } finally {
          await service?.close();
          await conn.db.destroy();
        }
      } finally {
        await db.drop();
        current = null;
      }
    }
  } finally {
    for (const sig of signals) process.off(sig, onSignal);
    await pool.close();
    await closeLabServers();
  }
  return { scenario: PAYOUT_SCENARIO.name, description: `${PAYOUT_SCENARIO.description} (field report ${PAYOUT_SCENARIO.report})`, startedAt, rows };
}

// ---- output ---------------------------------------------------------------------------------

const ANSI = { red: '\x1b[31m', boldRed: '\x1b[1;31m', green: '\x1b[32m', yellow: '\x1b[33m', dim: '\x1b[2m', reset: '\x1b[0m' };

export function payoutVerdict(r: Pick<PayoutRow, 'verdict' | 'unsafe'>): string {
  if (r.verdict === 'safe') return r.unsafe ? 'safe (expected to fail)' : 'safe';
  return r.unsafe ? 'VIOLATION (expected)' : 'VIOLATION';
}

const COLUMNS: Array<{ header: string; numeric: boolean; cell(r: PayoutRow): string }> = [
  { header: 'design', numeric: false, cell: (r) => r.design },
  { header: 'backend', numeric: false, cell: (r) => r.backend },
  { header: 'procs', numeric: true, cell: (r) => String(r.workers) },
  { header: 'requests', numeric: true, cell: (r) => String(r.requests) },
  { header: 'keys', numeric: true, cell: (r) => String(r.distinctKeys) },
  { header: 'max', numeric: true, cell: (r) => String(r.expectedMax) },
  { header: 'paid', numeric: true, cell: (r) => String(r.paid) },
  { header: 'paid out', numeric: true, cell: (r) => `${r.paidAmount}/${r.funded}` },
  { header: '201', numeric: true, cell: (r) => String(r.acked) },
  { header: 'replayed', numeric: true, cell: (r) => String(r.replayed) },
  { header: 'refused', numeric: true, cell: (r) => String(r.refused) },
  { header: 'in progress', numeric: true, cell: (r) => String(r.inProgress) },
  { header: 'errors', numeric: true, cell: (r) => String(r.errors) },
  { header: 'unknown', numeric: true, cell: (r) => String(r.unknown) },
  { header: 'p99 ms', numeric: true, cell: (r) => String(r.p99Ms) },
  { header: 'verdict', numeric: false, cell: (r) => payoutVerdict(r) },
];

/** A plain-text table, one line per design, then one line per failed check. */
export function formatPayoutTable(report: PayoutReport, opts: { color?: boolean } = {}): string {
  const color = opts.color ?? false;
  const paint = (s: string, c: string): string => (color ? `${c}${s}${ANSI.reset}` : s);
  const cells = report.rows.map((r) => COLUMNS.map((c) => c.cell(r)));
  const widths = COLUMNS.map((c, i) => Math.max(c.header.length, ...cells.map((r) => [...r[i]!].length)));
  const last = COLUMNS.length - 1;
  const pad = (s: string, i: number): string => {
    if (i === last) return s;
    const fill = ' '.repeat(Math.max(0, widths[i]! - [...s].length));
    return COLUMNS[i]!.numeric ? fill + s : s + fill;
  };
  const lines = [COLUMNS.map((c, i) => pad(c.header, i)).join('  '), paint(widths.map((w) => '-'.repeat(w)).join('  '), ANSI.dim)];
  report.rows.forEach((r, n) => {
    const tint = r.verdict === 'safe' ? ANSI.green : r.unsafe ? ANSI.yellow : ANSI.boldRed;
    lines.push(cells[n]!.map((s, i) => (i === last ? paint(pad(s, i), tint) : pad(s, i))).join('  ').trimEnd());
  });
  if (report.rows.length === 0) lines.push('(no rows)');
  const failures = report.rows.flatMap((r) =>
    r.checks.filter((c) => !c.ok).map((c) => paint(`${r.design} (${r.backend}): ${c.name}: ${c.message}${r.unsafe ? ' (expected: the seed\'s design)' : ''}`, r.unsafe ? ANSI.yellow : ANSI.red)),
  );
  const unanswered = report.rows.filter((r) => r.unknown > 0).map((r) => paint(`${r.design} (${r.backend}): ${r.unknown} request(s) with no answer (an error of unknown outcome, or a worker stopped at the run's deadline); history in ${r.historyDir}`, ANSI.yellow));
  if (failures.length + unanswered.length > 0) lines.push('', ...failures, ...unanswered);
  return lines.join('\n') + '\n';
}
