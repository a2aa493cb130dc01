// Runs a scenario: for each backend and strategy, a fresh campaign (or several) in the lab's own
// namespace, N worker processes firing the workload at one instant, faults on schedule, then
// the history and a database snapshot through the checkers, one result row per run.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { childModule } from '../adapters/system/child-module.ts';
import type { NewCampaign } from '../core/campaign.ts';
import { AllotService } from '../service/service.ts';
import { closeLabServers, openLabDatabase, openLabRedis, type LabDatabase } from './backends.ts';
import { checkRun, latencyStats, throughput, timeline } from './checkers.ts';
import { applyFault, parseFault, proxiesNeeded, type Fault } from './faults.ts';
import { startFaultProxy, type FaultProxy } from './proxy.ts';
import { DEFAULT_WORKERS, findScenario, type LabBackend, type Scenario, type StrategyRun } from './scenarios.ts';
import type { TestServer } from './servers.ts';
import type { CheckResult, HistoryEvent, LabReport, LabRow, LabSnapshot } from './types.ts';
import type { LabOp, WorkerJob, WorkerMessage } from './worker.ts';

// worker.ts under tsx, or worker.js from dist/ (the CLI): `allot lab` may run anywhere.
const WORKER = childModule(import.meta.url, './worker');

export interface LabOptions {
  scenario: string;
  backends?: LabBackend[];
  /** only these strategies (of the scenario's runs) */
  strategies?: string[];
  /** worker processes per run (default 4; some runs fix their own count, e.g. local-mutex on 1) */
  workers?: number;
  /** server URLs; a throwaway server is started for a backend without one */
  databaseUrls?: Partial<Record<'postgres' | 'mysql', string>>;
  redisUrl?: string;
  /** drive running instances over HTTP instead (their database, their strategies' flags) */
  targets?: string[];
  token?: string;
  faults?: string[];
  /** run on a schema with the production backstop CHECK (issued <= stock) */
  backstop?: boolean;
  outDir: string;
  /** a run stops (its workers killed) after this long */
  runTimeoutMs?: number;
  onProgress?(done: number, total: number): void;
  log?(line: string): void;
}

/** The runs a scenario makes, filtered by --strategies. */
export function plannedRuns(s: Scenario, opts: Pick<LabOptions, 'strategies' | 'workers'>): StrategyRun[] {
  const runs = s.runs(opts.workers ?? DEFAULT_WORKERS);
  // `redis-atomic-fast` (redis-atomic in `fast` mode) runs where redis-atomic does, when asked for by name.
  const variants = runs.flatMap((r) => (r.strategy === REDIS_ATOMIC ? [r, { ...r, strategy: REDIS_ATOMIC_FAST }] : [r]));
  return opts.strategies ? variants.filter((r) => opts.strategies!.includes(r.strategy)) : runs;
}

const REDIS_ATOMIC = 'redis-atomic';
/** A lab-only name: campaigns of the `redis-atomic` strategy, served in `fast` mode (201 after Redis). */
export const REDIS_ATOMIC_FAST = 'redis-atomic-fast';
/** fast mode in the lab: leases of killed workers expire (and their streams are replayed) within the run's checks */
const FAST_LAB = { mode: 'fast' as const, leaseTtlMs: 1_500, recoverEveryMs: 200 };
/** The strategy a run's campaigns are created with. */
const campaignStrategy = (s: string): string => (s === REDIS_ATOMIC_FAST ? REDIS_ATOMIC : s);

function onMessage(child: ChildProcess, fn: (m: WorkerMessage) => void): void {
  child.on('message', (m) => fn(m as WorkerMessage));
}

function waitMessage(child: ChildProcess, type: WorkerMessage['type']): Promise<WorkerMessage> {
  return new Promise((resolve, reject) => {
    const on = (m: WorkerMessage) => {
      if (m.type === type) {
        child.off('message', on as never);
        resolve(m);
      } else if (m.type === 'error') reject(new Error(`lab worker failed: ${m.message}`));
    };
    child.on('message', on as never);
    child.once('exit', (code, signal) => reject(new Error(`lab worker exited (${signal ?? code}) before "${type}"`)));
  });
}

