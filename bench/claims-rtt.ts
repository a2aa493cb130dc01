// `npm run bench:claims-rtt`: group-commit on PostgreSQL and MariaDB with the database a network
// away. One process, one service, 256 callers on one hot campaign, a new user and
// Idempotency-Key per request, through the lab's TCP proxy adding a delay each way (0, 0.5 and
// 2 ms by default: the database on loopback, in the same zone, across zones). Each setting runs
// the batch both ways, interleaved: ONE round trip per batch (the default: one statement on
// PostgreSQL, one compound statement on MariaDB) and one statement per step inside BEGIN …
// COMMIT (six round trips on PostgreSQL, eleven on MariaDB; `groupCommit: { oneStatement: false }`).
// Checked after each run: every acknowledged claim is in the database, the audit holds.
// Writes bench/results/claims-rtt.{json,md}. Env: DATABASE_URL_PG / DATABASE_URL_MYSQL (else
// loopback servers this bench starts), BENCH_RTT_BACKENDS (postgres,mysql), BENCH_RTT_DELAYS (ms
// each way, comma-separated), BENCH_RTT_ROUNDS (2), BENCH_RTT_SECONDS (6), BENCH_RTT_CALLERS (256).
import { cpus } from 'node:os';
import { writeFileSync } from 'node:fs';
import { sql } from 'kysely';
import { startFaultProxy } from '../src/lab/proxy.ts';
import type { TestServer } from '../src/lab/servers.ts';
import { AllotService } from '../src/service/service.ts';
import { backendUrl, durabilityOf } from './workers.ts';

const BACKENDS = (process.env.BENCH_RTT_BACKENDS ?? 'postgres,mysql').split(',');
const DELAYS = (process.env.BENCH_RTT_DELAYS ?? '0,0.5,2').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_RTT_ROUNDS ?? 2);
const SECONDS = Number(process.env.BENCH_RTT_SECONDS ?? 6);
const CALLERS = Number(process.env.BENCH_RTT_CALLERS ?? 256);
const SHAPES = ['one statement', 'transaction'] as const;
type Shape = (typeof SHAPES)[number];

interface Run {
  backend: string;
  delayMs: number;
  shape: Shape;
  round: number;
  claimsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  lostAcks: number;
  auditOk: boolean;
}

const log = (s: string) => process.stderr.write(`[bench:claims-rtt] ${s}\n`);

