// Lock benchmark: allot (default and fair, ioredis) side by side with redis-semaphore's Mutex and
// @sesamecare-oss/redlock (both with their defaults), in one run against one throwaway Redis.
// Writes bench/results/locks.json and bench/results/locks.md. Progress goes to stderr.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { Mutex } from 'redis-semaphore';
import { Redlock } from '@sesamecare-oss/redlock';
import { createRedisLockProvider, fromIoredis, MemoryFenceAnchor, type LockProvider } from '../packages/lock/src/index.ts';
import { startRedis, type TestServer } from '../src/lab/servers.ts';

const SECONDS = Number(process.env.BENCH_LOCK_SECONDS ?? 2);
const FAIRNESS_SECONDS = Number(process.env.BENCH_LOCK_FAIRNESS_SECONDS ?? 5);
const HOLD_MS = 1;
const UNCONTENDED_KEYS = 1_000;
const UNCONTENDED_WORKERS = 32;
/** measured uncontended rounds per library, in mirrored order (A B C D D C B A, repeated) */
const UNCONTENDED_ROUNDS = Number(process.env.BENCH_LOCK_UNCONTENDED_ROUNDS ?? 8);
/** short rounds, many of them: finer interleaving averages out other load on the machine */
const UNCONTENDED_SECONDS = Number(process.env.BENCH_LOCK_UNCONTENDED_SECONDS ?? 1);
const WARMUP_SECONDS = 0.5;
/** comma-separated subset of handover,contended,uncontended,fairness (default: all) */
const SCENARIOS = new Set((process.env.BENCH_LOCK_SCENARIOS ?? 'handover,contended,uncontended,fairness').split(','));

type Release = () => Promise<void>;
interface Worker {
  /** resolves with a release function, or null when the library gave up (counted as a failure) */
  acquire(key: string): Promise<Release | null>;
  close(): Promise<void>;
}
interface Contender {
  name: string;
  worker(url: string, prefix: string): Promise<Worker>;
}

const log = (msg: string) => process.stderr.write(`[bench:locks] ${msg}\n`);

function connection(url: string): Redis {
  const c = new Redis(url, { maxRetriesPerRequest: 3 });
  c.on('error', () => undefined);
  return c;
}

const allot = (fair: boolean): Contender => ({
  name: fair ? 'allot (fair)' : 'allot',
  async worker(url, prefix) {
    const conn = connection(url);
    const provider: LockProvider = createRedisLockProvider({ client: fromIoredis(conn), prefix, fenceAnchor: new MemoryFenceAnchor(1_000n) });
    return {
      async acquire(key) {
        try {
          const lease = await provider.acquire(key, { fair });
          return () => lease.release();
        } catch {
          return null;
        }
      },
      async close() {
        await provider.close();
        conn.disconnect();
      },
    };
  },
});

const redisSemaphore: Contender = {
  name: 'redis-semaphore',
  async worker(url, prefix) {
    const conn = connection(url);
    return {
      async acquire(key) {
        const m = new Mutex(conn, prefix + key);
        try {
          await m.acquire();
          return () => m.release();
        } catch {
          return null;
        }
      },
      async close() {
        conn.disconnect();
      },
    };
  },
};

const redlock: Contender = {
  name: 'redlock',
  async worker(url, prefix) {
    const conn = connection(url);
    const rl = new Redlock([conn]);
    rl.on('error', () => undefined);
    return {
      async acquire(key) {
        try {
          const lock = await rl.acquire([prefix + key], 30_000);
          return async () => {
            await lock.release();
          };
        } catch {
          return null;
        }
      },
      async close() {
        conn.disconnect();
      },
    };
  },
};

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (n: number, d = 3) => Math.round(n * 10 ** d) / 10 ** d;

async function workers(c: Contender, url: string, prefix: string, n: number): Promise<Worker[]> {
  return Promise.all(Array.from({ length: n }, () => c.worker(url, prefix)));
}

/** n workers loop on one key holding HOLD_MS; returns per-worker counts, failures and handover samples. */
/**
 * handover mode: after releasing, a worker waits until another worker took the lock before it
 * contends again, so every release is a real handover to a waiter (no self re-acquire).
 */
