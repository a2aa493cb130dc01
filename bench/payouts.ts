// Payouts benchmark: withdrawals/s and transfers/s (a zero-latency simulated rail) next to the
// `conditional` claims/s of the same run, on each backend, through the engine (in this process)
// and through HTTP (`allot serve` in its own process, driven by autocannon). What the
// at-most-once guarantee costs: the ratio claims/s ÷ withdrawals/s (target <= 1.5).
// Writes bench/results/payouts.{json,md}.
//
//   npm run bench:payouts                      postgres and mysql (starts private servers)
//   BENCH_BACKENDS=pglite,postgres BENCH_SECONDS=5 npm run bench:payouts
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { freePort, type TestServer } from '../src/lab/servers.ts';
import { InProcessSimRail } from '../src/rail/in-process.ts';
import { spawnSimRail } from '../src/rail/spawn.ts';
import { AllotService } from '../src/service/service.ts';
import { sql } from 'kysely';
import { connectSql } from '../src/adapters/sql/connect.ts';
import { backendUrl, durabilityOf } from './workers.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const CONCURRENCY = Number(process.env.BENCH_CONNECTIONS ?? 32);
const POOL = Number(process.env.BENCH_DB_POOL ?? 16);
const USERS = 1000;
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'postgres,mysql').split(',');
const TOKEN = 'bench-token-0123456789abcdefghij';
const ROOT = new URL('..', import.meta.url).pathname;

interface Row {
  backend: string;
  layer: 'engine' | 'http';
  operation: 'claim (conditional)' | 'withdrawal' | 'withdrawal, one house row' | 'transfer';
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** claims/s of the same backend and layer ÷ this rate */
  costVsClaim: number;
  auditOk: boolean;
}

function log(msg: string): void {
  process.stderr.write(`[bench:payouts] ${msg}\n`);
}

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** `CONCURRENCY` loops calling `op` for SECONDS; returns ops/s and latency. */
async function drive(op: (i: number) => Promise<boolean>): Promise<{ perSec: number; p50Ms: number; p99Ms: number; errors: number; done: number }> {
  const lat: number[] = [];
  let i = 0;
  let ok = 0;
  let errors = 0;
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          if (await op(i++)) ok++;
          else errors++;
        } catch {
          errors++;
        }
        lat.push(performance.now() - t);
      }
    }),
  );
  const secs = (performance.now() - started) / 1000;
  lat.sort((a, b) => a - b);
  return { perSec: Math.round(ok / secs), p50Ms: +quantile(lat, 0.5).toFixed(1), p99Ms: +quantile(lat, 0.99).toFixed(1), errors, done: ok };
}

