// Lock benchmark: allot (default and fair, ioredis) side by side with redis-semaphore's Mutex and
// @sesamecare-oss/redlock (both with their defaults), in one run against one throwaway Redis; plus
// allot's other backends (Sentinel, Cluster, Redlock over 3 nodes, etcd, PostgreSQL advisory locks)
// on throwaway loopback servers started by the test helpers, and a Redis PING round trip.
// The contended/uncontended comparison runs BENCH_LOCK_RUNS times (default 3): medians and spreads.
// Writes bench/results/locks.json and bench/results/locks.md. Progress goes to stderr.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { Cluster, Redis } from 'ioredis';
import { Mutex } from 'redis-semaphore';
import { Redlock } from '@sesamecare-oss/redlock';
import {
  createEtcdLockProvider,
  createPostgresLockProvider,
  createRedisClusterLockProvider,
  createRedisLockProvider,
  createRedisSentinelLockProvider,
  createRedlockProvider,
  fromIoredis,
  fromIoredisCluster,
  MemoryFenceAnchor,
  type LockProvider,
} from '../packages/lock/src/index.ts';
import { startPostgres, startRedis, type TestServer } from '../src/lab/servers.ts';
import { startClusterTopology, startSentinelTopology } from '../test/helpers/redis-topologies.ts';
import { startRedlockNodes } from '../test/helpers/redlock-servers.ts';
import { startEtcdCluster } from '../test/helpers/etcd-cluster.ts';
import { BENCH_DURABLE } from './workers.ts';

const SECONDS = Number(process.env.BENCH_LOCK_SECONDS ?? 2);
const FAIRNESS_SECONDS = Number(process.env.BENCH_LOCK_FAIRNESS_SECONDS ?? 5);
const HOLD_MS = 1;
const UNCONTENDED_KEYS = 1_000;
const UNCONTENDED_WORKERS = 32;
/** measured uncontended rounds per library, in mirrored order (A B C D D C B A, repeated) */
const UNCONTENDED_ROUNDS = Number(process.env.BENCH_LOCK_UNCONTENDED_ROUNDS ?? 4);
/** how many times the contended + uncontended comparison runs (medians and spreads over the runs) */
const RUNS = Math.max(1, Number(process.env.BENCH_LOCK_RUNS ?? 3));
/** measured uncontended rounds for each of allot's other backends (after a warm-up) */
const BACKEND_UNCONTENDED_ROUNDS = 2;
const PING_SAMPLES = 2_000;
/** comma-separated subset of sentinel,cluster,redlock3,etcd,postgres (default: all; "none" for none) */
const BACKENDS = new Set((process.env.BENCH_LOCK_BACKENDS ?? 'sentinel,cluster,redlock3,etcd,postgres').split(','));
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
/** allot on another backend: its servers are started once, before the scenarios */
interface BackendContender {
  name: string;
  worker(prefix: string): Promise<Worker>;
  /** one-time preparation before any worker runs (e.g. creating schema objects) */
  prepare?(prefix: string): Promise<void>;
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

/** a bench worker over any allot LockProvider (default, non-fair mode) */
function providerWorker(provider: LockProvider, cleanup: () => void | Promise<void>): Worker {
  return {
    async acquire(key) {
      try {
        const lease = await provider.acquire(key);
        return () => lease.release();
      } catch {
        return null;
      }
    },
    async close() {
      await provider.close();
      await cleanup();
    },
  };
}

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
  let holdSum = 0;
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
        const heldAt = performance.now();
        await delay(HOLD_MS);
        holdSum += performance.now() - heldAt;
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
  return { counts, total, failures, violations, handovers, opsPerSec: total / seconds, meanHoldMs: holdSum / Math.max(1, total) };
}

/** Redis server CPU seconds (user + sys) from INFO cpu: works for a server we did not start. */
async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return field('used_cpu_user') + field('used_cpu_sys');
}

async function uncontended(ws: Worker[], seconds: number, admin: Redis | undefined) {
  let total = 0;
  let failures = 0;
  const redis0 = admin ? await redisCpuSeconds(admin) : NaN;
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
  const redisCpu = admin ? (await redisCpuSeconds(admin)) - redis0 : NaN;
  // CPU per acquire+release pair, client process and Redis server: less sensitive to other load
  // on the machine than ops/s (the client process also hosts the bench loop itself).
  return { opsPerSec: total / seconds, failures, clientUsPerOp: (cpu.user + cpu.system) / Math.max(1, total), redisUsPerOp: (redisCpu * 1e6) / Math.max(1, total) };
}

