// bench:memory — does a long run grow an instance's memory? Per backend and strategy, a run of
// BENCH_MEMORY_CLAIMS claims (default 1,000,000) on one campaign, spread over BENCH_MEMORY_WORKERS
// worker processes (default 2), each with its own service, every claim from a new user with its
// own Idempotency-Key. Each worker samples its memory after a full garbage collection at
// BENCH_MEMORY_CHECKPOINTS points of the run and once more when it is idle after it. The run also
// checks its claims: the database holds exactly as many claims as were answered 201 (none lost,
// none extra), and the campaign audit holds. Results: bench/results/memory.json and memory.md.
//
// Heap after a full collection is the figure that tells a leak (RSS also holds what V8 keeps
// reserved, and follows the heap's high-water mark); "growth" compares the idle sample after the
// run with the sample at the first checkpoint (10% of the run by default: pools, JIT and caches
// are warm by then), in MB and in bytes per claim of what came after.
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { sql } from 'kysely';
import { AllotService } from '../src/service/service.ts';
import { backendUrl, durabilityOf, runWorkers } from './workers.ts';
import { startRedis, type TestServer } from '../src/lab/servers.ts';
import type { Sample } from './memory-worker.ts';

const CLAIMS = Number(process.env.BENCH_MEMORY_CLAIMS ?? 1_000_000);
const WORKERS = Number(process.env.BENCH_MEMORY_WORKERS ?? 2);
const CHECKPOINTS = Number(process.env.BENCH_MEMORY_CHECKPOINTS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 256);
const POOL = Number(process.env.BENCH_DB_POOL ?? 8);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'postgres,mysql').split(',').filter((x) => x !== '');
const FAST = 'redis-atomic-fast';
const STRATEGIES = (process.env.BENCH_STRATEGIES ?? `group-commit,redis-atomic,${FAST}`).split(',').filter((x) => x !== '');
/** Growth (idle after the run minus the first checkpoint, heap after GC) that still counts as bounded. */
const BOUND_MB = Number(process.env.BENCH_MEMORY_BOUND_MB ?? 16);
const WORKER = new URL('./memory-worker.ts', import.meta.url).pathname;

