// The schema, as an ordered list of migrations. Each migration is raw SQL per dialect family,
// so every id column is bytewise-compared (ids are case-sensitive) on both families.
import { sql, type Kysely, type Migration } from 'kysely';
import type { SqlFamily } from '../connect.ts';
import { initial } from './001-initial.ts';
import { lockFences } from './002-lock-fences.ts';

export interface SqlMigration {
  name: string;
  statements(family: SqlFamily): string[];
}

export const MIGRATIONS: readonly SqlMigration[] = [initial, lockFences];

export function kyselyMigrations(family: SqlFamily): Record<string, Migration> {
  const out: Record<string, Migration> = {};
  for (const m of MIGRATIONS) {
    out[m.name] = {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      async up(db: Kysely<any>) {
        for (const stmt of m.statements(family)) await sql.raw(stmt).execute(db);
      },
    };
  }
  return out;
}