async function runOnce(backend: string, url: string, delayMs: number, shape: Shape, round: number, seq: number): Promise<Run> {
  const u = new URL(url);
  const proxy = await startFaultProxy({ target: { host: u.hostname, port: Number(u.port) } });
  proxy.setLatency(delayMs);
  const service = await AllotService.open({
    config: { databaseUrl: proxy.url(url), dbPoolSize: 8, dbTimeoutMs: 60_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
    migrate: false,
    payouts: { sweepIntervalMs: 0 },
    groupCommit: { oneStatement: shape === 'one statement' },
  });
  try {
    const campaignId = `rtt-${Date.now()}-${seq}`;
    await service.createCampaign({ id: campaignId, kind: 'coupon', name: 'bench', stock: 100_000_000, strategy: 'group-commit', perUserLimit: 1 });
    const lat: number[] = [];
    const acked: string[] = [];
    let errors = 0;
    let n = 0;
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    await Promise.all(Array.from({ length: CALLERS }, async () => {
      while (performance.now() < end) {
        const i = n++;
        const t = performance.now();
        try {
          const out = await service.claim(campaignId, `u${i}`, `k${i}`);
          if (out.status === 201) acked.push((out.body as { claim: { id: string } }).claim.id);
          else errors++;
        } catch {
          errors++;
        }
        lat.push(performance.now() - t);
      }
    }));
    const seconds = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    const q = (p: number) => +(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0).toFixed(1);
    const stored = new Set((await sql<{ id: string }>`SELECT id FROM claims WHERE campaign_id = ${campaignId}`.execute(service.db)).rows.map((r) => String(r.id)));
    const lostAcks = acked.filter((id) => !stored.has(id)).length;
    const audit = await service.audit(campaignId);
    return { backend, delayMs, shape, round, claimsPerSec: Math.round(acked.length / seconds), p50Ms: q(0.5), p99Ms: q(0.99), errors, lostAcks, auditOk: audit.ok };
  } finally {
    await service.close();
    await proxy.close();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const servers: TestServer[] = [];
  const runs: Run[] = [];
  const durability: string[] = [];
  try {
    for (const backend of BACKENDS) {
      const url = await backendUrl(backend, servers);
      durability.push(await durabilityOf(url));
      // Migrate once, directly (the runs open their services without migrating).
      await (await AllotService.open({ config: { databaseUrl: url, dbPoolSize: 2, dbTimeoutMs: 60_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false }, payouts: { sweepIntervalMs: 0 } })).close();
      let seq = 0;
      for (const delay of DELAYS) {
        for (let round = 1; round <= ROUNDS; round++) {
          // Alternate which shape goes first, so a drift of the machine favours neither.
          const order = round % 2 === 1 ? SHAPES : [...SHAPES].reverse();
          for (const shape of order) {
            const r = await runOnce(backend, url, delay, shape, round, ++seq);
            log(`${backend}, delay ${delay} ms each way, ${shape}, round ${round}: ${r.claimsPerSec} claims/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, errors ${r.errors}, lost acks ${r.lostAcks}, audit ${r.auditOk ? 'ok' : 'FAILED'}`);
            runs.push(r);
          }
        }
      }
    }
  } finally {
    for (const s of servers) await s.destroy();
  }
  const date = new Date().toISOString().slice(0, 10);
  const rowsMd = BACKENDS.flatMap((backend) => DELAYS.map((delay) => {
    const of = (shape: Shape) => runs.filter((r) => r.backend === backend && r.delayMs === delay && r.shape === shape);
    const one = of('one statement');
    const tx = of('transaction');
    const fmt = (rs: Run[]) => `${Math.round(median(rs.map((r) => r.claimsPerSec)))} (${rs.map((r) => r.claimsPerSec).join(', ')})`;
    const ok = [...one, ...tx].every((r) => r.lostAcks === 0 && r.auditOk && r.errors === 0);
    return `| ${backend === 'mysql' ? 'MariaDB' : 'PostgreSQL'} | ${delay} ms (RTT ${2 * delay} ms) | ${fmt(one)} | ${median(one.map((r) => r.p99Ms)).toFixed(1)} | ${fmt(tx)} | ${median(tx.map((r) => r.p99Ms)).toFixed(1)} | ${(median(one.map((r) => r.claimsPerSec)) / median(tx.map((r) => r.claimsPerSec))).toFixed(2)}× | ${ok ? 'ok' : 'FAILED'} |`;
  }));
  const md = [
    `# group-commit with the database a network away (${date})`,
    '',
    `\`npm run bench:claims-rtt\` — ${BACKENDS.map((b) => (b === 'mysql' ? 'MariaDB' : 'PostgreSQL')).join(' and ')}, one process, one service (pool 8), ${CALLERS} callers on one hot campaign for ${SECONDS} s per run, a new user and Idempotency-Key per request; the service reaches the database through the lab's TCP proxy, which delays every chunk by the given time in each direction. Each delay runs both batch shapes ${ROUNDS} times, interleaved: **one round trip** per batch (the default — PostgreSQL: one statement of data-modifying CTEs, committed on its own; MariaDB: one anonymous compound statement, BEGIN NOT ATOMIC … END, that runs the transaction on the server) and **transaction** (BEGIN, one statement per step, COMMIT: six round trips on PostgreSQL, eleven on MariaDB; \`groupCommit: { oneStatement: false }\`). Checked after every run: no errors, every acknowledged claim in the database, the audit holds. Node ${process.version}, ${cpus().length} cores; compare within one run. On commit: ${durability.join('; ')}.`,
    '',
    '| database | delay each way | one round trip: claims/s, median (runs) | p99 ms | transaction: claims/s, median (runs) | p99 ms | one round trip ÷ transaction | checks |',
    '|---|---|---:|---:|---:|---:|---:|---|',
    ...rowsMd,
    '',
  ].join('\n');
  writeFileSync(new URL('./results/claims-rtt.json', import.meta.url), `${JSON.stringify({ date, node: process.version, cores: cpus().length, durability, backends: BACKENDS, seconds: SECONDS, callers: CALLERS, rounds: ROUNDS, runs }, null, 2)}\n`);
  writeFileSync(new URL('./results/claims-rtt.md', import.meta.url), md);
  process.stdout.write(md);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