async function closeAll(ws: Worker[]) {
  await Promise.all(ws.map((w) => w.close()));
}

/** p50 of PING round trips on one ioredis connection with the bench's connection options. */
async function pingP50(url: string): Promise<number> {
  const c = connection(url);
  try {
    for (let i = 0; i < 200; i++) await c.ping();
    const samples: number[] = [];
    for (let i = 0; i < PING_SAMPLES; i++) {
      const t0 = performance.now();
      await c.ping();
      samples.push(performance.now() - t0);
    }
    samples.sort((a, b) => a - b);
    return percentile(samples, 50);
  } finally {
    c.disconnect();
  }
}

interface Started {
  contender: BackendContender;
  stop(): Promise<void>;
}

/** Starts the servers of allot's other backends (test helpers); a backend that cannot start is skipped with its reason. */
async function startBackends(skipped: Record<string, string>): Promise<Started[]> {
  const anchor = () => new MemoryFenceAnchor(1_000n);
  const starters: [string, () => Promise<Started>][] = [
    [
      'sentinel',
      async () => {
        const t = await startSentinelTopology('benchmaster');
        const contender: BackendContender = {
          name: 'allot sentinel',
          async worker(prefix) {
            const conn = new Redis({ sentinels: t.sentinels.map((x) => ({ host: '127.0.0.1', port: x.port })), name: t.name, maxRetriesPerRequest: 3 });
            conn.on('error', () => undefined);
            return providerWorker(createRedisSentinelLockProvider({ client: fromIoredis(conn), prefix, fenceAnchor: anchor() }), () => conn.disconnect());
          },
        };
        return { contender, stop: () => t.destroy() };
      },
    ],
    [
      'cluster',
      async () => {
        const t = await startClusterTopology();
        const contender: BackendContender = {
          name: 'allot cluster',
          async worker(prefix) {
            const c = new Cluster(t.startupNodes, { redisOptions: { maxRetriesPerRequest: 3 } });
            c.on('error', () => undefined);
            return providerWorker(createRedisClusterLockProvider({ client: fromIoredisCluster(c), prefix, fenceAnchor: anchor() }), () => c.disconnect());
          },
        };
        return { contender, stop: () => t.destroy() };
      },
    ],
    [
      'redlock3',
      async () => {
        const nodes = await startRedlockNodes(3);
        const contender: BackendContender = {
          name: 'allot redlock×3',
          async worker(prefix) {
            const conns = nodes.servers.map((x) => connection(x.url));
            return providerWorker(createRedlockProvider({ clients: conns.map((c) => fromIoredis(c)), nodeNames: nodes.names, prefix, fenceAnchor: anchor() }), () => {
              for (const c of conns) c.disconnect();
            });
          },
        };
        return { contender, stop: () => nodes.close() };
      },
    ],
    [
      'etcd',
      async () => {
        const cl = await startEtcdCluster();
        const contender: BackendContender = {
          name: 'allot etcd×3',
          async worker(prefix) {
            return providerWorker(createEtcdLockProvider({ endpoints: cl.endpoints, prefix }), () => undefined);
          },
        };
        return { contender, stop: () => cl.destroy() };
      },
    ],
    [
      'postgres',
      async () => {
        const pg = await startPostgres({ durable: BENCH_DURABLE });
        const pgPrefix = (prefix: string) => `b${prefix.replace(/\W+/g, '_').toLowerCase()}`.slice(0, 40);
        const contender: BackendContender = {
          name: 'allot postgres',
          async prepare(prefix) {
            // create the tables and functions once, before workers race to do it
            const p = createPostgresLockProvider({ connectionString: pg.url, prefix: pgPrefix(prefix), poolMax: 1 });
            await p.ready();
            await p.close();
          },
          async worker(prefix) {
            return providerWorker(createPostgresLockProvider({ connectionString: pg.url, prefix: pgPrefix(prefix), poolMax: 2 }), () => undefined);
          },
        };
        return { contender, stop: () => pg.destroy() };
      },
    ],
  ];
  const picked = starters.filter(([id]) => BACKENDS.has(id));
  const started = await Promise.all(
    picked.map(async ([id, start]) => {
      try {
        log(`starting ${id}`);
        return await start();
      } catch (error) {
        skipped[id] = `could not start: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
        log(`skipping ${id}: ${skipped[id]}`);
        return undefined;
      }
    }),
  );
  return started.filter((x): x is Started => x !== undefined);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

type Results = Record<string, Record<string, unknown>>;

async function run() {
  let server: TestServer | undefined;
  let url = process.env.REDIS_URL;
  if (!url) {
    server = await startRedis();
    url = server.url;
  }
  const redisUrl = url;
  const started = Date.now();
  const contenders = [allot(false), allot(true), redisSemaphore, redlock];
  const results: Results = {};
  const skipped: Record<string, string> = {};
  const pings: number[] = [];
  const prefixOf = (c: { name: string }) => `bench:${process.pid}:${c.name.replace(/\W+/g, '-')}:`;
  for (const c of contenders) results[c.name] = {};
  const loadBefore = os.loadavg();
  // Two phases. First the comparison set (allot in both modes and the peers, all on the single
  // Redis) with no other server of the bench running; then allot's other backends, whose servers
  // (3 etcd members with 50 ms heartbeats, 6 cluster nodes, 5 Sentinel processes, …) are started
  // only then: their idle work would otherwise be noise in every single-Redis figure.
  const comparison: { name: string; workers(n: number): Promise<Worker[]> }[] = contenders.map((c) => ({ name: c.name, workers: (n: number) => workers(c, redisUrl, prefixOf(c), n) }));
  let backends: Started[] = [];
  /** the handover scenario (1 and 8 waiters) for each of list, waiter count-major */
  const handovers = async (list: { name: string; workers(n: number): Promise<Worker[]> }[]) => {
    for (const waiters of SCENARIOS.has('handover') ? [1, 8] : []) {
      for (const c of list) {
        if (skipped[c.name]) continue;
        log(`${c.name}: handover with ${waiters} waiter(s)`);
        const ws = await c.workers(waiters + 1);
        const h = await contend(ws, `handover:${waiters}`, SECONDS, true);
        await closeAll(ws);
        results[c.name]![`handover_${waiters}w`] = { p50Ms: round(percentile(h.handovers, 50)), p99Ms: round(percentile(h.handovers, 99)), samples: h.handovers.length, failures: h.failures, violations: h.violations };
      }
    }
  };
  try {
    pings.push(await pingP50(redisUrl));
    log(`PING p50 ${round(pings[0]!)} ms`);
    // Scenario-major order, so machine noise hits every library alike within a scenario.
    await handovers(comparison);
    // The comparison (contended 8/64 workers, uncontended) RUNS times; medians over the runs.
    const perRun: Record<string, { c8: number[]; c64: number[]; unc: number[]; uncRounds: number[]; clientUs: number[]; redisUs: number[]; failures: Record<string, number>; violations: number; hold8: number[]; hold64: number[] }> = {};
    for (const c of contenders) perRun[c.name] = { c8: [], c64: [], unc: [], uncRounds: [], clientUs: [], redisUs: [], failures: { contended_8w: 0, contended_64w: 0, uncontended: 0 }, violations: 0, hold8: [], hold64: [] };
    const admin = connection(redisUrl);
    for (let runNo = 1; runNo <= RUNS; runNo++) {
      for (const n of SCENARIOS.has('contended') ? [8, 64] : []) {
        for (const c of contenders) {
          log(`run ${runNo}/${RUNS} ${c.name}: contended throughput, ${n} workers`);
          const ws = await workers(c, redisUrl, prefixOf(c), n);
          const t = await contend(ws, `contended:${n}`, SECONDS);
          await closeAll(ws);
          const r = perRun[c.name]!;
          (n === 8 ? r.c8 : r.c64).push(t.opsPerSec);
          (n === 8 ? r.hold8 : r.hold64).push(t.meanHoldMs);
          r.failures[`contended_${n}w`]! += t.failures;
          r.violations += t.violations;
        }
      }
      // Uncontended: every library first gets an untimed warm-up (JIT, connections, script cache),
      // then UNCONTENDED_ROUNDS measured rounds in mirrored order (A B C D D C B A, repeated), so
      // machine noise and drift hit every library alike; a run's figure is the mean of its rounds.
      if (SCENARIOS.has('uncontended')) {
        for (const c of contenders) {
          log(`run ${runNo}/${RUNS} ${c.name}: uncontended warm-up, ${WARMUP_SECONDS} s`);
          const ws = await workers(c, redisUrl, prefixOf(c), UNCONTENDED_WORKERS);
          await uncontended(ws, WARMUP_SECONDS, admin);
          await closeAll(ws);
        }
        const order: Contender[] = [];
        while (order.length < contenders.length * UNCONTENDED_ROUNDS) order.push(...(order.length / contenders.length) % 2 === 0 ? contenders : [...contenders].reverse());
        const rounds: Record<string, { ops: number[]; clientUs: number[]; redisUs: number[] }> = {};
        for (const c of order) {
          log(`run ${runNo}/${RUNS} ${c.name}: uncontended throughput, ${UNCONTENDED_KEYS} keys, ${UNCONTENDED_WORKERS} workers`);
          const ws = await workers(c, redisUrl, prefixOf(c), UNCONTENDED_WORKERS);
          const u = await uncontended(ws, UNCONTENDED_SECONDS, admin);
          await closeAll(ws);
          const x = (rounds[c.name] ??= { ops: [], clientUs: [], redisUs: [] });
          x.ops.push(u.opsPerSec);
          x.clientUs.push(u.clientUsPerOp);
          x.redisUs.push(u.redisUsPerOp);
          perRun[c.name]!.failures.uncontended! += u.failures;
        }
        for (const c of contenders) {
          const x = rounds[c.name]!;
          const r = perRun[c.name]!;
          r.unc.push(mean(x.ops));
          r.uncRounds.push(...x.ops);
          r.clientUs.push(mean(x.clientUs));
          r.redisUs.push(mean(x.redisUs));
        }
      }
      pings.push(await pingP50(redisUrl));
    }
    admin.disconnect();
    for (const c of contenders) {
      const r = perRun[c.name]!;
      const res = results[c.name]!;
      if (r.c8.length) res.contended_8w = { opsPerSec: round(median(r.c8), 1), runs: r.c8.map((x) => round(x, 1)), meanHoldMs: round(mean(r.hold8)), failures: r.failures.contended_8w, violations: 0 };
      if (r.c64.length) res.contended_64w = { opsPerSec: round(median(r.c64), 1), runs: r.c64.map((x) => round(x, 1)), meanHoldMs: round(mean(r.hold64)), failures: r.failures.contended_64w, violations: 0 };
      // all contended violations are counted on the 8-worker entry (exclusion is per library)
      if (res.contended_8w) (res.contended_8w as { violations: number }).violations = r.violations;
      if (r.unc.length) {
        res.uncontended = {
          opsPerSec: round(median(r.unc), 1),
          runs: r.unc.map((x) => round(x, 1)),
          rounds: r.uncRounds.map((x) => round(x, 1)),
          clientCpuUsPerOp: round(median(r.clientUs), 1),
          redisCpuUsPerOp: round(median(r.redisUs), 1),
          failures: r.failures.uncontended,
        };
      }
    }
    for (const c of SCENARIOS.has('fairness') ? contenders : []) {
      log(`${c.name}: fairness, 8 workers, ${FAIRNESS_SECONDS} s`);
      const ws = await workers(c, redisUrl, prefixOf(c), 8);
      const f = await contend(ws, 'fairness', FAIRNESS_SECONDS);
      await closeAll(ws);
      const max = Math.max(...f.counts);
      results[c.name]!.fairness = { perWorker: f.counts, minMaxRatio: max > 0 ? round(Math.min(...f.counts) / max) : 0, failures: f.failures, violations: f.violations };
    }
    // Phase two: allot's other backends, their servers started now.
    backends = await startBackends(skipped);
    for (const b of backends) results[b.contender.name] = {};
    const others: { name: string; workers(n: number): Promise<Worker[]> }[] = backends.map(({ contender: b }) => ({ name: b.name, workers: (n: number) => Promise.all(Array.from({ length: n }, () => b.worker(prefixOf(b)))) }));
    for (const { contender: b } of backends) {
      try {
        await b.prepare?.(prefixOf(b));
      } catch (error) {
        skipped[b.name] = `preparation failed: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
    await handovers(others);
    // allot's other backends: uncontended with the same worker and key counts (no Redis CPU figure).
    for (const c of SCENARIOS.has('uncontended') ? others : []) {
      if (skipped[c.name]) continue;
      log(`${c.name}: uncontended warm-up + ${BACKEND_UNCONTENDED_ROUNDS} rounds`);
      const ws = await c.workers(UNCONTENDED_WORKERS);
      await uncontended(ws, WARMUP_SECONDS, undefined);
      const ops: number[] = [];
      const clientUs: number[] = [];
      let failures = 0;
      for (let i = 0; i < BACKEND_UNCONTENDED_ROUNDS; i++) {
        const u = await uncontended(ws, UNCONTENDED_SECONDS, undefined);
        ops.push(u.opsPerSec);
        clientUs.push(u.clientUsPerOp);
        failures += u.failures;
      }
      await closeAll(ws);
      results[c.name]!.uncontended = { opsPerSec: round(mean(ops), 1), rounds: ops.map((x) => round(x, 1)), clientCpuUsPerOp: round(mean(clientUs), 1), redisCpuUsPerOp: NaN, failures };
    }
  } finally {
    await Promise.all(backends.map((b) => b.stop().catch((error: unknown) => log(`stopping ${b.contender.name}: ${String(error)}`))));
    await server?.destroy();
  }
  const ping = { p50Ms: round(median(pings), 4), perMeasurement: pings.map((x) => round(x, 4)), samplesEach: PING_SAMPLES };
  return { results, skipped, ping, load: { before: loadBefore.map((x) => round(x, 2)), after: os.loadavg().map((x) => round(x, 2)) }, durationS: round((Date.now() - started) / 1_000, 1) };
}

type Row = { metric: string; pick: (r: Record<string, unknown>) => number; lowerIsBetter: boolean };
const get = (r: Record<string, unknown>, path: string): number => {
  let v: unknown = r;
  for (const p of path.split('.')) v = v === undefined || v === null ? undefined : (v as Record<string, unknown>)[p];
  return v === undefined || v === null ? NaN : Number(v);
};
const ROWS: Row[] = [
  { metric: 'handover p50 ms, 1 waiter', pick: (r) => get(r, 'handover_1w.p50Ms'), lowerIsBetter: true },
  { metric: 'handover p99 ms, 1 waiter', pick: (r) => get(r, 'handover_1w.p99Ms'), lowerIsBetter: true },
  { metric: 'handover p50 ms, 8 waiters', pick: (r) => get(r, 'handover_8w.p50Ms'), lowerIsBetter: true },
  { metric: 'handover p99 ms, 8 waiters', pick: (r) => get(r, 'handover_8w.p99Ms'), lowerIsBetter: true },
  { metric: 'contended ops/s, 8 workers (median of runs)', pick: (r) => get(r, 'contended_8w.opsPerSec'), lowerIsBetter: false },
  { metric: 'contended ops/s, 64 workers (median of runs)', pick: (r) => get(r, 'contended_64w.opsPerSec'), lowerIsBetter: false },
  { metric: 'uncontended ops/s, 1,000 keys (median of runs)', pick: (r) => get(r, 'uncontended.opsPerSec'), lowerIsBetter: false },
  { metric: 'uncontended client CPU µs/op', pick: (r) => get(r, 'uncontended.clientCpuUsPerOp'), lowerIsBetter: true },
  { metric: 'uncontended Redis CPU µs/op', pick: (r) => get(r, 'uncontended.redisCpuUsPerOp'), lowerIsBetter: true },
  { metric: 'fairness min/max, 8 workers', pick: (r) => get(r, 'fairness.minMaxRatio'), lowerIsBetter: false },
];

const MINE = ['allot', 'allot (fair)'];
const PEERS = ['redis-semaphore', 'redlock'];

/** allot / peer per run (run i of each library ran close together in time): median and spread */
function runRatios(results: Results) {
  const runsOf = (n: string, k: string) => ((results[n]?.[k] as { runs?: number[] } | undefined)?.runs ?? []);
  const out: Record<string, Record<string, { median: number; min: number; max: number; perRun: number[] }>> = {};
  for (const k of ['contended_8w', 'contended_64w', 'uncontended']) {
    for (const mine of MINE) {
      const m = runsOf(mine, k);
      const vs: Record<string, number[]> = {
        'redis-semaphore': m.map((x, i) => x / runsOf('redis-semaphore', k)[i]!),
        redlock: m.map((x, i) => x / runsOf('redlock', k)[i]!),
        'best of redis-semaphore and redlock': m.map((x, i) => x / Math.max(runsOf('redis-semaphore', k)[i]!, runsOf('redlock', k)[i]!)),
      };
      for (const [peer, rs] of Object.entries(vs)) {
        if (!rs.length) continue;
        (out[`${mine} / ${peer}`] ??= {})[k] = { median: round(median(rs), 2), min: round(Math.min(...rs), 2), max: round(Math.max(...rs), 2), perRun: rs.map((x) => round(x, 2)) };
      }
    }
  }
  return out;
}

function ratios(results: Results) {
  const out: Record<string, Record<string, number>> = {};
  for (const mine of MINE) {
    for (const peer of PEERS) {
      const o: Record<string, number> = {};
      for (const row of ROWS) o[row.metric] = round(row.pick(results[mine]!) / row.pick(results[peer]!), 2);
      out[`${mine} / ${peer}`] = o;
    }
  }
  return out;
}

const fmt = (x: number) => (Number.isFinite(x) ? String(x) : '—');

function targets(results: Results, rr: ReturnType<typeof runRatios>, ping: { p50Ms: number }): string[] {
  const a = results.allot!;
  const f = results['allot (fair)']!;
  const mark = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const p50 = Math.max(get(a, 'handover_8w.p50Ms'), get(f, 'handover_8w.p50Ms'));
  const p99 = Math.max(get(a, 'handover_8w.p99Ms'), get(f, 'handover_8w.p99Ms'));
  const fair = get(f, 'fairness.minMaxRatio');
  const violations = [a, f].reduce((n, r) => n + ['handover_1w', 'handover_8w', 'contended_8w', 'fairness'].reduce((m, k) => m + (get(r, `${k}.violations`) || 0), 0), 0);
  const rt = (ms: number) => `${fmt(round(ms / ping.p50Ms, 1))} round trips`;
  const spread = (x: { median: number; min: number; max: number } | undefined) => (x ? `median ${x.median}, runs ${x.min}–${x.max}` : 'not measured');
  const lines = [
    `- handover with 8 waiters p50 ≤ 0.25 ms on single Redis: ${mark(p50 <= 0.25)} (default mode ${fmt(get(a, 'handover_8w.p50Ms'))} ms = ${rt(get(a, 'handover_8w.p50Ms'))}, fair mode ${fmt(get(f, 'handover_8w.p50Ms'))} ms = ${rt(get(f, 'handover_8w.p50Ms'))}; PING p50 ${ping.p50Ms} ms)`,
    `- handover with 8 waiters p99 ≤ 5 ms: ${mark(p99 <= 5)} (default mode ${fmt(get(a, 'handover_8w.p99Ms'))} ms, fair mode ${fmt(get(f, 'handover_8w.p99Ms'))} ms)`,
  ];
  for (const k of ['contended_8w', 'contended_64w']) {
    const x = rr['allot / best of redis-semaphore and redlock']?.[k];
    const xf = rr['allot (fair) / best of redis-semaphore and redlock']?.[k];
    const best = Math.max(get(results['redis-semaphore']!, `${k}.opsPerSec`), get(results.redlock!, `${k}.opsPerSec`));
    // No lock can beat one full cycle per hold: the measured hold (a 1 ms timer) plus a release and
    // an acquire, each at least one round trip.
    const holds = [...MINE, ...PEERS].map((n) => get(results[n]!, `${k}.meanHoldMs`)).filter(Number.isFinite);
    const hold = holds.length ? Math.min(...holds) : NaN;
    const ceiling = 1_000 / (hold + 2 * ping.p50Ms);
    lines.push(
      `- contended throughput (${k === 'contended_8w' ? 8 : 64} workers, 1 ms hold) ≥ 1.2× the best of redis-semaphore and redlock: ${mark((x?.median ?? 0) >= 1.2)} (allot ${spread(x)}; allot (fair) ${spread(xf)}). ` +
        `For scale: 1.2 × the best peer's median = ${fmt(round(1.2 * best, 1))} ops/s, while the ceiling for any lock in this scenario, 1 / (measured mean hold ${fmt(round(hold))} ms + 2 PING round trips), is ${fmt(round(ceiling, 1))} ops/s.`,
    );
  }
  const u = rr['allot / redis-semaphore']?.uncontended;
  lines.push(`- uncontended throughput allot / redis-semaphore ≥ 1.0 (median of ${RUNS} runs): ${mark((u?.median ?? 0) >= 1)} (${spread(u)})`);
  lines.push(`- fair mode min/max ≥ 0.8: ${mark(fair >= 0.8)} (${fmt(fair)})`);
  lines.push(`- exclusion, allot in both modes: ${mark(violations === 0)} (${violations} violations)`);
  return lines;
}

interface Data {
  meta: Record<string, unknown>;
  ping: { p50Ms: number; perMeasurement: number[]; samplesEach: number };
  skipped: Record<string, string>;
  results: Results;
  ratios: Record<string, Record<string, number>>;
  runRatios: ReturnType<typeof runRatios>;
}

function markdown(data: Data): string {
  const names = Object.keys(data.results);
  const ping = data.ping.p50Ms;
  const cell = (x: number) => fmt(x);
  const load = data.meta.load as { before: number[]; after: number[] };
  const lines = [
    '# Lock benchmark',
    '',
    `Run ${String(data.meta.date)} on ${String(data.meta.cpus)} × ${String(data.meta.cpu)}, Node ${String(data.meta.node)}, ${String(data.meta.durationS)} s.`,
    '',
    `Command: \`${String(data.meta.command)}\``,
    '',
    `Machine load (1/5/15-min load average) before the scenarios ${load.before.join(' / ')}, after ${load.after.join(' / ')}: the machine has ${String(data.meta.cpus)} cores and is shared with other helpers' test runs, so every figure carries that noise; the comparison is interleaved (scenario-major, mirrored uncontended rounds, ${RUNS} runs) so it hits every library alike.`,
    '',
    `Redis PING round trip p50 (ioredis, one connection, the bench's connection options, ${data.ping.samplesEach} sequential PINGs, measured before the handover runs and after each comparison run): ${ping} ms (each measurement: ${data.ping.perMeasurement.join(', ')} ms).`,
    '',
    `Every library with its defaults, one connection (or client) per worker, all workers in one process; hold time ${HOLD_MS} ms.`,
    "Handover = the previous holder starts release() → a waiting worker's acquire resolves; in the handover runs a worker that released waits until another worker took the lock before it contends again, so every release is a real handover. Throughput and fairness runs let workers re-contend at once (barging allowed).",
    `Contended and uncontended throughput: the comparison (allot, allot (fair), redis-semaphore, redlock, all on the one single Redis) runs ${RUNS} times (BENCH_LOCK_RUNS); the table shows each library's median over the runs and the ratios section the median and spread of the per-run ratios.`,
    `Uncontended = ${UNCONTENDED_WORKERS} workers, each cycling through its own slice of ${UNCONTENDED_KEYS.toLocaleString('en')} keys (acquire + release pairs, no two workers share a key; allot's fence included). In each run every library first runs an untimed ${WARMUP_SECONDS} s warm-up, then ${UNCONTENDED_ROUNDS} rounds of ${UNCONTENDED_SECONDS} s in mirrored order (A B C D D C B A …); a run's figure is the mean of its rounds. allot's other backends: a warm-up, then ${BACKEND_UNCONTENDED_ROUNDS} rounds of ${UNCONTENDED_SECONDS} s, once. CPU µs/op = CPU time per acquire+release pair of the client process (which also runs the bench loop) and of the Redis server (INFO cpu; single Redis only).`,
    "allot's other backends, measured after the comparison set (their servers are started only then, so their idle work is not noise in the single-Redis figures), each on throwaway loopback servers started by the test helpers, default (non-fair) mode, in-memory fence anchor where one is needed: allot sentinel = 1 master + 1 replica + 3 sentinels (the client follows the master; failover guard on); allot cluster = 6 nodes (3 masters + 3 replicas, ioredis Cluster client per worker); allot redlock×3 = allot's Redlock provider over 3 independent Redis servers; allot etcd×3 = a 3-member etcd 3.4 cluster (data in /dev/shm); allot postgres = PostgreSQL 15 advisory locks (pg pool of 2 per worker).",
    '',
    `| metric | ${names.join(' | ')} |`,
    `|---|${names.map(() => '---:').join('|')}|`,
    ...ROWS.map((row) => `| ${row.metric} | ${names.map((n) => cell(row.pick(data.results[n]!))).join(' | ')} |`),
    `| handover p50, 8 waiters, in single-Redis PING round trips | ${names.map((n) => cell(round(get(data.results[n]!, 'handover_8w.p50Ms') / ping, 1))).join(' | ')} |`,
    `| handover p50, 1 waiter, in single-Redis PING round trips | ${names.map((n) => cell(round(get(data.results[n]!, 'handover_1w.p50Ms') / ping, 1))).join(' | ')} |`,
    `| handover samples, 1 / 8 waiters | ${names.map((n) => `${cell(get(data.results[n]!, 'handover_1w.samples'))} / ${cell(get(data.results[n]!, 'handover_8w.samples'))}`).join(' | ')} |`,
    '',
    '— = not measured for that backend (contended throughput and fairness run for the comparison set only; Redis CPU only on the single Redis).',
    '',
  ];
  if (Object.keys(data.skipped).length) {
    lines.push('Skipped backends:', '', ...Object.entries(data.skipped).map(([k, v]) => `- ${k}: ${v}`), '');
  }
  lines.push(
    `## Ratios allot / peer over ${RUNS} runs`,
    '',
    'Per run, allot\'s figure divided by the peer\'s figure from the same run; median and (min–max) over the runs. Above 1 means allot is better.',
    '',
    `| ratio | contended 8 workers | contended 64 workers | uncontended |`,
    '|---|---:|---:|---:|',
    ...Object.entries(data.runRatios).map(([k, v]) => `| ${k} | ${['contended_8w', 'contended_64w', 'uncontended'].map((m) => (v[m] ? `${v[m].median} (${v[m].min}–${v[m].max})` : '—')).join(' | ')} |`),
    '',
    'Per-run figures (ops/s):',
    '',
    ...[...MINE, ...PEERS].map((n) => `- ${n}: contended 8w ${((data.results[n]?.contended_8w as { runs?: number[] })?.runs ?? []).join(', ')}; 64w ${((data.results[n]?.contended_64w as { runs?: number[] })?.runs ?? []).join(', ')}; uncontended ${((data.results[n]?.uncontended as { runs?: number[] })?.runs ?? []).join(', ')}`),
    '',
    '## Ratios allot / peer on the medians (all rows)',
    '',
    'For latency rows a ratio below 1 means allot is faster; for throughput and fairness rows above 1 means allot is better.',
    '',
    `| metric | ${Object.keys(data.ratios).join(' | ')} |`,
    `|---|${Object.keys(data.ratios).map(() => '---:').join('|')}|`,
    ...ROWS.map((row) => `| ${row.metric} | ${Object.values(data.ratios).map((r) => cell(r[row.metric]!)).join(' | ')} |`),
    '',
    '## Targets',
    '',
    ...targets(data.results, data.runRatios, data.ping),
    '',
    'Failures (acquire gave up: redlock after 10 retries, redis-semaphore/allot after their timeouts) and exclusion violations:',
    '',
    ...names.map((n) => {
      const r = data.results[n]!;
      const f = ['handover_1w', 'handover_8w', 'contended_8w', 'contended_64w', 'uncontended', 'fairness'].filter((k) => r[k]).map((k) => `${k} ${get(r, `${k}.failures`)}`);
      const v = ['handover_1w', 'handover_8w', 'contended_8w', 'fairness'].reduce((a, k) => a + (get(r, `${k}.violations`) || 0), 0);
      return `- ${n}: failures ${f.join(', ')}; violations ${v}`;
    }),
    '',
  );
  if (typeof data.meta.notes === 'string') lines.push(data.meta.notes.trimEnd(), '');
  return lines.join('\n');
}

const { results, skipped, ping, load, durationS } = await run();
if (SCENARIOS.size < 4 || process.env.BENCH_LOCK_NO_WRITE === '1') {
  // A partial run (BENCH_LOCK_SCENARIOS) is for quick checks: print it, keep the committed results.
  process.stdout.write(`${JSON.stringify({ ping, skipped, results, runRatios: runRatios(results) }, null, 2)}\n`);
  process.exit(0);
}
const envShown = Object.entries(process.env)
  .filter(([k]) => k.startsWith('BENCH_LOCK_'))
  .map(([k, v]) => `${k}=${v} `)
  .join('');
const dir = fileURLToPath(new URL('./results/', import.meta.url));
// Hand-written analysis that goes with the figures (bench/results/locks.notes.md), appended verbatim.
const notesFile = `${dir}locks.notes.md`;
const notes = existsSync(notesFile) ? readFileSync(notesFile, 'utf8') : undefined;
const meta = { date: new Date().toISOString(), command: `${envShown}npm run bench:locks`, node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', load, durationS, seconds: SECONDS, fairnessSeconds: FAIRNESS_SECONDS, runs: RUNS, uncontendedRoundsPerRun: UNCONTENDED_ROUNDS, notes };
const data: Data = { meta, ping, skipped, results, ratios: ratios(results), runRatios: runRatios(results) };
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}locks.json`, `${JSON.stringify(data, null, 2)}\n`);
writeFileSync(`${dir}locks.md`, markdown(data));
log(`done in ${durationS} s: bench/results/locks.json, bench/results/locks.md`);
process.stdout.write(markdown(data));
