// Brings the schema up to date. Kysely's migrator takes a database-wide lock (an advisory lock
// on Postgres, GET_LOCK on MySQL), so any number of instances may start at once.
import { Migrator, type MigrationResultSet } from 'kysely';
import type { SqlConnection } from './connect.ts';
import { sqlDialect } from './dialect.ts';
import { kyselyMigrations, type MigrationOptions } from './migrations/index.ts';

export interface MigrateReport {
  applied: string[];
}

/** schema: the PostgreSQL schema the connection's search_path points at, when not the default
 * one (the migrator's own tables are looked up there, not in whichever schema has them). */
export async function migrateToLatest(conn: SqlConnection, opts: MigrationOptions & { schema?: string } = {}): Promise<MigrateReport> {
  const migrations = kyselyMigrations(sqlDialect(conn.family), opts);
  const migrator = new Migrator({
    db: conn.db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'allot_migrations',
    migrationLockTableName: 'allot_migrations_lock',
    ...(opts.schema ? { migrationTableSchema: opts.schema } : {}),
  });
  const res: MigrationResultSet = await migrator.migrateToLatest();
  if (res.error) {
    const failed = res.results?.find((r) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${String((res.error as Error)?.message ?? res.error)}`, { cause: res.error });
  }
  return { applied: (res.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}