function readHistory(files: string[]): HistoryEvent[] {
  const out: HistoryEvent[] = [];
  for (const f of files) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        out.push(JSON.parse(line) as HistoryEvent);
      } catch {
        // a line cut by kill -9: its invoke, if any, was written whole before it
      }
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

/** The database after a run. A lottery's stock and issued are the sums over its prizes, and
 * only claims with a prize are counted (a miss takes no stock); the scenarios' lotteries have
 * no misses (missWeight 0), so every acknowledged claim is among them. */
async function snapshot(service: AllotService, campaignId: string): Promise<LabSnapshot> {
  const c = (await sql<Record<string, unknown>>`SELECT kind, stock, issued, per_user_limit, per_user_daily_limit FROM campaigns WHERE id = ${campaignId}`.execute(service.db)).rows[0]!;
  const lottery = String(c.kind) === 'lottery';
  const sums = lottery ? (await sql<Record<string, unknown>>`SELECT COALESCE(SUM(stock), 0) AS stock, COALESCE(SUM(issued), 0) AS issued FROM prizes WHERE campaign_id = ${campaignId}`.execute(service.db)).rows[0]! : c;
  const claims = (
    lottery
      ? await sql<Record<string, unknown>>`SELECT id, user_id, utc_day, idem_key FROM claims WHERE campaign_id = ${campaignId} AND prize_id IS NOT NULL`.execute(service.db)
      : await sql<Record<string, unknown>>`SELECT id, user_id, utc_day, idem_key FROM claims WHERE campaign_id = ${campaignId}`.execute(service.db)
  ).rows;
  return {
    campaignId,
    stock: Number(sums.stock),
    issued: Number(sums.issued),
    perUserLimit: Number(c.per_user_limit),
    perUserDailyLimit: c.per_user_daily_limit === null ? null : Number(c.per_user_daily_limit),
    claims: claims.map((r) => ({ id: String(r.id), userId: String(r.user_id), utcDay: String(r.utc_day), idemKey: r.idem_key === null ? null : String(r.idem_key) })),
  };
}