async function contend(ws: Worker[], key: string, seconds: number, handoverMode = false) {
  const counts = ws.map(() => 0);
  let generation = 0;
  let generationWaiters: (() => void)[] = [];
  const nextGeneration = (after: number) =>
    new Promise<void>((resolve) => {
      if (generation > after || performance.now() >= stopAt) resolve();
      else generationWaiters.push(resolve);
    });
  const handovers: number[] = [];
  let failures = 0;
  let releasedAt: number | undefined;
  let releasedBy = -1;
  let holders = 0;
  let violations = 0;
  const stopAt = performance.now() + seconds * 1_000;
  await Promise.all(
    ws.map(async (w, i) => {
      while (performance.now() < stopAt) {
        const release = await w.acquire(key);
        if (!release) {
          failures++;
          continue;
        }
        const now = performance.now();
        // A holder re-taking its own lock is not a handover.
        if (releasedAt !== undefined && releasedBy !== i) handovers.push(now - releasedAt);
        releasedAt = undefined;
        if (++holders > 1) violations++;
        counts[i]!++;
        generation++;
        const woken = generationWaiters;
        generationWaiters = [];
        for (const w of woken) w();
        await delay(HOLD_MS);
        holders--;
        releasedAt = performance.now();
        releasedBy = i;
        const myGeneration = generation;
        await release().catch(() => failures++);
        if (handoverMode) {
          const t = setTimeout(() => {
            // the stop time passed: release everyone still parked
            for (const w of generationWaiters.splice(0)) w();
          }, Math.max(0, stopAt - performance.now()));
          await nextGeneration(myGeneration);
          clearTimeout(t);
        }
      }
    }),
  );
  handovers.sort((a, b) => a - b);
  const total = counts.reduce((a, b) => a + b, 0);
  return { counts, total, failures, violations, handovers, opsPerSec: total / seconds };
}

/** Redis server CPU seconds (user + sys) from INFO cpu: works for a server we did not start. */
async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return field('used_cpu_user') + field('used_cpu_sys');
}

