// bench:claims — durable claims per second on one hot campaign, engine level: 4 worker
// processes (each its own service and pool, bench/claims-worker.ts), a new user per request
// plus 10% repeats (replays), an Idempotency-Key on every request, per-user limit 1; every safe
// strategy side by side on PostgreSQL and MariaDB in one run. Next to them, in the same run, the
// machine's limits: the single hot-row update rate (one-statement conditional UPDATE from 32
// connections, pgbench-style) and the batched insert rate of the same claim rows with no guard.
// After each run the checks: every acknowledged claim is in the database, the campaign audit
// (issued = claims, limits) holds. Writes bench/results/claims.{json,md}.
//
//   npm run bench:claims
//   BENCH_BACKENDS=postgres BENCH_STRATEGIES=conditional,group-commit BENCH_SECONDS=5 npm run bench:claims
//   BENCH_HTTP_STRATEGIES= npm run bench:claims          (no HTTP level)
// Then the HTTP level per backend: one `allot serve` process, autocannon against /healthz and
// against claims per strategy (BENCH_HTTP_STRATEGIES, default conditional and group-commit),
// the same settings in the same run (needs the compiled CLI: npm run build).
import { execFileSync, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { startRedis, type TestServer } from '../src/lab/servers.ts';
import { AllotService } from '../src/service/service.ts';
import { BENCH_DURABLE, backendUrl, durabilityOf, runWorkers } from './workers.ts';
import { SAFE_STRATEGIES } from '../src/strategies/index.ts';
import { api, loadClaims, loadHealthz, startService } from './http-service.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 4);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 256);
const POOL = Number(process.env.BENCH_DB_POOL ?? 8);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'postgres,mysql').split(',');
// `redis-atomic-fast`: redis-atomic campaigns on workers in `fast` mode (201 after Redis).
const FAST = 'redis-atomic-fast';
const STRATEGIES = (process.env.BENCH_STRATEGIES ?? [...SAFE_STRATEGIES.filter((s) => s !== 'redis-lock'), FAST].join(',')).split(',');
const WORKER = fileURLToPath(new URL('./claims-worker.ts', import.meta.url));
// The HTTP level: one `allot serve` process, autocannon from this one.
const HTTP_SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 6);
const HTTP_CONNECTIONS = Number(process.env.BENCH_HTTP_CONNECTIONS ?? 128);
const HTTP_STRATEGIES = (process.env.BENCH_HTTP_STRATEGIES ?? 'conditional,group-commit,redis-atomic').split(',').filter((x) => x !== '');

interface Row {
  backend: string;
  strategy: string;
  claimsPerSec: number;
  replaysPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  refused: number;
  ratioToConditional: number;
  lostAcks: number;
  auditOk: boolean;
  rssMb: number[];
  /** `fast` mode: how long after the run the slowest worker's write-behind took to reach SQL */
  drainMs: number | null;
}

function log(msg: string): void {
  process.stderr.write(`[bench:claims] ${msg}\n`);
}

type Done = { type: 'done'; seconds: number; counts: { issued: number; replayed: number; refused: number; errors: number }; p50: number; p99: number; acked: string[]; rssMb: number; drainMs: number | null };

/** The Redis of redis-atomic (REDIS_URL, else one this bench starts), with a prefix per run. */
let redisUrl: string | null = null;
const lockPrefix = `bench-${randomUUID().slice(0, 8)}:`;