async function engineRows(backend: string, url: string): Promise<Row[]> {
  const run = Date.now().toString(36);
  const service = await AllotService.open({
    config: { databaseUrl: url, dbPoolSize: POOL, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
    rail: new InProcessSimRail({ latencyMs: 0 }),
  });
  try {
    const users = Array.from({ length: USERS }, (_, i) => `bu-${run}-${i}`);
    log(`${backend}: funding ${USERS} users`);
    for (let i = 0; i < USERS; i += 50) {
      await Promise.all(users.slice(i, i + 50).map((u) => service.payouts.fund({ fundingId: `bf-${u}`, userId: u, asset: 'BENCH', amount: 10n ** 15n })));
    }
    const campaign = `bench-claims-${run}`;
    await service.createCampaign({ id: campaign, kind: 'coupon', name: 'bench', stock: 100_000_000, strategy: 'conditional' });
    const rows: Row[] = [];
    // Warm the paths (connections, JIT, caches).
    await Promise.all(Array.from({ length: 50 }, (_, i) => service.claim(campaign, `warm-${i}`, `warm-${i}`)));
    log(`${backend} engine: claims`);
    const claims = await drive(async (i) => (await service.claim(campaign, `c-${run}-${i}`, `k-${i}`)).status === 201);
    log(`  ${claims.perSec}/s`);
    log(`${backend} engine: withdrawals by ${USERS} users`);
    const withdrawals = await drive(async (i) => (await service.payouts.withdraw(users[i % USERS]!, 'BENCH', 1n, `w-${run}-${i}`)).status === 201);
    log(`  ${withdrawals.perSec}/s`);
    // The design allot does not use, measured: every withdrawal also credits one system row per
    // asset ("house paid-out account"), updated in the withdrawal's transaction, where its journal
    // line is written (a trigger, installed for this row only and removed after).
    let house: Awaited<ReturnType<typeof drive>> | null = null;
    if (backend !== 'pglite') {
      await houseRow(url, true);
      try {
        log(`${backend} engine: withdrawals by ${USERS} users, each also crediting one house row`);
        house = await drive(async (i) => (await service.payouts.withdraw(users[i % USERS]!, 'BENCH', 1n, `wh-${run}-${i}`)).status === 201);
        log(`  ${house.perSec}/s`);
      } finally {
        await houseRow(url, false);
      }
    }
    log(`${backend} engine: transfers by ${USERS} users (received, executed, settled)`);
    const started = performance.now();
    const transfers = await drive(async (i) => (await service.payouts.transfer({ orderId: `t-${run}-${i}`, userId: users[i % USERS]!, asset: 'BENCH', amount: 1n, destination: 'bench' })).status === 202);
    await service.payouts.idle();
    // Settled orders per second, the drain after the last receipt included.
    const settledPerSec = Math.round(transfers.done / ((performance.now() - started) / 1000));
    log(`  received ${transfers.perSec}/s, settled ${settledPerSec}/s`);
    const audit = await service.payouts.audit();
    const ok = audit.ok && (await service.audit(campaign)).ok;
    const row = (operation: Row['operation'], r: { perSec: number; p50Ms: number; p99Ms: number; errors: number }): Row => ({
      backend, layer: 'engine', operation, perSec: r.perSec, p50Ms: r.p50Ms, p99Ms: r.p99Ms, errors: r.errors, costVsClaim: +(claims.perSec / Math.max(1, r.perSec)).toFixed(2), auditOk: ok,
    });
    rows.push(row('claim (conditional)', claims), row('withdrawal', withdrawals), ...(house ? [row('withdrawal, one house row', house)] : []), row('transfer', { ...transfers, perSec: settledPerSec }));
    return rows;
  } finally {
    await service.close();
  }
}

/** Installs (or removes) a trigger crediting one `bench_house` row per asset with every
 * withdrawal's paid-out line: the hot system account a ledger could have, for comparison. */
async function houseRow(url: string, install: boolean): Promise<void> {
  const conn = await connectSql({ url, poolSize: 1, timeoutMs: 10_000 });
  const statements = conn.family === 'pg'
    ? (install
      ? [
        'CREATE TABLE IF NOT EXISTS bench_house (asset varchar(32) PRIMARY KEY, paid_out bigint NOT NULL DEFAULT 0)',
        "INSERT INTO bench_house (asset) VALUES ('BENCH') ON CONFLICT DO NOTHING",
        `CREATE OR REPLACE FUNCTION bench_house_credit() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN UPDATE bench_house SET paid_out = paid_out + NEW.amount WHERE asset = NEW.asset; RETURN NULL; END $$`,
        "CREATE TRIGGER bench_house_credit AFTER INSERT ON ledger_lines FOR EACH ROW WHEN (NEW.bucket = 'paid_out' AND NEW.entry_id LIKE 'w:%') EXECUTE FUNCTION bench_house_credit()",
      ]
      : ['DROP TRIGGER IF EXISTS bench_house_credit ON ledger_lines'])
    : (install
      ? [
        'CREATE TABLE IF NOT EXISTS bench_house (asset varchar(32) PRIMARY KEY, paid_out bigint NOT NULL DEFAULT 0) ENGINE=InnoDB',
        "INSERT IGNORE INTO bench_house (asset) VALUES ('BENCH')",
        `CREATE TRIGGER bench_house_credit AFTER INSERT ON ledger_lines FOR EACH ROW
          IF NEW.bucket = 'paid_out' AND NEW.entry_id LIKE 'w:%' THEN UPDATE bench_house SET paid_out = paid_out + NEW.amount WHERE asset = NEW.asset; END IF`,
      ]
      : ['DROP TRIGGER IF EXISTS bench_house_credit']);
  try {
    for (const text of statements) await sql.raw(text).execute(conn.db);
  } finally {
    await conn.db.destroy();
  }
}

async function startService(databaseUrl: string | undefined, dataDir: string, railUrl: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), ALLOT_DATA_DIR: dataDir, ALLOT_ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn', DB_POOL_SIZE: String(POOL), ALLOT_RAIL_URL: railUrl };
  delete env.REDIS_URL;
  delete env.LOCKS_URL;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  else delete env.DATABASE_URL;
  const child = spawn(process.execPath, ['bin/allot.js', 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += String(d)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`allot serve exited: ${err}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return { url, child };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`allot serve did not become ready: ${err}`);
}

async function api(url: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}${path}`, { method: body ? 'POST' : 'GET', headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function httpRows(backend: string, dbUrl: string | undefined, dataDir: string, railUrl: string): Promise<Row[]> {
  const svc = await startService(dbUrl, dataDir, railUrl);
  try {
    const run = Date.now().toString(36);
    const users = Array.from({ length: USERS }, (_, i) => `hu-${run}-${i}`);
    log(`${backend} http: funding ${USERS} users`);
    for (let i = 0; i < USERS; i += 50) await Promise.all(users.slice(i, i + 50).map((u) => api(svc.url, '/v1/fundings', { fundingId: `hf-${u}`, userId: u, asset: 'BENCH', amount: '1000000000000000' })));
    const campaign = `bench-http-${run}`;
    await api(svc.url, '/v1/campaigns', { id: campaign, name: 'bench', stock: 100_000_000, strategy: 'conditional' });
    let seq = 0;
    const load = (path: string, body: (n: number) => string, key: boolean, duration = SECONDS) =>
      autocannon({
        url: `${svc.url}${path}`,
        connections: CONCURRENCY,
        duration,
        requests: [{
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          setupRequest: (req) => {
            const n = seq++;
            return { ...req, body: body(n), headers: { ...req.headers, ...(key ? { 'idempotency-key': `hk-${run}-${n}` } : {}) } };
          },
        }],
      });
    await load(`/v1/campaigns/${campaign}/claims`, (n) => `{"userId":"warm-${n}"}`, true, 1);
    const out: Array<[Row['operation'], autocannon.Result]> = [];
    log(`${backend} http: claims`);
    out.push(['claim (conditional)', await load(`/v1/campaigns/${campaign}/claims`, (n) => `{"userId":"hc-${run}-${n}"}`, true)]);
    log(`${backend} http: withdrawals`);
    out.push(['withdrawal', await load('/v1/withdrawals', (n) => `{"userId":"${users[n % USERS]}","asset":"BENCH","amount":1}`, true)]);
    log(`${backend} http: transfers (receipts; executed by the service's executor)`);
    out.push(['transfer', await load('/v1/transfers', (n) => `{"orderId":"ht-${run}-${n}","userId":"${users[n % USERS]}","asset":"BENCH","amount":1,"destination":"bench"}`, false)]);
    // Let the executor drain, then audit.
    for (let i = 0; i < 300; i++) {
      const r = await api(svc.url, '/v1/transfers?state=received&limit=1');
      const e = await api(svc.url, '/v1/transfers?state=executing&limit=1');
      if ((r.json.transfers as unknown[]).length === 0 && (e.json.transfers as unknown[]).length === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const audit = (await api(svc.url, '/v1/ledger/audit')).json.ok === true && (await api(svc.url, `/v1/campaigns/${campaign}/audit`)).json.ok === true;
    const claimsPerSec = Math.round(out[0]![1]['2xx'] / SECONDS);
    return out.map(([operation, r]) => {
      const perSec = Math.round(r['2xx'] / SECONDS);
      return { backend, layer: 'http' as const, operation, perSec, p50Ms: r.latency.p50, p99Ms: r.latency.p99, errors: r.non2xx + r.errors + r.timeouts, costVsClaim: +(claimsPerSec / Math.max(1, perSec)).toFixed(2), auditOk: audit };
    });
  } finally {
    svc.child.kill('SIGTERM');
    await new Promise((r) => svc.child.once('exit', r));
  }
}

/** The house-row comparison, per backend: what one shared system row would cost withdrawals. */
function houseNotes(rows: Row[]): string[] {
  const notes: string[] = [];
  for (const backend of new Set(rows.map((r) => r.backend))) {
    const plain = rows.find((r) => r.backend === backend && r.layer === 'engine' && r.operation === 'withdrawal');
    const house = rows.find((r) => r.backend === backend && r.layer === 'engine' && r.operation === 'withdrawal, one house row');
    if (!plain || !house) continue;
    notes.push(`- ${backend}: with one house row per asset, withdrawals by ${USERS.toLocaleString('en-US')} users run at ${(house.perSec / Math.max(1, plain.perSec)).toFixed(2)}x the rate without it (${house.perSec} against ${plain.perSec}/s; p99 ${house.p99Ms} against ${plain.p99Ms} ms).`);
  }
  return notes.length === 0 ? [] : ['"withdrawal, one house row": the design allot does not use, measured in the same run — each withdrawal also credits one system row per asset in its own transaction (a trigger on its paid-out journal line, installed for that row only). allot derives system balances from the journal instead.', '', ...notes, ''];
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const servers: TestServer[] = [];
  const durability: string[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'allot-bench-payouts-'));
  const rail = await spawnSimRail({ latencyMs: 0 });
  try {
    for (const backend of BACKENDS) {
      if (!['pglite', 'postgres', 'mysql'].includes(backend)) throw new Error(`unknown backend ${backend} (pglite, postgres, mysql)`);
      const dbUrl = backend === 'pglite' ? undefined : await backendUrl(backend, servers);
      if (dbUrl) durability.push(await durabilityOf(dbUrl));
      rows.push(...(await engineRows(backend, dbUrl ?? `pglite://${join(dataDir, `engine-${backend}`)}`)));
      rows.push(...(await httpRows(backend, dbUrl, join(dataDir, backend), rail.url)));
    }
  } finally {
    await rail.stop();
    for (const s of servers) await s.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
  const date = new Date().toISOString().slice(0, 10);
  const md = [
    `# Payouts (${date})`,
    '',
    '`npm run bench:payouts` — withdrawals by 1,000 distinct users (one unit each, a new Idempotency-Key per request) and transfer orders (a zero-latency simulated rail: in-process for the engine rows, its own process for the HTTP rows) next to `conditional` claims of one hot campaign, in the same run. Engine rows: ' +
      `${CONCURRENCY} concurrent calls in the bench process; HTTP rows: \`allot serve\` in its own process, autocannon with ${CONCURRENCY} connections. ` +
      'Engine transfer rows count orders settled (received, executed at the rail, posted), the drain after the last receipt included; HTTP transfer rows count receipts (202), executed in the background. ' +
      '`cost` = claims/s ÷ this rate (target for withdrawals: <= 1.5). One shared 2-core machine: compare ratios within one run.',
    `Node ${process.version}, ${cpus().length} cores; ${SECONDS} s per run, DB pool ${POOL}. On commit: ${[...durability, ...(BACKENDS.includes('pglite') ? ['PGlite in-process, its own settings'] : [])].join('; ')}.`,
    '',
    '| backend | layer | operation | per second | cost vs claim | p50 ms | p99 ms | errors | audit |',
    '|---|---|---|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.backend} | ${r.layer} | ${r.operation} | ${r.perSec} | ${r.costVsClaim.toFixed(2)} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} | ${r.auditOk ? 'ok' : 'FAILED'} |`),
    '',
    ...houseNotes(rows),
  ].join('\n');
  writeFileSync(new URL('./results/payouts.json', import.meta.url), `${JSON.stringify({ date, node: process.version, cores: cpus().length, seconds: SECONDS, concurrency: CONCURRENCY, pool: POOL, rows }, null, 2)}\n`);
  writeFileSync(new URL('./results/payouts.md', import.meta.url), md);
  process.stdout.write(md);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
