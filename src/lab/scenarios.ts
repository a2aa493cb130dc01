// The race lab's scenarios: each reproduces one of the field reports (shared/FIELD-REPORTS.md)
// as a campaign, a workload and the strategies to compare on it.
import type { LabOp } from './worker.ts';

export type LabBackend = 'pglite' | 'postgres' | 'mysql';

export interface ScenarioPrize {
  id: string;
  name: string;
  stock: number;
  weight: number;
}

/** A coupon campaign of `stock` units, or, with `prizes`, a lottery (its stock is the prizes';
 * `stock` is then their sum, for the record). */
export interface ScenarioCampaign {
  stock: number;
  perUserLimit: number;
  perUserDailyLimit?: number | null;
  /** a lottery's prizes */
  prizes?: ScenarioPrize[];
  /** a lottery's weight of drawing nothing (default 0) */
  missWeight?: number;
}

export interface StrategyRun {
  strategy: string;
  workers: number;
}

export interface Scenario {
  name: string;
  description: string;
  /** which field report it reproduces */
  report: string;
  campaign: ScenarioCampaign;
  /** independent campaigns the workload is spread over (each one's last units are raced for) */
  campaigns?: number;
  /** the operations, without campaign ids (the driver assigns them round-robin) */
  workload(): Array<Omit<LabOp, 'campaignId' | 'op'>>;
  runs(workers: number): StrategyRun[];
  backends: LabBackend[];
  /** session isolation per backend (the prize application runs MariaDB at REPEATABLE READ) */
  isolation?: Partial<Record<LabBackend, 'read committed' | 'repeatable read'>>;
  /** latency the lab's TCP proxy adds between the app and the database, each way */
  dbLatencyMs?: number;
  /** ms the unsafe strategies spend between check and write (the seeds' business logic) */
  thinkMs?: number;
  /** connections per worker */
  poolSize?: number;
  /** lock-expiry: a choreography instead of a stampede */
  lockExpiry?: { ttlMs: number };
  /** the strategies expected to violate here */
  unsafe: string[];
}

export const DEFAULT_WORKERS = 4;

const SAFE = ['conditional', 'pessimistic', 'optimistic', 'optimistic-stock', 'redis-lock', 'group-commit', 'redis-atomic'];
/** redis-atomic takes coupon campaigns only */
const SAFE_LOTTERY = SAFE.filter((s) => s !== 'redis-atomic');

/** n requests spread evenly over spreadMs. */
function spread<T>(items: T[], spreadMs: number): Array<T & { at: number }> {
  return items.map((x, i) => ({ ...x, at: items.length > 1 ? Math.round((i * spreadMs) / items.length) : 0 }));
}