async function httpSnapshot(target: string, token: string, campaignId: string): Promise<LabSnapshot> {
  const get = async (path: string) => {
    const res = await fetch(`${target.replace(/\/$/, '')}${path}`, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown>>;
  };
  const c = await get(`/v1/campaigns/${encodeURIComponent(campaignId)}`);
  const claims: LabSnapshot['claims'] = [];
  let cursor: string | null = null;
  do {
    const page = (await get(`/v1/campaigns/${encodeURIComponent(campaignId)}/claims?limit=1000${cursor ? `&cursor=${cursor}` : ''}`)) as { claims: Array<{ id: string; userId: string; createdAt: string; prizeId?: string | null }>; nextCursor: string | null };
    // A lottery's view already sums its prizes; a miss (no prize) takes no stock.
    for (const x of page.claims) if (c.kind !== 'lottery' || (x.prizeId ?? null) !== null) claims.push({ id: x.id, userId: x.userId, utcDay: x.createdAt.slice(0, 10), idemKey: null });
    cursor = page.nextCursor;
  } while (cursor);
  return { campaignId, stock: Number(c.stock), issued: Number(c.issued), perUserLimit: Number(c.perUserLimit), perUserDailyLimit: c.perUserDailyLimit === null ? null : Number(c.perUserDailyLimit), claims };
}

/** Completions (any outcome) per second from the first invoke to the last completion. */
function answeredPerSec(history: HistoryEvent[]): number {
  const invokes = history.filter((e) => e.type === 'invoke');
  const done = history.filter((e) => e.type !== 'invoke');
  if (invokes.length === 0 || done.length === 0) return 0;
  const span = done.reduce((m, e) => Math.max(m, e.t), -Infinity) - invokes.reduce((m, e) => Math.min(m, e.t), Infinity);
  return span > 0 ? (done.length * 1000) / span : 0;
}

/** Sums the verdicts of a run's campaigns into one set of checks. */
function mergeChecks(all: CheckResult[][]): CheckResult[] {
  const byName = new Map<string, CheckResult>();
  for (const checks of all) {
    for (const c of checks) {
      const prev = byName.get(c.name);
      if (!prev) byName.set(c.name, { ...c });
      else byName.set(c.name, { name: c.name, ok: prev.ok && c.ok, violations: prev.violations + c.violations, message: prev.ok ? c.message : prev.message });
    }
  }
  return [...byName.values()];
}

/** The campaign a scenario runs on: a coupon campaign, or a lottery when it has prizes. */
function campaignInput(scenario: Scenario): Omit<NewCampaign, 'id' | 'name' | 'strategy'> {
  const c = scenario.campaign;
  const limits = { perUserLimit: c.perUserLimit, perUserDailyLimit: c.perUserDailyLimit ?? null };
  return c.prizes ? { kind: 'lottery', prizes: c.prizes.map((p) => ({ ...p })), missWeight: c.missWeight ?? 0, ...limits } : { kind: 'coupon', stock: c.stock, ...limits };
}

interface RunContext {
  scenario: Scenario;
  backend: LabBackend;
  db: LabDatabase | null;
  workerDbUrl: string | null;
  redisUrl: string | null;
  redisServer: TestServer | null;
  dbProxy: FaultProxy | null;
  redisProxy: FaultProxy | null;
  faults: Fault[];
  opts: LabOptions;
  doneSoFar: number;
  total: number;
}

/** Opens an instance in `fast` mode until no lease of the run's campaigns is left open: the
 * workers that exited closed theirs; a killed one's expires, and this instance replays its
 * stream into SQL before reclaiming it (bounded: what is still missing after that is counted). */
async function settleFast(ctx: RunContext, campaigns: string[], runId: string, log: (m: string) => void): Promise<void> {
  const service = await AllotService.open({
    config: { databaseUrl: ctx.db!.url, dbPoolSize: 2, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: true, locksUrl: ctx.redisUrl!, lockPrefix: `lab:${runId}:` },
    migrate: false,
    redisAtomic: FAST_LAB,
  });
  try {
    const until = Date.now() + 20_000;
    for (;;) {
      const open = Number((await sql<{ n: string | number }>`SELECT count(*) AS n FROM redis_leases WHERE state = 'open' AND campaign_id IN (${sql.join(campaigns)})`.execute(service.db)).rows[0]?.n ?? 0);
      if (open === 0 && (service.redisAtomicFast()?.pending ?? 0) === 0) break;
      if (Date.now() > until) {
        log(`${runId}: ${open} redis-atomic lease(s) still open after 20 s; their claims not in SQL count as lost`);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const replayed = service.redisAtomicFast()?.replayed ?? 0;
    if (replayed > 0) log(`${runId}: replayed ${replayed} acknowledged claim(s) from a killed worker's stream`);
  } finally {
    await service.close();
  }
}

async function runOne(ctx: RunContext, run: StrategyRun): Promise<LabRow> {
  const { scenario, opts, backend } = ctx;
  const log = opts.log ?? (() => undefined);
  const http = (opts.targets?.length ?? 0) > 0;
  // One process can open a PGlite data dir: the pglite backend runs one worker.
  const workers = backend === 'pglite' && !http ? 1 : run.workers;
  const runId = `${scenario.name}-${run.strategy}-${workers}w-${randomBytes(3).toString('hex')}`;
  const dir = join(opts.outDir, runId);
  mkdirSync(dir, { recursive: true });
  const campaigns = Array.from({ length: scenario.campaigns ?? 1 }, (_, i) => `${runId}-c${i}`);

  // Campaigns, created by the driver (directly, or through the first target).
  let service: AllotService | null = null;
  if (http) {
    for (const id of campaigns) {
      const res = await fetch(`${opts.targets![0]!.replace(/\/$/, '')}/v1/campaigns`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${opts.token ?? ''}` },
        body: JSON.stringify({ id, name: runId, ...campaignInput(scenario), strategy: campaignStrategy(run.strategy) }),
      });
      if (res.status !== 201) throw new Error(`creating campaign ${id} on ${opts.targets![0]}: ${res.status} ${await res.text()}`);
    }
  } else {
    // The workers' lock backend: on MariaDB a redis-lock campaign is refused by a service with none.
    const locks = ctx.redisUrl ? { locksUrl: ctx.redisUrl, lockPrefix: `lab:${runId}:` } : {};
    service = await AllotService.open({ config: { databaseUrl: ctx.db!.url, dbPoolSize: 2, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: true, ...locks }, migrate: false });
    try {
      for (const id of campaigns) {
        await service.createCampaign({ id, name: runId, ...campaignInput(scenario), strategy: campaignStrategy(run.strategy) });
      }
    } catch (err) {
      // Its pools and lock connections would keep the process alive.
      await service.close().catch(() => undefined);
      throw err;
    }
    // The warm-up takes the claim path the run will (a lottery's draw for a lottery).
    const warmup = scenario.campaign.prizes ? { kind: 'lottery' as const, prizes: [{ id: 'warmup', name: 'warm-up', stock: 1_000_000, weight: 1 }] } : { kind: 'coupon' as const, stock: 1_000_000 };
    await service.createCampaign({ id: `${runId}-warmup`, name: `${runId} warm-up`, ...warmup, strategy: campaignStrategy(run.strategy) });
    if (backend === 'pglite') {
      await service.close();
      service = null;
    }
  }

  const ops: LabOp[] = scenario.workload().map((o, i) => ({ ...o, op: i + 1, campaignId: campaigns[i % campaigns.length]! }));
  const share = (w: number) => ops.filter((_, i) => i % workers === w);
  const historyFiles = Array.from({ length: workers }, (_, w) => join(dir, `history-${w}.jsonl`));
  const children = historyFiles.map(() => fork(WORKER.path, [], { execArgv: WORKER.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const progress = new Array<number>(workers).fill(0);
  const started = Date.now();
  const fired = new Set<Fault>();
  try {
    children.forEach((c, w) => {
      const job: WorkerJob = {
        worker: w,
        historyFile: historyFiles[w]!,
        ops: share(w),
        mode: http ? 'http' : 'direct',
        ...(http ? { targets: opts.targets!, token: opts.token ?? '' } : { databaseUrl: ctx.workerDbUrl!, ...(scenario.lockExpiry ? {} : { warmupCampaignId: `${runId}-warmup` }) }),
        ...(scenario.isolation?.[backend] ? { isolation: scenario.isolation[backend] } : {}),
        ...(ctx.redisUrl ? { locksUrl: ctx.redisUrl, lockPrefix: `lab:${runId}:` } : {}),
        poolSize: scenario.poolSize ?? 10,
        thinkMs: scenario.thinkMs ?? 0,
        ...(scenario.lockExpiry ? { lockTtlMs: scenario.lockExpiry.ttlMs, pauseAfterLock: w === 0 } : {}),
        ...(run.strategy === REDIS_ATOMIC_FAST ? { redisAtomic: FAST_LAB } : {}),
      };
      c.send({ type: 'job', job });
      onMessage(c, (m) => {
        if (m.type === 'progress' || m.type === 'done') {
          progress[w] = m.done;
          const done = progress.reduce((a, b) => a + b, 0);
          opts.onProgress?.(ctx.doneSoFar + done, ctx.total);
          for (const f of ctx.faults) {
            if (f.when && 'ops' in f.when && done >= f.when.ops && !fired.has(f)) {
              fired.add(f);
              void applyFault(f, faultTargets()).catch((e: Error) => log(`fault ${f.spec} failed: ${e.message}`));
            }
          }
        }
      });
    });
    const faultTargets = () => ({ workerPid: (i: number) => children[i]?.pid, dbProxy: ctx.dbProxy, redisProxy: ctx.redisProxy, redisUrl: ctx.redisUrl, redisServer: ctx.redisServer, log });
    await Promise.all(children.map((c) => waitMessage(c, 'ready')));
    const deadline = opts.runTimeoutMs ?? 120_000;
    const finished = children.map((c) => waitMessage(c, 'done').catch(() => undefined));
    const timer = setTimeout(() => {
      log(`run ${runId} passed ${deadline} ms: stopping its workers`);
      for (const c of children) c.kill('SIGKILL');
    }, deadline);
    try {
      if (scenario.lockExpiry) {
        await lockExpiryChoreography(children, scenario.lockExpiry.ttlMs, log);
      } else {
        const t0 = Date.now() + 100;
        for (const c of children) c.send({ type: 'go', t0 });
        for (const f of ctx.faults) {
          if (f.when === null) void applyFault(f, faultTargets()).catch((e: Error) => log(`fault ${f.spec} failed: ${e.message}`));
          else if ('ms' in f.when) setTimeout(() => void applyFault(f, faultTargets()).catch((e: Error) => log(`fault ${f.spec} failed: ${e.message}`)), f.when.ms + 100).unref();
        }
      }
      await Promise.all(finished);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    ctx.dbProxy?.setLatency(scenario.dbLatencyMs ?? 0);
  }
  const durationMs = Date.now() - started;

  // `fast` mode: a killed worker's acknowledged claims are in its stream in Redis until another
  // instance replays it (once its lease expired); the lab plays that instance before it checks.
  if (run.strategy === REDIS_ATOMIC_FAST && !http && ctx.redisUrl) await settleFast(ctx, campaigns, runId, log);
  const history = readHistory(historyFiles);
  if (backend === 'pglite' && !http) service = await AllotService.open({ config: { databaseUrl: ctx.db!.url, dbPoolSize: 1, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: true }, migrate: false });
  const snaps = await Promise.all(campaigns.map((id) => (http ? httpSnapshot(opts.targets![0]!, opts.token ?? '', id) : snapshot(service!, id))));
  await service?.close();
  const verdicts = snaps.map((s) => checkRun(history, s));
  const completions = history.filter((e) => e.type !== 'invoke');
  const answered = new Set(completions.map((e) => e.op));
  const { p50Ms, p99Ms } = latencyStats(history);
  const checks = mergeChecks(verdicts.map((v) => v.checks));
  ctx.doneSoFar += ops.length;
  return {
    strategy: run.strategy,
    backend: http ? `http(${opts.targets!.length})` : backend,
    requests: ops.length,
    ok: completions.filter((e) => e.type === 'ok').length,
    soldOut: completions.filter((e) => e.type === 'fail' && e.code === 'SOLD_OUT').length,
    userLimit: completions.filter((e) => e.type === 'fail' && e.code === 'USER_LIMIT_REACHED').length,
    oversold: verdicts.reduce((a, v) => a + v.oversold, 0),
    duplicates: verdicts.reduce((a, v) => a + v.duplicates, 0),
    lostAcks: verdicts.reduce((a, v) => a + v.lostAcks, 0),
    retries: completions.reduce((a, e) => a + (e.retries ?? 0), 0),
    claimsPerSec: Math.round(throughput(history)),
    requestsPerSec: Math.round(answeredPerSec(history)),
    p50Ms: Math.round(p50Ms * 10) / 10,
    p99Ms: Math.round(p99Ms * 10) / 10,
    scenario: scenario.name,
    workers,
    errors: completions.filter((e) => e.type === 'fail' && e.code !== 'SOLD_OUT' && e.code !== 'USER_LIMIT_REACHED').length,
    unknown: completions.filter((e) => e.type === 'unknown').length + ops.filter((o) => !answered.has(o.op)).length,
    stock: snaps.reduce((a, s) => a + s.stock, 0),
    issued: snaps.reduce((a, s) => a + s.issued, 0),
    claimsInDb: snaps.reduce((a, s) => a + s.claims.length, 0),
    durationMs,
    faults: ctx.faults.map((f) => f.spec),
    unsafe: scenario.unsafe.includes(run.strategy) && !(run.strategy === 'local-mutex' && workers === 1),
    passed: checks.every((c) => c.ok),
    checks,
    timeline: timeline(history),
  };
}

/** lock-expiry: worker 0 takes the user's lock and is frozen past its lease; worker 1 takes the
 * lock and claims; worker 0 resumes and makes its write with the stale fence. */
async function lockExpiryChoreography(children: ChildProcess[], ttlMs: number, log: (s: string) => void): Promise<void> {
  const [holder, other] = children as [ChildProcess, ChildProcess];
  const holding = waitMessage(holder, 'holding');
  holder.send({ type: 'go', t0: Date.now() });
  await holding;
  holder.kill('SIGSTOP');
  log(`worker 0 holds the lock: SIGSTOP for ${ttlMs + 500} ms (lease ${ttlMs} ms)`);
  await new Promise((r) => setTimeout(r, ttlMs + 500));
  const otherDone = waitMessage(other, 'done');
  other.send({ type: 'go', t0: Date.now() });
  await otherDone;
  log('worker 1 took the expired lock and claimed; SIGCONT worker 0');
  holder.kill('SIGCONT');
  holder.send({ type: 'proceed' });
}

export async function runLab(opts: LabOptions): Promise<LabReport> {
  const scenario = findScenario(opts.scenario);
  const log = opts.log ?? (() => undefined);
  const http = (opts.targets?.length ?? 0) > 0;
  const backends = http ? [scenario.backends[0]!] : (opts.backends ?? scenario.backends);
  const runs = plannedRuns(scenario, opts);
  if (runs.length === 0) throw new Error(`no run of scenario ${scenario.name} uses ${opts.strategies?.join(', ')}; it runs ${[...new Set(scenario.runs(opts.workers ?? DEFAULT_WORKERS).map((r) => r.strategy))].join(', ')}`);
  const faults = (opts.faults ?? []).map(parseFault);
  const needs = proxiesNeeded(faults);
  mkdirSync(opts.outDir, { recursive: true });
  const rows: LabRow[] = [];
  const startedAt = new Date().toISOString();
  const total = runs.length * backends.length * scenario.workload().length;
  let doneSoFar = 0;
  try {
    const needRedis = runs.some((r) => r.strategy === 'redis-lock' || r.strategy === REDIS_ATOMIC || r.strategy === REDIS_ATOMIC_FAST) && !http;
    const redis = needRedis ? await openLabRedis(opts.redisUrl, log) : null;
    let redisProxy: FaultProxy | null = null;
    if (redis && needs.redis) {
      const u = new URL(redis.url);
      redisProxy = await startFaultProxy({ target: { host: u.hostname, port: Number(u.port) } });
    }
    try {
      for (const backend of backends) {
        const db = http ? null : await openLabDatabase(backend, { given: backend === 'pglite' ? undefined : opts.databaseUrls?.[backend], outDir: opts.outDir, stockBackstop: opts.backstop ?? false, log });
        let dbProxy: FaultProxy | null = null;
        try {
          if (db && backend !== 'pglite' && (needs.db || scenario.dbLatencyMs)) {
            const u = new URL(db.url);
            dbProxy = await startFaultProxy({ target: { host: u.hostname, port: Number(u.port) } });
            dbProxy.setLatency(scenario.dbLatencyMs ?? 0);
          }
          for (const run of runs) {
            log(`${scenario.name}: ${run.strategy} on ${http ? 'HTTP targets' : backend}, ${run.workers} worker process(es)…`);
            const ctx: RunContext = {
              scenario, backend, db, opts, faults, total, doneSoFar,
              workerDbUrl: db ? (dbProxy ? dbProxy.url(db.url) : db.url) : null,
              redisUrl: redis ? (redisProxy ? redisProxy.url(redis.url) : redis.url) : null,
              redisServer: redis?.server ?? null,
              dbProxy, redisProxy,
            };
            rows.push(await runOne(ctx, run));
            doneSoFar = ctx.doneSoFar;
          }
        } finally {
          await dbProxy?.close();
          await db?.drop();
        }
      }
    } finally {
      await redisProxy?.close();
    }
  } finally {
    await closeLabServers();
  }
  return { scenario: scenario.name, description: `${scenario.description} (field report ${scenario.report})`, startedAt, rows };
}
