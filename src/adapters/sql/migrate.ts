// Brings the schema up to date. Kysely's migrator takes a database-wide lock (an advisory lock
// on Postgres, GET_LOCK on MySQL), so any number of instances may start at once.
import { Migrator, sql, type MigrationResultSet } from 'kysely';
import type { SqlConnection } from './connect.ts';
import { sqlDialect } from './dialect.ts';
import { kyselyMigrations, type MigrationOptions } from './migrations/index.ts';

export interface MigrateReport {
  applied: string[];
}

export async function migrateToLatest(conn: SqlConnection, opts: MigrationOptions = {}): Promise<MigrateReport> {
  const migrations = kyselyMigrations(sqlDialect(conn.family), opts);
  // Kysely looks its own tables up in every schema when given none: another schema's
  // allot_migrations (a race-lab schema, another service) would pass for ours.
  const schema = (conn.family === 'pg' ? String((await sql<{ s: string }>`SELECT current_schema() AS s`.execute(conn.db)).rows[0]!.s) : undefined);
  const migrator = new Migrator({
    db: conn.db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'allot_migrations',
    migrationLockTableName: 'allot_migrations_lock',
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const res: MigrationResultSet = await migrator.migrateToLatest();
  if (res.error) {
    const failed = res.results?.find((r) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${String((res.error as Error)?.message ?? res.error)}`, { cause: res.error });
  }
  return { applied: (res.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}