async function uncontended(ws: Worker[], seconds: number, admin: Redis) {
  let total = 0;
  let failures = 0;
  const redis0 = await redisCpuSeconds(admin);
  const cpu0 = process.cpuUsage();
  const stopAt = performance.now() + seconds * 1_000;
  await Promise.all(
    ws.map(async (w, i) => {
      // Worker i cycles through its own slice of the keys: no two workers ever share a key.
      const mine = Array.from({ length: Math.ceil((UNCONTENDED_KEYS - i) / ws.length) }, (_, j) => `u:${i + j * ws.length}`);
      for (let n = 0; performance.now() < stopAt; n++) {
        const key = mine[n % mine.length]!;
        const release = await w.acquire(key);
        if (!release) {
          failures++;
          continue;
        }
        total++;
        await release().catch(() => failures++);
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const redisCpu = (await redisCpuSeconds(admin)) - redis0;
  // CPU per acquire+release pair, client process and Redis server: less sensitive to other load
  // on the machine than ops/s (the client process also hosts the bench loop itself).
  return { opsPerSec: total / seconds, failures, clientUsPerOp: (cpu.user + cpu.system) / Math.max(1, total), redisUsPerOp: (redisCpu * 1e6) / Math.max(1, total) };
}

async function closeAll(ws: Worker[]) {
  await Promise.all(ws.map((w) => w.close()));
}

async function run() {
  let server: TestServer | undefined;
  let url = process.env.REDIS_URL;
  if (!url) {
    server = await startRedis();
    url = server.url;
  }
  const started = Date.now();
  const contenders = [allot(false), allot(true), redisSemaphore, redlock];
  const results: Record<string, Record<string, unknown>> = {};
  const prefixOf = (c: Contender) => `bench:${process.pid}:${c.name.replace(/\W+/g, '-')}:`;
  for (const c of contenders) results[c.name] = {};
  // Scenario-major order, so machine noise hits every library alike within a scenario.
  try {
    for (const waiters of SCENARIOS.has('handover') ? [1, 8] : []) {
      for (const c of contenders) {
        log(`${c.name}: handover with ${waiters} waiter(s)`);
        const ws = await workers(c, url, prefixOf(c), waiters + 1);
        const h = await contend(ws, `handover:${waiters}`, SECONDS, true);
        await closeAll(ws);
        results[c.name]![`handover_${waiters}w`] = { p50Ms: round(percentile(h.handovers, 50)), p99Ms: round(percentile(h.handovers, 99)), samples: h.handovers.length, failures: h.failures, violations: h.violations };
      }
    }
    for (const n of SCENARIOS.has('contended') ? [8, 64] : []) {
      for (const c of contenders) {
        log(`${c.name}: contended throughput, ${n} workers`);
        const ws = await workers(c, url, prefixOf(c), n);
        const t = await contend(ws, `contended:${n}`, SECONDS);
        await closeAll(ws);
        results[c.name]![`contended_${n}w`] = { opsPerSec: round(t.opsPerSec, 1), failures: t.failures, violations: t.violations };
      }
    }
    // Uncontended: every library first gets an untimed warm-up (JIT, connections, script cache),
    // then UNCONTENDED_ROUNDS measured rounds in mirrored order (A B C D D C B A, repeated), so
    // machine noise and drift hit every library alike; the figure is the mean of the rounds.
    if (SCENARIOS.has('uncontended')) {
      const admin = connection(url);
      const rounds: Record<string, { ops: number[]; clientUs: number[]; redisUs: number[]; failures: number }> = {};
      for (const c of contenders) {
        log(`${c.name}: uncontended warm-up, ${WARMUP_SECONDS} s`);
        const ws = await workers(c, url, prefixOf(c), UNCONTENDED_WORKERS);
        await uncontended(ws, WARMUP_SECONDS, admin);
        await closeAll(ws);
      }
      const order: Contender[] = [];
      while (order.length < contenders.length * UNCONTENDED_ROUNDS) order.push(...(order.length / contenders.length) % 2 === 0 ? contenders : [...contenders].reverse());
      for (const c of order) {
        log(`${c.name}: uncontended throughput, ${UNCONTENDED_KEYS} keys, ${UNCONTENDED_WORKERS} workers`);
        const ws = await workers(c, url, prefixOf(c), UNCONTENDED_WORKERS);
        const u = await uncontended(ws, UNCONTENDED_SECONDS, admin);
        await closeAll(ws);
        const r = (rounds[c.name] ??= { ops: [], clientUs: [], redisUs: [], failures: 0 });
        r.ops.push(u.opsPerSec);
        r.clientUs.push(u.clientUsPerOp);
        r.redisUs.push(u.redisUsPerOp);
        r.failures += u.failures;
      }
      admin.disconnect();
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      for (const c of contenders) {
        const r = rounds[c.name]!;
        results[c.name]!.uncontended = {
          opsPerSec: round(mean(r.ops), 1),
          rounds: r.ops.map((x) => round(x, 1)),
          clientCpuUsPerOp: round(mean(r.clientUs), 1),
          redisCpuUsPerOp: round(mean(r.redisUs), 1),
          failures: r.failures,
        };
      }
    }
    for (const c of SCENARIOS.has('fairness') ? contenders : []) {
      log(`${c.name}: fairness, 8 workers, ${FAIRNESS_SECONDS} s`);
      const ws = await workers(c, url, prefixOf(c), 8);
      const f = await contend(ws, 'fairness', FAIRNESS_SECONDS);
      await closeAll(ws);
      const max = Math.max(...f.counts);
      results[c.name]!.fairness = { perWorker: f.counts, minMaxRatio: max > 0 ? round(Math.min(...f.counts) / max) : 0, failures: f.failures, violations: f.violations };
    }
  } finally {
    await server?.destroy();
  }
  return { results, durationS: round((Date.now() - started) / 1_000, 1) };
}

type Row = { metric: string; pick: (r: Record<string, unknown>) => number; lowerIsBetter: boolean };
const get = (r: Record<string, unknown>, path: string): number => {
  let v: unknown = r;
  for (const p of path.split('.')) v = (v as Record<string, unknown>)[p];
  return Number(v);
};
const ROWS: Row[] = [
  { metric: 'handover p50 ms, 1 waiter', pick: (r) => get(r, 'handover_1w.p50Ms'), lowerIsBetter: true },
  { metric: 'handover p99 ms, 1 waiter', pick: (r) => get(r, 'handover_1w.p99Ms'), lowerIsBetter: true },
  { metric: 'handover p50 ms, 8 waiters', pick: (r) => get(r, 'handover_8w.p50Ms'), lowerIsBetter: true },
  { metric: 'handover p99 ms, 8 waiters', pick: (r) => get(r, 'handover_8w.p99Ms'), lowerIsBetter: true },
  { metric: 'contended ops/s, 8 workers', pick: (r) => get(r, 'contended_8w.opsPerSec'), lowerIsBetter: false },
  { metric: 'contended ops/s, 64 workers', pick: (r) => get(r, 'contended_64w.opsPerSec'), lowerIsBetter: false },
  { metric: 'uncontended ops/s, 1,000 keys', pick: (r) => get(r, 'uncontended.opsPerSec'), lowerIsBetter: false },
  { metric: 'uncontended client CPU µs/op', pick: (r) => get(r, 'uncontended.clientCpuUsPerOp'), lowerIsBetter: true },
  { metric: 'uncontended Redis CPU µs/op', pick: (r) => get(r, 'uncontended.redisCpuUsPerOp'), lowerIsBetter: true },
  { metric: 'fairness min/max, 8 workers', pick: (r) => get(r, 'fairness.minMaxRatio'), lowerIsBetter: false },
];

function ratios(results: Record<string, Record<string, unknown>>) {
  const out: Record<string, Record<string, number>> = {};
  for (const mine of ['allot', 'allot (fair)']) {
    for (const peer of ['redis-semaphore', 'redlock']) {
      const o: Record<string, number> = {};
      for (const row of ROWS) o[row.metric] = round(row.pick(results[mine]!) / row.pick(results[peer]!), 2);
      out[`${mine} / ${peer}`] = o;
    }
  }
  return out;
}

function targets(results: Record<string, Record<string, unknown>>): string[] {
  const a = results.allot!;
  const f = results['allot (fair)']!;
  const sem = results['redis-semaphore']!;
  const mark = (ok: boolean) => (ok ? 'met' : 'missed');
  const p50 = Math.max(get(a, 'handover_8w.p50Ms'), get(f, 'handover_8w.p50Ms'));
  const p99 = Math.max(get(a, 'handover_8w.p99Ms'), get(f, 'handover_8w.p99Ms'));
  const fair = get(f, 'fairness.minMaxRatio');
  const unc = get(a, 'uncontended.opsPerSec') / get(sem, 'uncontended.opsPerSec');
  const violations = [a, f].reduce((n, r) => n + ['handover_1w', 'handover_8w', 'contended_8w', 'contended_64w', 'fairness'].reduce((m, k) => m + get(r, `${k}.violations`), 0), 0);
  return [
    `- handover with 8 waiters p50 ≤ 0.5 ms: ${mark(p50 <= 0.5)} (default mode ${get(a, 'handover_8w.p50Ms')} ms, fair mode ${get(f, 'handover_8w.p50Ms')} ms)`,
    `- handover with 8 waiters p99 ≤ 5 ms: ${mark(p99 <= 5)} (default mode ${get(a, 'handover_8w.p99Ms')} ms, fair mode ${get(f, 'handover_8w.p99Ms')} ms)`,
    `- fair mode min/max ≥ 0.8: ${mark(fair >= 0.8)} (${fair})`,
    `- exclusion, allot in both modes: ${mark(violations === 0)} (${violations} violations)`,
    `- uncontended throughput allot / redis-semaphore ≥ 1.0: ${mark(unc >= 1)} (${round(unc, 2)})`,
  ];
}

/** allot / redis-semaphore round by round (round j of each ran close together in time): the run-to-run noise. */
function roundSpread(results: Record<string, Record<string, unknown>>): string[] {
  const rounds = (n: string) => (results[n]!.uncontended as { rounds: number[] }).rounds;
  const sem = rounds('redis-semaphore');
  return ['allot', 'allot (fair)'].map((n) => {
    const r = rounds(n).map((x, j) => x / sem[j]!);
    return `Round-by-round ${n} / redis-semaphore: ${round(Math.min(...r), 2)} to ${round(Math.max(...r), 2)}, ${r.filter((x) => x >= 1).length} of ${r.length} rounds ≥ 1.`;
  });
}

function markdown(data: { meta: Record<string, unknown>; results: Record<string, Record<string, unknown>>; ratios: Record<string, Record<string, number>> }): string {
  const names = Object.keys(data.results);
  const lines = [
    '# Lock benchmark',
    '',
    `Run ${String(data.meta.date)} on ${String(data.meta.cpus)} × ${String(data.meta.cpu)}, Node ${String(data.meta.node)}, one local Redis (\`npm run bench:locks\`, ${String(data.meta.durationS)} s).`,
    `Every library with its defaults, ioredis, one connection per worker, all workers in one process; hold time ${HOLD_MS} ms.`,
    'Handover = the previous holder starts release() → a waiting worker\'s acquire resolves; in the handover runs a worker that released waits until another worker took the lock before it contends again, so every release is a real handover. Throughput and fairness runs let workers re-contend at once (barging allowed).',
    `Uncontended = ${UNCONTENDED_WORKERS} workers, each cycling through its own slice of ${UNCONTENDED_KEYS.toLocaleString('en')} keys (acquire + release pairs, no two workers share a key; allot's fence included). Every library first runs an untimed ${WARMUP_SECONDS} s warm-up, then ${UNCONTENDED_ROUNDS} rounds of ${UNCONTENDED_SECONDS} s in mirrored order (A B C D D C B A …); the figure is the mean of its rounds. CPU µs/op = CPU time per acquire+release pair of the client process (which also runs the bench loop) and of the Redis server (INFO cpu), less sensitive to other load on the machine than ops/s.`,
    'Same for every library in every scenario: one ioredis connection per worker with the same options (no auto-pipelining), the same key names under a per-library prefix, the same worker counts and durations. allot additionally opens one pub/sub connection per worker, lazily, the first time a worker has to wait (never in the uncontended runs).',
    '',
    `| metric | ${names.join(' | ')} |`,
    `|---|${names.map(() => '---:').join('|')}|`,
    ...ROWS.map((row) => `| ${row.metric} | ${names.map((n) => String(row.pick(data.results[n]!))).join(' | ')} |`),
    `| handover samples, 1 / 8 waiters | ${names.map((n) => `${get(data.results[n]!, 'handover_1w.samples')} / ${get(data.results[n]!, 'handover_8w.samples')}`).join(' | ')} |`,
    '',
    '## Ratios allot / peer',
    '',
    'For latency rows a ratio below 1 means allot is faster; for throughput and fairness rows above 1 means allot is better.',
    '',
    `| metric | ${Object.keys(data.ratios).join(' | ')} |`,
    `|---|${Object.keys(data.ratios).map(() => '---:').join('|')}|`,
    ...ROWS.map((row) => `| ${row.metric} | ${Object.values(data.ratios).map((r) => String(r[row.metric])).join(' | ')} |`),
    '',
    '## Uncontended rounds (ops/s)',
    '',
    ...names.map((n) => `- ${n}: ${(data.results[n]!.uncontended as { rounds: number[] }).rounds.join(', ')}`),
    '',
    ...roundSpread(data.results),
    '',
    '## Targets',
    '',
    ...targets(data.results),
    '',
    'Failures (acquire gave up: redlock after 10 retries, redis-semaphore/allot after their timeouts) and exclusion violations:',
    '',
    ...names.map((n) => {
      const r = data.results[n]!;
      const f = ['handover_1w', 'handover_8w', 'contended_8w', 'contended_64w', 'uncontended', 'fairness'].map((k) => `${k} ${get(r, `${k}.failures`)}`);
      const v = ['handover_1w', 'handover_8w', 'contended_8w', 'contended_64w', 'fairness'].reduce((a, k) => a + get(r, `${k}.violations`), 0);
      return `- ${n}: failures ${f.join(', ')}; violations ${v}`;
    }),
    '',
  ];
  return lines.join('\n');
}

const { results, durationS } = await run();
if (SCENARIOS.size < 4) {
  // A partial run (BENCH_LOCK_SCENARIOS) is for quick checks: print it, keep the committed results.
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  process.exit(0);
}
const meta = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', durationS, seconds: SECONDS, fairnessSeconds: FAIRNESS_SECONDS };
const data = { meta, results, ratios: ratios(results) };
const dir = fileURLToPath(new URL('./results/', import.meta.url));
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}locks.json`, `${JSON.stringify(data, null, 2)}\n`);
writeFileSync(`${dir}locks.md`, markdown(data));
log(`done in ${durationS} s: bench/results/locks.json, bench/results/locks.md`);
process.stdout.write(markdown(data));
