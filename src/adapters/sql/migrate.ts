// Brings the schema up to date. Kysely's migrator takes a database-wide lock (an advisory lock
// on Postgres, GET_LOCK on MySQL), so any number of instances may start at once. A schema that
// is already up to date (every start but the first) is seen with one SELECT, without the
// migrator's lock and bookkeeping statements.
import { createHash } from 'node:crypto';
import { Migrator, sql, type MigrationResultSet } from 'kysely';
import type { PgliteSchema, SqlConnection } from './connect.ts';
import { sqlDialect } from './dialect.ts';
import { kyselyMigrations, MIGRATIONS, type MigrationOptions } from './migrations/index.ts';

export interface MigrateReport {
  applied: string[];
}

export async function migrateToLatest(conn: SqlConnection, opts: MigrationOptions = {}): Promise<MigrateReport> {
  const migrations = kyselyMigrations(sqlDialect(conn.family), opts);
  // Kysely looks its own tables up in every schema when given none: another schema's
  // allot_migrations (a race-lab schema, another service) would pass for ours.
  const schema = (conn.family === 'pg' ? String((await sql<{ s: string }>`SELECT current_schema() AS s`.execute(conn.db)).rows[0]!.s) : undefined);
  if (await upToDate(conn, schema, Object.keys(migrations))) return { applied: [] };
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
    // Failed before any migration ran (the database is unreachable, say): the error itself.
    if (!failed) throw res.error;
    throw new Error(`migration ${failed.migrationName} failed: ${String((res.error as Error)?.message ?? res.error)}`, { cause: res.error });
  }
  return { applied: (res.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}

/** Every migration is recorded as applied (and no unknown one: a newer version's schema goes
 * through the migrator, which reports it). False when the table is not there yet. */
async function upToDate(conn: SqlConnection, schema: string | undefined, names: string[]): Promise<boolean> {
  const table = schema !== undefined ? sql`${sql.id(schema)}.allot_migrations` : sql`allot_migrations`;
  let applied: Set<string>;
  try {
    // The table's existence first: a failed SELECT would abort an enclosing transaction and
    // log an error on the server.
    const exists = conn.family === 'pg'
      ? (await sql<{ t: unknown }>`SELECT to_regclass(${`${quoteIdent(schema ?? 'public')}.allot_migrations`}) AS t`.execute(conn.db)).rows[0]?.t != null
      : (await sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'allot_migrations'`.execute(conn.db)).rows[0]?.n != 0;
    if (!exists) return false;
    applied = new Set((await sql<{ name: string }>`SELECT name FROM ${table}`.execute(conn.db)).rows.map((r) => String(r.name)));
  } catch {
    return false;
  }
  return applied.size === names.length && names.every((n) => applied.has(n));
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A short hash of the schema the migrations make (their names and statements, for this
 * family and options): what a template database migrated once is keyed by. */
export function schemaKey(family: SqlConnection['family'], opts: MigrationOptions = {}): string {
  const d = sqlDialect(family);
  const text = MIGRATIONS.map((m) => `${m.name}\n${m.statements(d, opts).join(';\n')}`).join('\n\n');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** The schema of the service's migrations (default options) for new embedded databases to
 * start with: their template is migrated once (connect.ts, PgliteSchema). */
export function defaultPgliteSchema(): PgliteSchema {
  return { key: schemaKey('pg'), setup: async (conn) => void (await migrateToLatest(conn)) };
}