async function runStrategy(backend: string, url: string, service: AllotService, strategy: string): Promise<Omit<Row, 'ratioToConditional'>> {
  const campaignId = `bench-${strategy}-${randomUUID().slice(0, 8)}`;
  await service.createCampaign({ id: campaignId, kind: 'coupon', name: 'bench', stock: 100_000_000, strategy: strategy === FAST ? 'redis-atomic' : strategy, perUserLimit: 1 });
  const children = Array.from({ length: WORKERS }, () => fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  try {
    const results = await runWorkers<Done>(children, (worker) => ({ url, campaignId, strategy, worker, seconds: SECONDS, concurrency: CONCURRENCY, repeatShare: 0.1, pool: POOL, locksUrl: redisUrl, lockPrefix, fast: strategy === FAST }));
    const seconds = Math.max(...results.map((r) => r.seconds));
    const issued = results.reduce((a, r) => a + r.counts.issued, 0);
    const acked = results.flatMap((r) => r.acked);
    // Every acknowledged claim is in the database.
    let present = 0;
    for (let i = 0; i < acked.length; i += 1000) {
      const ids = acked.slice(i, i + 1000);
      present += Number((await sql<{ n: number }>`SELECT count(*) AS n FROM claims WHERE id IN (${sql.join(ids)})`.execute(service.db)).rows[0]?.n ?? 0);
    }
    const audit = await service.audit(campaignId);
    return {
      backend,
      strategy,
      claimsPerSec: Math.round(issued / seconds),
      replaysPerSec: Math.round(results.reduce((a, r) => a + r.counts.replayed, 0) / seconds),
      p50Ms: Math.max(...results.map((r) => r.p50)),
      p99Ms: Math.max(...results.map((r) => r.p99)),
      errors: results.reduce((a, r) => a + r.counts.errors, 0),
      refused: results.reduce((a, r) => a + r.counts.refused, 0),
      lostAcks: acked.length - present,
      auditOk: audit.ok,
      rssMb: results.map((r) => r.rssMb),
      drainMs: strategy === FAST ? Math.max(...results.map((r) => r.drainMs ?? 0)) : null,
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}

/** The machine's limits on this backend: the hot-row conditional update rate (32 connections,
 * one statement each, autocommit) and the rate of multi-row claim inserts with no guard. */
async function limits(service: AllotService, backend: string): Promise<{ hotRowUpdatesPerSec: number; batchedInsertRowsPerSec: number }> {
  const id = `bench-limit-${randomUUID().slice(0, 8)}`;
  await service.createCampaign({ id, kind: 'coupon', name: 'limit', stock: 100_000_000, strategy: 'conditional' });
  const secs = Math.min(SECONDS, 5);
  let updates = 0;
  let end = performance.now() + secs * 1000;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (performance.now() < end) {
      await sql`UPDATE campaigns SET issued = issued + 1 WHERE id = ${id} AND issued + 1 <= stock`.execute(service.db);
      updates++;
    }
  }));
  let rows = 0;
  let seq = 0;
  end = performance.now() + secs * 1000;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (performance.now() < end) {
      const values = Array.from({ length: 256 }, () => {
        const n = seq++;
        return sql`(${`lim-${id}-${n}`}, ${id}, ${`u-${n}`}, ${null}, ${'2026-12-02'}, ${0}, ${`k-${n}`}, ${null})`;
      });
      await sql`INSERT INTO claims (id, campaign_id, user_id, prize_id, utc_day, created_at, idem_key, draw) VALUES ${sql.join(values)}`.execute(service.db);
      rows += 256;
    }
  }));
  log(`${backend}: hot-row updates ${Math.round(updates / secs)}/s, batched inserts ${Math.round(rows / secs)} rows/s`);
  return { hotRowUpdatesPerSec: Math.round(updates / secs), batchedInsertRowsPerSec: Math.round(rows / secs) };
}

/** redis-benchmark's EVALSHA rate on the bench's Redis: a one-key script that increments a hash
 * field (the shape of redis-atomic's claim script, without its checks), 50 connections. */
async function evalshaLimit(url: string): Promise<number> {
  const r = new Redis(url);
  try {
    const sha = String(await r.script('LOAD', "return redis.call('HINCRBY', KEYS[1], 'n', 1)"));
    const u = new URL(url);
    const out = execFileSync('redis-benchmark', ['-h', u.hostname, '-p', u.port, '-c', '50', '-n', '300000', '-q', 'EVALSHA', sha, '1', `${lockPrefix}evalsha`], { encoding: 'utf8' });
    // "EVALSHA <sha> 1 <key>: 123456.79 requests per second, p50=0.2 msec"
    const m = /([\d.]+) requests per second/.exec(out.split('\r').pop() ?? out);
    if (!m) throw new Error(`cannot read redis-benchmark's output: ${out}`);
    return Math.round(Number(m[1]));
  } finally {
    r.disconnect();
  }
}