for (const [name, v] of Object.entries({ BENCH_MEMORY_CLAIMS: CLAIMS, BENCH_MEMORY_WORKERS: WORKERS, BENCH_MEMORY_CHECKPOINTS: CHECKPOINTS, BENCH_CONCURRENCY: CONCURRENCY, BENCH_DB_POOL: POOL })) {
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${String(process.env[name])}`);
}

interface Row {
  backend: string;
  strategy: string;
  claims: number;
  seconds: number;
  claimsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  refused: number;
  /** 201s answered minus claims in the database (0: none lost, none extra) */
  ackedMinusStored: number;
  auditOk: boolean;
  drainMs: number | null;
  workers: Array<{ samples: Sample[]; settled: Sample }>;
  /** per worker: idle heap after the run minus heap at the first checkpoint (MB) */
  heapGrowthMb: number[];
  /** per worker: that growth over the claims answered after the first checkpoint (bytes) */
  bytesPerClaim: number[];
  bounded: boolean;
}

type Done = { type: 'done'; seconds: number; counts: { issued: number; refused: number; errors: number }; p50: number; p99: number; samples: Sample[]; settled: Sample; drainMs: number | null };

function log(msg: string): void {
  process.stderr.write(`[bench:memory] ${msg}\n`);
}

let redisUrl: string | null = null;
const lockPrefix = `benchmem-${randomUUID().slice(0, 8)}:`;

async function runOne(backend: string, url: string, service: AllotService, strategy: string): Promise<Row> {
  const campaignId = `benchmem-${strategy}-${randomUUID().slice(0, 8)}`;
  await service.createCampaign({ id: campaignId, kind: 'coupon', name: 'bench memory', stock: 1_000_000_000, strategy: strategy === FAST ? 'redis-atomic' : strategy, perUserLimit: 1 });
  const per = Math.ceil(CLAIMS / WORKERS);
  const children = Array.from({ length: WORKERS }, () => fork(WORKER, [], { execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  try {
    const results = await runWorkers<Done>(children, (worker) => ({ url, campaignId, worker, claims: per, checkpoints: CHECKPOINTS, concurrency: CONCURRENCY, pool: POOL, locksUrl: redisUrl, lockPrefix, fast: strategy === FAST }));
    const seconds = Math.max(...results.map((r) => r.seconds));
    const issued = results.reduce((a, r) => a + r.counts.issued, 0);
    // Every request was a new user with a new key, so each 201 is its own claim: the database
    // must hold exactly that many (the 20 warm-up claims per worker excepted).
    const stored = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM claims WHERE campaign_id = ${campaignId} AND user_id NOT LIKE 'warm-%'`.execute(service.db)).rows[0]!.n);
    const audit = await service.audit(campaignId);
    const growth = results.map((r) => +(r.settled.heapMb - (r.samples[1] ?? r.samples[0]!).heapMb).toFixed(1));
    const bytesPerClaim = results.map((r, i) => {
      const from = (r.samples[1] ?? r.samples[0]!).answers;
      const n = r.settled.answers - from;
      return n > 0 ? Math.round((growth[i]! * 1024 * 1024) / n) : 0;
    });
    return {
      backend,
      strategy,
      claims: results.reduce((a, r) => a + r.counts.issued + r.counts.refused + r.counts.errors, 0),
      seconds: +seconds.toFixed(1),
      claimsPerSec: Math.round(issued / seconds),
      p50Ms: Math.max(...results.map((r) => r.p50)),
      p99Ms: Math.max(...results.map((r) => r.p99)),
      errors: results.reduce((a, r) => a + r.counts.errors, 0),
      refused: results.reduce((a, r) => a + r.counts.refused, 0),
      ackedMinusStored: issued - stored,
      auditOk: audit.ok,
      drainMs: strategy === FAST ? Math.max(...results.map((r) => r.drainMs ?? 0)) : null,
      workers: results.map((r) => ({ samples: r.samples, settled: r.settled })),
      heapGrowthMb: growth,
      bytesPerClaim,
      bounded: growth.every((g) => g <= BOUND_MB),
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const servers: TestServer[] = [];
  const durability: string[] = [];
  const t0 = Date.now();
  try {
    if (STRATEGIES.includes('redis-atomic') || STRATEGIES.includes(FAST)) redisUrl = process.env.REDIS_URL ?? servers[servers.push(await startRedis()) - 1]!.url;
    for (const backend of BACKENDS) {
      const url = await backendUrl(backend, servers);
      durability.push(await durabilityOf(url));
      const service = await AllotService.open({ config: { databaseUrl: url, dbPoolSize: 4, dbTimeoutMs: 120_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, ...(redisUrl ? { locksUrl: redisUrl, lockPrefix } : {}) }, payouts: { sweepIntervalMs: 0 } });
      try {
        for (const strategy of STRATEGIES) {
          log(`${backend} / ${strategy}: ${CLAIMS} claims over ${WORKERS} processes x ${CONCURRENCY} callers ...`);
          const r = await runOne(backend, url, service, strategy);
          log(`  ${r.claimsPerSec} claims/s over ${r.seconds} s, heap growth ${r.heapGrowthMb.join(' / ')} MB (${r.bytesPerClaim.join(' / ')} B per claim), 201s − stored ${r.ackedMinusStored}, errors ${r.errors}, audit ${r.auditOk ? 'ok' : 'FAILED'}`);
          rows.push(r);
        }
      } finally {
        await service.close();
      }
    }
  } finally {
    for (const s of servers) await s.destroy();
  }
  const date = new Date().toISOString().slice(0, 10);
  const series = (r: Row) => r.workers.map((w) => [...w.samples.slice(1), w.settled].map((s) => s.heapMb).join(' → ')).join('<br>');
  const md = [
    `# Memory over a long run (${date})`,
    '',
    `\`npm run bench:memory\` — per backend and strategy, ${CLAIMS.toLocaleString('en-US')} claims on one campaign over ${WORKERS} worker processes (each its own service, pool ${POOL}, ${CONCURRENCY} concurrent callers), every claim from a new user with its own Idempotency-Key. Each worker keeps only counts and a fixed-size latency histogram. At ${CHECKPOINTS} checkpoints the callers pause, the claims in flight finish, and the worker samples its memory after a full garbage collection; once more when idle 1 s after the run (\`fast\` mode: after its write-behind reached SQL). ${Math.round((Date.now() - t0) / 1000)} s in all. Node ${process.version}, ${cpus().length} cores. On commit: ${durability.join('; ')}.`,
    '',
    `**Heap growth** = heap used after GC, idle after the run, minus the same at the first checkpoint (${Math.round(100 / CHECKPOINTS)}% of the run, everything warm); per worker. Bounded = every worker grew by at most ${BOUND_MB} MB. "201s − stored" is the 201s answered minus the claims in the database: 0 means none lost and none extra.`,
    '',
    '| backend | strategy | claims | claims/s | p50 ms | p99 ms | errors | 201s − stored | audit | RSS at first checkpoint → idle after (MB) | heap growth (MB) | bytes per claim | bounded |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.backend} | ${r.strategy} | ${r.claims} | ${r.claimsPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} | ${r.ackedMinusStored} | ${r.auditOk ? 'ok' : 'FAILED'} | ${r.workers.map((w) => `${(w.samples[1] ?? w.samples[0]!).rssMb} → ${w.settled.rssMb}`).join(' / ')} | ${r.heapGrowthMb.join(' / ')} | ${r.bytesPerClaim.join(' / ')} | ${r.bounded ? 'yes' : '**NO**'} |`),
    '',
    'Heap after GC (MB) at each checkpoint, then idle after the run, per worker:',
    '',
    '| backend | strategy | series |',
    '|---|---|---|',
    ...rows.map((r) => `| ${r.backend} | ${r.strategy} | ${series(r)} |`),
    '',
  ].join('\n');
  writeFileSync(new URL('./results/memory.json', import.meta.url), `${JSON.stringify({ date, node: process.version, cores: cpus().length, claims: CLAIMS, workers: WORKERS, checkpoints: CHECKPOINTS, concurrency: CONCURRENCY, pool: POOL, boundMb: BOUND_MB, rows }, null, 2)}\n`);
  writeFileSync(new URL('./results/memory.md', import.meta.url), md);
  process.stdout.write(md);
  if (rows.some((r) => !r.bounded || r.ackedMinusStored !== 0 || !r.auditOk)) process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