/** A deterministic shuffle (a fixed LCG), so two runs of a scenario send the same sequence. */
export function shuffled<T>(xs: T[]): T[] {
  // Deterministic (a fixed LCG), so two runs of a scenario send the same sequence.
  let seed = 42;
  const rnd = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'red-packet',
    description: 'One user, 1,000 concurrent withdrawal requests in about 1 s (ab -n 1000): exactly one may succeed.',
    report: '2. Red-packet withdrawal',
    campaign: { stock: 1000, perUserLimit: 1 },
    workload: () => spread(Array.from({ length: 1000 }, () => ({ userId: 'openid-1', key: null })), 1000),
    runs: (w) => [{ strategy: 'naive', workers: w }, { strategy: 'local-mutex', workers: 1 }, { strategy: 'local-mutex', workers: w }, ...SAFE.map((s) => ({ strategy: s, workers: w }))],
    backends: ['postgres'],
    thinkMs: 5,
    unsafe: ['naive', 'local-mutex'],
  },
  {
    name: 'two-instances',
    description: 'The same stampede on 1 process and on 2: an in-process mutex (synchronized) holds on one instance and oversells on two.',
    report: '5. Coupon claim (and 2, stage 2)',
    campaign: { stock: 20, perUserLimit: 1 },
    campaigns: 5,
    workload: () => Array.from({ length: 1000 }, (_, i) => ({ userId: `user-${i}`, key: `k-${i}`, at: 0 })),
    // Two instances, as in the report; --workers N runs the second set on N.
    runs: (w) => {
      const n = w === DEFAULT_WORKERS ? 2 : Math.max(2, w);
      return [{ strategy: 'local-mutex', workers: 1 }, { strategy: 'local-mutex', workers: n }, ...SAFE.map((s) => ({ strategy: s, workers: n }))];
    },
    backends: ['postgres'],
    // The read-then-write window of the unsafe strategy (safe ones never wait). 20 ms, so that the
    // two processes' windows overlap even on a loaded machine: with 5 ms a CI run once had one
    // process descheduled through the whole sell-out (20 units) and local-mutex oversold nothing.
    thinkMs: 20,
    unsafe: ['local-mutex'],
  },
  {
    name: 'last-unit',
    description: 'Stock 1, 500 concurrent users: the last phone drawn twice when the draw read stock before either decremented it.',
    report: '4. Lottery prize pool',
    campaign: { stock: 1, perUserLimit: 1 },
    workload: () => Array.from({ length: 500 }, (_, i) => ({ userId: `user-${i}`, key: `k-${i}`, at: 0 })),
    runs: (w) => ['naive', ...SAFE].map((s) => ({ strategy: s, workers: w })),
    backends: ['postgres'],
    thinkMs: 25,
    unsafe: ['naive'],
  },
  {
    name: 'lottery-last-phone',
    description: 'A lottery with 1 phone (stock 1, weight 1) and nothing else (missWeight 0), 500 concurrent draws by 500 users: the draw reads the prize\'s stock, so the naive read-then-write hands the phone out several times.',
    report: '4. Lottery prize pool',
    campaign: { stock: 1, perUserLimit: 1, prizes: [{ id: 'phone', name: 'Phone', stock: 1, weight: 1 }], missWeight: 0 },
    workload: () => Array.from({ length: 500 }, (_, i) => ({ userId: `user-${i}`, key: `k-${i}`, at: 0 })),
    runs: (w) => ['naive', ...SAFE_LOTTERY].map((s) => ({ strategy: s, workers: w })),
    backends: ['postgres'],
    thinkMs: 25,
    unsafe: ['naive'],
  },
  {
    name: 'slow-db',
    description: '100 ms round trip between the app and the database (a TCP proxy, 50 ms each way): the naive read-then-write oversells by dozens.',
    report: '5. Coupon claim',
    campaign: { stock: 10, perUserLimit: 1 },
    workload: () => Array.from({ length: 200 }, (_, i) => ({ userId: `user-${i}`, key: `k-${i}`, at: 0 })),
    runs: (w) => ['naive', 'conditional', 'pessimistic', 'redis-lock'].map((s) => ({ strategy: s, workers: w })),
    backends: ['postgres'],
    dbLatencyMs: 50,
    unsafe: ['naive'],
  },
  {
    name: 'lock-expiry',
    description: 'A redis-lock holder is paused (SIGSTOP) past its lease; another takes the lock and writes; the resumed holder\'s write is refused by the fence.',
    report: '4. and 5. (Redis lock expiry, failover)',
    campaign: { stock: 10, perUserLimit: 1 },
    workload: () => [{ userId: 'user-paused', key: 'k-first', at: 0 }, { userId: 'user-paused', key: 'k-second', at: 0 }],
    runs: () => [{ strategy: 'redis-lock', workers: 2 }],
    backends: ['postgres'],
    lockExpiry: { ttlMs: 500 },
    unsafe: [],
  },
  {
    name: 'prize-application',
    description: 'Each of 200 users applies 5 times at once; at most 2 per UTC day and 3 in all, with no unique index on the claims table, MariaDB at REPEATABLE READ (no help from gap locks for new users) and PostgreSQL at READ COMMITTED.',
    report: '1. Prize application on TiDB',
    campaign: { stock: 10_000, perUserLimit: 3, perUserDailyLimit: 2 },
    workload: () => shuffled(Array.from({ length: 1000 }, (_, i) => ({ userId: `user-${i % 200}`, key: `k-${i}`, at: 0 }))),
    runs: (w) => ['naive', ...SAFE].map((s) => ({ strategy: s, workers: w })),
    backends: ['postgres', 'mysql'],
    isolation: { mysql: 'repeatable read', postgres: 'read committed' },
    thinkMs: 2,
    unsafe: ['naive'],
  },
  {
    name: 'stampede',
    description: 'A flash sale to run faults against (--fault): 600 requests over 1 s from 400 users, half of them retrying under their key, for 100 units.',
    report: 'all (faults: kill -9, SIGSTOP, Redis restart/FLUSHALL/pause, proxy latency/resets/blackholes)',
    campaign: { stock: 100, perUserLimit: 1 },
    workload: () =>
      spread(
        shuffled(Array.from({ length: 600 }, (_, i) => (i < 400 ? { userId: `user-${i}`, key: `k-${i}` } : { userId: `user-${i - 400}`, key: `k-${i - 400}` }))),
        1000,
      ),
    runs: (w) => SAFE.map((s) => ({ strategy: s, workers: w })),
    backends: ['postgres'],
    unsafe: [],
  },
];

export function findScenario(name: string): Scenario {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new Error(`unknown scenario "${name}"; the scenarios are: ${SCENARIOS.map((x) => x.name).join(', ')} (allot lab --list)`);
  return s;
}
