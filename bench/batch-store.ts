// The SQL ceiling of group-commit on this machine: worker processes commit batches of claims
// straight to the batch store (SqlClaimBatchStore.commitBatch, no service, no HTTP, no queue),
// one batch in flight per process, all on one hot campaign, each claim with its key, counter and
// stock unit — the same rows a claim writes. What `bench:claims` reaches is this minus the
// service's own CPU on the same two cores.
//
//   npm run bench:batch-store   (writes bench/results/batch-store.md)
//   (DATABASE_URL_PG, else a loopback server is started; BENCH_BATCH_WORKERS (4),
//   BENCH_BATCH_SIZE (256), BENCH_BATCH_SECONDS (6), BENCH_BATCH_SHAPE: one|transaction|both)
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { SqlClaimBatchStore } from '../src/adapters/sql/sql-batch.ts';
import { sqlDialect } from '../src/adapters/sql/dialect.ts';
import type { TestServer } from '../src/lab/servers.ts';
import type { BatchMember } from '../src/ports/claim-batch.ts';
import { AllotService } from '../src/service/service.ts';
import { backendUrl, durabilityOf } from './workers.ts';

const WORKERS = Number(process.env.BENCH_BATCH_WORKERS ?? 4);
const SIZE = Number(process.env.BENCH_BATCH_SIZE ?? 256);
const SECONDS = Number(process.env.BENCH_BATCH_SECONDS ?? 6);
const SHAPES = (process.env.BENCH_BATCH_SHAPE ?? 'both') === 'both' ? ['one', 'transaction'] : [process.env.BENCH_BATCH_SHAPE!];

interface Job { url: string; campaignId: string; worker: number; shape: string }
interface Done { claims: number; batches: number; p50Ms: number; p99Ms: number }

const openService = (url: string) => AllotService.open({ config: { databaseUrl: url, dbPoolSize: 2, dbTimeoutMs: 60_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false }, migrate: false, payouts: { sweepIntervalMs: 0 } });

async function worker(job: Job, ready: () => Promise<void>): Promise<Done> {
  const service = await openService(job.url);
  try {
    await ready();
    const store = new SqlClaimBatchStore(service.db, sqlDialect('pg'), { oneStatement: job.shape === 'one' });
    const now = Date.now();
    let n = 0;
    const member = (): BatchMember => {
      const i = ++n;
      const id = `b${job.worker}-${i}`;
      return {
        claim: { id: `${job.campaignId}-${id}`, campaignId: job.campaignId, userId: `u-${id}`, prizeId: null, createdAt: now },
        day: new Date(now).toISOString().slice(0, 10),
        idempotencyKey: `k-${id}`,
        draw: null,
        completion: { scope: job.campaignId, key: `k-${id}`, owner: `req-${id}`, response: { status: 201, body: { claim: { id: `${job.campaignId}-${id}`, campaignId: job.campaignId, userId: `u-${id}`, createdAt: new Date(now).toISOString() } } }, ref: `${job.campaignId}-${id}` },
        takeKey: { fingerprint: 'f'.repeat(64), lockedUntil: now + 10_000, createdAt: now },
      };
    };
    const limits = { perUserLimit: 1, perUserDailyLimit: null, day: new Date(now).toISOString().slice(0, 10) };
    const lat: number[] = [];
    let claims = 0;
    const end = performance.now() + SECONDS * 1000;
    while (performance.now() < end) {
      const members = Array.from({ length: SIZE }, member).sort((a, b) => (a.claim.userId < b.claim.userId ? -1 : 1));
      const t = performance.now();
      const v = await store.commitBatch({ campaignId: job.campaignId, prizeId: null }, limits, members, 'all');
      lat.push(performance.now() - t);
      if (v === null) throw new Error('the campaign ran out of stock');
      claims += v.filter((x) => x.kind === 'issued').length;
    }
    lat.sort((a, b) => a - b);
    return { claims, batches: lat.length, p50Ms: +lat[lat.length >> 1]!.toFixed(1), p99Ms: +lat[Math.floor(lat.length * 0.99)]!.toFixed(1) };
  } finally {
    await service.close();
  }
}

async function main(): Promise<void> {
  const servers: TestServer[] = [];
  const lines: string[] = [];
  let durability = '';
  try {
    const url = await backendUrl('postgres', servers);
    durability = await durabilityOf(url);
    const admin = await AllotService.open({ config: { databaseUrl: url, dbPoolSize: 2, dbTimeoutMs: 60_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false }, payouts: { sweepIntervalMs: 0 } });
    try {
      for (const shape of SHAPES) {
        const campaignId = `batch-${shape}-${Date.now()}`;
        await admin.createCampaign({ id: campaignId, kind: 'coupon', name: 'bench', stock: 1_000_000_000, strategy: 'group-commit', perUserLimit: 1 });
        const children = Array.from({ length: WORKERS }, () => fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, BENCH_BATCH_ROLE: 'worker' }, execArgv: ['--import', 'tsx'] }));
        // Every worker connected and waiting before any starts: they run side by side.
        const ready = children.map((c) => once(c, 'message'));
        children.forEach((c, worker) => c.send({ url, campaignId, worker, shape } satisfies Job));
        await Promise.all(ready);
        const done = children.map((c) => once(c, 'message') as Promise<[Done]>);
        for (const c of children) c.send('go');
        const results = (await Promise.all(done)).map(([d]) => d);
        const claims = results.reduce((s, r) => s + r.claims, 0);
        const stored = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM claims WHERE campaign_id = ${campaignId}`.execute(admin.db)).rows[0]!.n);
        const audit = await admin.audit(campaignId);
        const line = `${shape === 'one' ? 'one statement' : 'transaction'}: ${WORKERS} processes x batches of ${SIZE}: ${Math.round(claims / SECONDS)} claims/s, per batch p50 ${results.map((r) => r.p50Ms).join('/')} ms, p99 ${results.map((r) => r.p99Ms).join('/')} ms; claims stored ${stored} of ${claims} issued, audit ${audit.ok ? 'ok' : 'FAILED'}`;
        process.stdout.write(`${line}\n`);
        lines.push(`- ${line}`);
        if (stored !== claims || !audit.ok) process.exitCode = 1;
      }
    } finally {
      await admin.close();
    }
  } finally {
    for (const s of servers) await s.destroy();
  }
  const date = new Date().toISOString().slice(0, 10);
  writeFileSync(new URL('./results/batch-store.md', import.meta.url), [
    `# group-commit's SQL ceiling (${date})`,
    '',
    `\`npm run bench:batch-store\` — PostgreSQL on loopback, ${WORKERS} processes each committing batches of ${SIZE} claims straight to the batch store (no service), one batch in flight per process, one hot campaign, ${SECONDS} s; every claim with its Idempotency-Key, user counter and stock unit. Node ${process.version}, ${cpus().length} cores. On commit: ${durability}.`,
    '',
    ...lines,
    '',
  ].join('\n'));
}

if (process.env.BENCH_BATCH_ROLE === 'worker') {
  process.once('message', (job: Job) => {
    const ready = () => new Promise<void>((resolve) => {
      process.once('message', () => resolve());
      process.send!('ready');
    });
    worker(job, ready).then(
      (d) => process.send!(d, () => process.exit(0)),
      (err) => {
        process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
        process.exit(1);
      },
    );
  });
} else {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
