import { SAFE_STRATEGIES, UNSAFE_STRATEGIES } from '../../src/strategies/index.ts';

// The dialects a contract suite loops over: embedded PGlite always, PostgreSQL and MariaDB from
// the servers `npm test` starts (scripts/services.sh). ALLOT_TEST_DIALECTS=pglite,postgres
// narrows the list.

export interface DialectCase {
  name: 'pglite' | 'postgres' | 'mysql';
  url: () => string;
}

function fromEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests with \`npm test\` (it starts the servers) or eval "$(bash scripts/services.sh up)" first`);
  return v;
}

const ALL: DialectCase[] = [
  { name: 'pglite', url: () => 'memory://' },
  { name: 'postgres', url: () => fromEnv('DATABASE_URL_PG') },
  { name: 'mysql', url: () => fromEnv('DATABASE_URL_MYSQL') },
];

export function dialects(opts: { servers?: boolean } = {}): DialectCase[] {
  const only = process.env.ALLOT_TEST_DIALECTS?.split(',').map((s) => s.trim()).filter(Boolean);
  return ALL.filter((d) => (only ? only.includes(d.name) : true)).filter((d) => (opts.servers ? d.name !== 'pglite' : true));
}

/** Every safe strategy: the ones the race and fault tests hold to zero violations. */
export const STRATEGIES = SAFE_STRATEGIES;
/** Every strategy, the race lab's unsafe ones included (they pass the sequential contract). */
export const ALL_STRATEGIES = [...SAFE_STRATEGIES, ...UNSAFE_STRATEGIES] as const;
