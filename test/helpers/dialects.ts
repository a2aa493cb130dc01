import type { IsolationLevel } from '../../src/adapters/sql/connect.ts';
import { SAFE_STRATEGIES, UNSAFE_STRATEGIES } from '../../src/strategies/index.ts';

// The dialects a contract suite loops over: embedded PGlite always, PostgreSQL and MariaDB from
// the servers `npm test` starts (scripts/services.sh). ALLOT_TEST_DIALECTS=pglite,postgres
// narrows the list.
//
// `dialects({ isolations: true })` adds the same servers at other session isolation levels
// (pass `isolation` through the service's `dbIsolation`): `mysql-rr`, MariaDB at REPEATABLE READ
// (the seed's condition: gap locks, snapshot reads), and `postgres-serializable` (SSI: 40001
// serialization failures, retried by the strategies). They are named like the others in
// ALLOT_TEST_DIALECTS (e.g. ALLOT_TEST_DIALECTS=mysql-rr).

export interface DialectCase {
  name: 'pglite' | 'postgres' | 'mysql' | 'mysql-rr' | 'postgres-serializable';
  /** the database behind the case */
  backend: 'pglite' | 'postgres' | 'mysql';
  url: () => string;
  /** session isolation to ask for (the service's `dbIsolation`); absent: the adapter's default */
  isolation?: IsolationLevel;
}

function fromEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with \`npm test\` (it starts the servers) or eval "$(bash scripts/services.sh up)" first`);
  return v;
}

const ALL: DialectCase[] = [
  { name: 'pglite', backend: 'pglite', url: () => 'memory://' },
  { name: 'postgres', backend: 'postgres', url: () => fromEnv('DATABASE_URL_PG') },
  { name: 'mysql', backend: 'mysql', url: () => fromEnv('DATABASE_URL_MYSQL') },
];

/** The servers again at another isolation level (opt-in: `dialects({ isolations: true })`). */
const ISOLATION_CASES: DialectCase[] = [
  { name: 'mysql-rr', backend: 'mysql', url: () => fromEnv('DATABASE_URL_MYSQL'), isolation: 'repeatable read' },
  { name: 'postgres-serializable', backend: 'postgres', url: () => fromEnv('DATABASE_URL_PG'), isolation: 'serializable' },
];

export function dialects(opts: { servers?: boolean; isolations?: boolean } = {}): DialectCase[] {
  const only = process.env.ALLOT_TEST_DIALECTS?.split(',').map((s) => s.trim()).filter(Boolean);
  return [...ALL, ...(opts.isolations ? ISOLATION_CASES : [])]
    .filter((d) => (only ? only.includes(d.name) : true))
    .filter((d) => (opts.servers ? d.backend !== 'pglite' : true));
}

/** The service's `dbIsolation` for a case: spread into its config. */
export function isolationOf(d: DialectCase): { dbIsolation?: IsolationLevel } {
  return d.isolation ? { dbIsolation: d.isolation } : {};
}

// redis-atomic needs Redis: without REDIS_URL the suites leave it out (it refuses, by design).
const runnable = <T extends string>(s: T): boolean => s !== 'redis-atomic' || Boolean(process.env.REDIS_URL);
/** Every safe strategy: the ones the race and fault tests hold to zero violations. */
export const STRATEGIES = SAFE_STRATEGIES.filter(runnable);
/** Every strategy, the race lab's unsafe ones included (they pass the sequential contract). */
export const ALL_STRATEGIES = [...SAFE_STRATEGIES, ...UNSAFE_STRATEGIES].filter(runnable);
/** The strategies that draw lotteries (redis-atomic takes coupon campaigns only). */
export const LOTTERY_STRATEGIES = STRATEGIES.filter((s) => s !== 'redis-atomic');
