// Baseline: claims/s and latency through HTTP for one hot campaign, per backend and strategy.
// Each run starts `allot serve` as its own process (the load generator must not share its
// event loop), creates a campaign with more stock than the run can take, and drives it with
// autocannon, every request from a new user. Writes bench/results/claims-baseline.{json,md}.
//
//   npm run bench                       all backends (starts private PostgreSQL and MariaDB)
//   BENCH_SECONDS=10 BENCH_CONNECTIONS=64 npm run bench
//   BENCH_BACKENDS=pglite BENCH_STRATEGIES=conditional npm run bench
// The redis-lock strategy uses a Redis (REDIS_URL, or a private one the bench starts).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { startRedis, type TestServer } from '../src/lab/servers.ts';
import { api, loadClaims, startService } from './http-service.ts';
import { backendUrl, durabilityOf } from './workers.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const POOL = Number(process.env.BENCH_DB_POOL ?? 16);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'pglite,postgres,mysql').split(',');
const STRATEGIES = (process.env.BENCH_STRATEGIES ?? 'conditional,pessimistic,redis-lock').split(',');
const ROOT = new URL('..', import.meta.url).pathname;

interface Row {
  backend: string;
  strategy: string;
  seconds: number;
  connections: number;
  requests: number;
  claimsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  non2xx: number;
  errors: number;
  issued: number;
  auditOk: boolean;
}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

async function runOne(backend: string, strategy: string, url: string): Promise<Row> {
  const id = `bench-${backend}-${strategy}-${Date.now()}`;
  const created = await api(url, 'POST', '/v1/campaigns', { id, name: 'bench', stock: 100_000_000, strategy, perUserLimit: 1 });
  if (created.status !== 201) throw new Error(`create failed: ${JSON.stringify(created.json)}`);
  // Every request from a new user, so every claim is issued.
  await loadClaims(url, id, { connections: 4, seconds: 1, prefix: 'warm' }); // connections, JIT, the campaign cache
  const r = await loadClaims(url, id, { connections: CONNECTIONS, seconds: SECONDS, prefix: 'u' });
  const campaign = await api(url, 'GET', `/v1/campaigns/${id}`);
  const audit = await api(url, 'GET', `/v1/campaigns/${id}/audit`);
  return {
    backend,
    strategy,
    seconds: SECONDS,
    connections: CONNECTIONS,
    requests: r.requests.total,
    claimsPerSec: Math.round(r['2xx'] / SECONDS),
    p50Ms: r.latency.p50,
    p90Ms: r.latency.p90,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    issued: Number(campaign.json.issued),
    auditOk: audit.json.ok === true,
  };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const servers: TestServer[] = [];
  const durability: string[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'allot-bench-'));
  try {
    const redisUrl = process.env.REDIS_URL ?? servers[servers.push(await startRedis()) - 1]!.url;
    for (const backend of BACKENDS) {
      if (!['pglite', 'postgres', 'mysql'].includes(backend)) throw new Error(`unknown backend ${backend} (pglite, postgres, mysql)`);
      const dbUrl = backend === 'pglite' ? undefined : await backendUrl(backend, servers);
      if (dbUrl) durability.push(await durabilityOf(dbUrl));
      const svc = await startService({ ...(dbUrl ? { databaseUrl: dbUrl } : {}), dataDir: join(dataDir, backend), pool: POOL, redisUrl });
      try {
        for (const strategy of STRATEGIES) {
          log(`${backend} / ${strategy}: ${CONNECTIONS} connections for ${SECONDS} s ...`);
          const row = await runOne(backend, strategy, svc.url);
          log(`  ${row.claimsPerSec} claims/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, non-2xx ${row.non2xx}, audit ${row.auditOk ? 'ok' : 'FAILED'}`);
          rows.push(row);
        }
      } finally {
        await svc.stop();
      }
    }
  } finally {
    for (const s of servers) await s.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
  const meta = {
    command: 'npm run bench',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    seconds: SECONDS,
    connections: CONNECTIONS,
    dbPool: POOL,
    durability,
    note: 'One hot campaign, every request a new user (all succeed). Service, load generator and database servers share one 2-core machine; figures are noisy, compare ratios within one run. redis-lock uses a local Redis for its per-user locks.',
  };
  const out = join(ROOT, 'bench/results');
  writeFileSync(join(out, 'claims-baseline.json'), `${JSON.stringify({ meta, rows }, null, 2)}\n`);
  const base = rows[0]?.claimsPerSec || 1;
  const md = [
    `# Claims baseline (${meta.date.slice(0, 10)})`,
    '',
    `\`${meta.command}\` — ${meta.note}`,
    `Node ${meta.node}, ${meta.cpus} cores; ${CONNECTIONS} connections, ${SECONDS} s per run, DB pool ${POOL}. On commit: ${[...(BACKENDS.includes('pglite') ? ['PGlite in-process, its own settings'] : []), ...durability].join('; ')}.`,
    '',
    '| backend | strategy | claims/s | ratio to first row | p50 ms | p90 ms | p99 ms | non-2xx | audit |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.backend} | ${r.strategy} | ${r.claimsPerSec} | ${(r.claimsPerSec / base).toFixed(2)} | ${r.p50Ms} | ${r.p90Ms} | ${r.p99Ms} | ${r.non2xx} | ${r.auditOk ? 'ok' : 'FAILED'} |`),
    '',
  ].join('\n');
  writeFileSync(join(out, 'claims-baseline.md'), md);
  process.stdout.write(md);
}

await main();