interface HttpRow {
  backend: string;
  /** 'healthz' for GET /healthz */
  target: string;
  perSec: number;
  /** claims/s (or requests/s) over the same run's /healthz rate */
  ofHealthz: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  /** claims issued in the database minus 201s received: the requests still in flight when
   * autocannon stopped (at most the connection count); negative would be a lost ack */
  issuedMinusAcked: number | null;
  auditOk: boolean | null;
}

/** The HTTP level on `url`'s database: /healthz, then each strategy's claims (a new user and an
 * Idempotency-Key per request), autocannon with the same settings, one `allot serve` process. */
async function httpLevel(backend: string, url: string): Promise<HttpRow[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'allot-bench-http-'));
  const svc = await startService({ databaseUrl: url, dataDir, pool: 16, ...(redisUrl ? { redisUrl } : {}) });
  const out: HttpRow[] = [];
  try {
    const o = { connections: HTTP_CONNECTIONS, seconds: HTTP_SECONDS };
    await loadHealthz(svc.url, { connections: 8, seconds: 1 });
    log(`${backend} / HTTP: /healthz, ${HTTP_CONNECTIONS} connections for ${HTTP_SECONDS} s ...`);
    const h = await loadHealthz(svc.url, o);
    const healthz = h['2xx'] / HTTP_SECONDS;
    out.push({ backend, target: 'healthz', perSec: Math.round(healthz), ofHealthz: 1, p50Ms: h.latency.p50, p99Ms: h.latency.p99, non2xx: h.non2xx, errors: h.errors + h.timeouts, issuedMinusAcked: null, auditOk: null });
    for (const strategy of HTTP_STRATEGIES) {
      const id = `bench-http-${strategy}-${randomUUID().slice(0, 8)}`;
      const created = await api(svc.url, 'POST', '/v1/campaigns', { id, name: 'bench', stock: 100_000_000, strategy, perUserLimit: 1 });
      if (created.status !== 201) throw new Error(`create failed: ${JSON.stringify(created.json)}`);
      // The requests autocannon leaves in flight still commit: count once they did.
      const settledIssued = async () => {
        let issued = -1;
        for (let last = -2; issued !== last; await delay(300)) {
          last = issued;
          issued = Number((await api(svc.url, 'GET', `/v1/campaigns/${id}`)).json.issued);
        }
        return issued;
      };
      await loadClaims(svc.url, id, { connections: 8, seconds: 1, prefix: `warm-${id}`, keys: true });
      const warmIssued = await settledIssued();
      log(`${backend} / HTTP: ${strategy} claims, ${HTTP_CONNECTIONS} connections for ${HTTP_SECONDS} s ...`);
      const r = await loadClaims(svc.url, id, { ...o, prefix: id, keys: true });
      const issued = (await settledIssued()) - warmIssued;
      let audit = await api(svc.url, 'GET', `/v1/campaigns/${id}/audit`);
      for (let attempt = 2; audit.status !== 200 && attempt <= 3; attempt++) {
        // An audit that could not run is not a failed invariant: say why, and ask again.
        log(`  the audit answered ${audit.status}: ${JSON.stringify(audit.json)}; the service logged:\n${svc.log().slice(-4000)}`);
        await delay(1000);
        audit = await api(svc.url, 'GET', `/v1/campaigns/${id}/audit`);
      }
      const perSec = r['2xx'] / HTTP_SECONDS;
      const row = { backend, target: strategy, perSec: Math.round(perSec), ofHealthz: +(perSec / healthz).toFixed(3), p50Ms: r.latency.p50, p99Ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts, issuedMinusAcked: issued - r['2xx'], auditOk: audit.json.ok === true };
      log(`  ${row.perSec} claims/s = ${(row.ofHealthz * 100).toFixed(1)}% of /healthz (${Math.round(healthz)}/s), p99 ${row.p99Ms} ms, non-2xx ${row.non2xx}, audit ${row.auditOk ? 'ok' : `FAILED: ${JSON.stringify(((audit.json.checks ?? []) as Array<{ ok: boolean }>).filter((c) => !c.ok))}`}`);
      out.push(row);
    }
  } finally {
    await svc.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return out;
}

