// The schema, as an ordered list of migrations. Each migration is raw SQL from the dialect
// object, so every id column is bytewise-compared (ids are case-sensitive) on both families.
import { sql, type Kysely, type Migration } from 'kysely';
import type { SqlDialect } from '../dialect.ts';
import { initial } from './001-initial.ts';
import { lockFences } from './002-lock-fences.ts';
import { strategyCatalogue } from './003-strategy-catalogue.ts';
import { lottery } from './004-lottery.ts';
import { payouts } from './005-payouts.ts';
import { leases } from './006-leases.ts';
import { lockFenceHolders } from './007-lock-fence-holders.ts';
import { lockFencePrune } from './008-lock-fence-prune.ts';
import { redisAtomicLeases } from './009-redis-atomic-leases.ts';

export interface MigrationOptions {
  /** CHECK (issued <= stock) on campaigns; only the race lab's own schema sets it false */
  stockBackstop?: boolean;
}

export interface SqlMigration {
  name: string;
  statements(dialect: SqlDialect, opts?: MigrationOptions): string[];
}

export const MIGRATIONS: readonly SqlMigration[] = [initial, lockFences, strategyCatalogue, lottery, payouts, leases, lockFenceHolders, lockFencePrune, redisAtomicLeases];

export function kyselyMigrations(dialect: SqlDialect, opts: MigrationOptions = {}): Record<string, Migration> {
  const out: Record<string, Migration> = {};
  for (const m of MIGRATIONS) {
    out[m.name] = {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      async up(db: Kysely<any>) {
        for (const stmt of m.statements(dialect, opts)) await sql.raw(stmt).execute(db);
      },
    };
  }
  return out;
}