async function main(): Promise<void> {
  const http: HttpRow[] = [];
  const rows: Row[] = [];
  const machine: Record<string, { hotRowUpdatesPerSec: number; batchedInsertRowsPerSec: number }> = {};
  const servers: TestServer[] = [];
  const durability: string[] = [];
  let evalshaPerSec: number | null = null;
  try {
    if (STRATEGIES.includes('redis-atomic') || STRATEGIES.includes(FAST) || HTTP_STRATEGIES.includes('redis-atomic')) {
      // AOF everysec: the setting the `fast` mode's loss window is stated for
      redisUrl = process.env.REDIS_URL ?? servers[servers.push(await startRedis(BENCH_DURABLE ? { persistence: 'everysec' } : {})) - 1]!.url;
      evalshaPerSec = await evalshaLimit(redisUrl);
      log(`redis-benchmark EVALSHA: ${evalshaPerSec}/s`);
    }
    for (const backend of BACKENDS) {
      const url = await backendUrl(backend, servers);
      durability.push(await durabilityOf(url));
      const service = await AllotService.open({ config: { databaseUrl: url, dbPoolSize: 40, dbTimeoutMs: 60_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, ...(redisUrl ? { locksUrl: redisUrl, lockPrefix } : {}) }, payouts: { sweepIntervalMs: 0 } });
      try {
        const mine: Array<Omit<Row, 'ratioToConditional'>> = [];
        for (const strategy of STRATEGIES) {
          log(`${backend} / ${strategy}: ${WORKERS} processes x ${CONCURRENCY} callers for ${SECONDS} s ...`);
          const r = await runStrategy(backend, url, service, strategy);
          log(`  ${r.claimsPerSec} claims/s (+${r.replaysPerSec} replays/s), p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, errors ${r.errors}, lost acks ${r.lostAcks}, audit ${r.auditOk ? 'ok' : 'FAILED'}, RSS ${r.rssMb.join('/')} MB${r.drainMs === null ? '' : `, write-behind drained ${r.drainMs} ms after the run`}`);
          mine.push(r);
        }
        const base = mine.find((r) => r.strategy === 'conditional')?.claimsPerSec ?? 0;
        rows.push(...mine.map((r) => ({ ...r, ratioToConditional: base > 0 ? +(r.claimsPerSec / base).toFixed(2) : 0 })));
        machine[backend] = await limits(service, backend);
      } finally {
        await service.close();
      }
      if (HTTP_STRATEGIES.length > 0) http.push(...(await httpLevel(backend, url)));
    }
  } finally {
    for (const s of servers) await s.destroy();
  }
  const date = new Date().toISOString().slice(0, 10);
  const md = [
    `# Claims, engine level (${date})`,
    '',
    `\`npm run bench:claims\` — one hot campaign (stock larger than the run takes, per-user limit 1), ${WORKERS} worker processes each with its own service and a pool of ${POOL}, ${CONCURRENCY} concurrent callers per process, ${SECONDS} s per strategy; a new user per request plus 10% repeats of an issued request (the same user and key: a replay, not counted as a claim); an Idempotency-Key on every request. Checked after each run: every acknowledged claim is in the database (lost acks) and the campaign audit holds. One shared 2-core machine (the workers and the database share it): compare within one run.`,
    `Node ${process.version}, ${cpus().length} cores. On commit: ${durability.join('; ')}${redisUrl && !process.env.REDIS_URL ? `; Redis ${BENCH_DURABLE ? 'AOF appendfsync everysec' : 'without persistence'}` : ''}.`,
    '',
    `\`${FAST}\` is \`redis-atomic\` in \`fast\` mode (201 after Redis; each worker writes its claims to SQL behind the answers): its claims/s are 201s per second; "drain ms" is how long after the run the slowest worker still wrote its backlog to SQL (a backlog that grows means SQL does not keep up: the sustained rate is lower), and lost acks are counted after that.`,
    '',
    '| backend | strategy | claims/s | × conditional | replays/s | p50 ms | p99 ms | errors | lost acks | audit | RSS per worker (MB) | drain ms |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|',
    ...rows.map((r) => `| ${r.backend} | ${r.strategy} | ${r.claimsPerSec} | ${r.ratioToConditional.toFixed(2)} | ${r.replaysPerSec} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} | ${r.lostAcks} | ${r.auditOk ? 'ok' : 'FAILED'} | ${r.rssMb.join(' / ')} | ${r.drainMs ?? '—'} |`),
    '',
    'The machine\'s limits in the same run (one process, no allot code in the path):',
    '',
    '| backend | hot-row conditional UPDATEs/s (32 connections) | claim rows inserted/s (multi-row INSERT of 256, 4 connections, no guard) |',
    '|---|---:|---:|',
    ...Object.entries(machine).map(([b, m]) => `| ${b} | ${m.hotRowUpdatesPerSec} | ${m.batchedInsertRowsPerSec} |`),
    '',
    ...(evalshaPerSec === null ? [] : [
      `Redis (redis-atomic's): redis-benchmark EVALSHA of a one-key HINCRBY script, 50 connections: **${evalshaPerSec}/s**. redis-atomic's claims/s as a share of it: ${rows.filter((r) => r.strategy === 'redis-atomic' || r.strategy === FAST).map((r) => `${r.backend} ${r.strategy} ${((r.claimsPerSec / evalshaPerSec!) * 100).toFixed(1)}%`).join(', ')}.`,
      '',
    ]),
    ...(http.length === 0 ? [] : [
      '## HTTP level',
      '',
      `One \`allot serve\` process (pool 16) on the same database, autocannon in the bench process with ${HTTP_CONNECTIONS} connections for ${HTTP_SECONDS} s per row: first \`GET /healthz\` (what the HTTP layer alone carries here), then claims on one hot campaign, each request from a new user with its own Idempotency-Key. "issued − 201s" is the database's count minus the 201s received: at most the ${HTTP_CONNECTIONS} requests still in flight when autocannon stopped (it drops their answers), never negative (a negative count would be an acknowledged claim the database does not have).`,
      '',
      '| backend | target | per second | of /healthz | p50 ms | p99 ms | non-2xx | errors | issued − 201s | audit |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
      ...http.map((r) => `| ${r.backend} | ${r.target === 'healthz' ? 'GET /healthz' : `claims, ${r.target}`} | ${r.perSec} | ${(r.ofHealthz * 100).toFixed(1)}% | ${r.p50Ms} | ${r.p99Ms} | ${r.non2xx} | ${r.errors} | ${r.issuedMinusAcked ?? '—'} | ${r.auditOk === null ? '—' : r.auditOk ? 'ok' : 'FAILED'} |`),
      '',
    ]),
  ].join('\n');
  writeFileSync(new URL('./results/claims.json', import.meta.url), `${JSON.stringify({ date, node: process.version, cores: cpus().length, durability, seconds: SECONDS, workers: WORKERS, concurrency: CONCURRENCY, pool: POOL, rows, machine, evalshaPerSec, http: { seconds: HTTP_SECONDS, connections: HTTP_CONNECTIONS, rows: http } }, null, 2)}\n`);
  writeFileSync(new URL('./results/claims.md', import.meta.url), md);
  process.stdout.write(md);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
