// Where a lab run's data lives: a server database (given, or a throwaway one started the way
// the tests start theirs) with a namespace of its own — a PostgreSQL schema or a MariaDB
// database named lab_<id> — migrated without the stock backstop unless asked, so the service's
// tables are never touched and an unsafe strategy's oversell shows as rows.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { connectSql } from '../adapters/sql/connect.ts';
import { migrateToLatest } from '../adapters/sql/migrate.ts';
import type { LabBackend } from './scenarios.ts';
import { startMariadb, startPostgres, startRedis, type TestServer } from './servers.ts';

export interface LabDatabase {
  backend: LabBackend;
  /** the namespace's URL (what workers and the snapshot use) */
  url: string;
  /** the server itself when the lab started it (for faults that stop it) */
  server: TestServer | null;
  drop(): Promise<void>;
}

const cleanup: Array<() => Promise<void>> = [];

async function serverUrl(backend: 'postgres' | 'mysql', given: string | undefined, log: (s: string) => void): Promise<{ url: string; server: TestServer | null }> {
  if (given) return { url: given, server: null };
  log(`starting a throwaway ${backend === 'postgres' ? 'PostgreSQL' : 'MariaDB'} on loopback (no ${backend === 'postgres' ? 'DATABASE_URL_PG' : 'DATABASE_URL_MYSQL'} given)…`);
  const server = backend === 'postgres' ? await startPostgres() : await startMariadb();
  cleanup.push(() => server.destroy());
  return { url: server.url, server };
}

/** Opens a fresh lab namespace on `backend`. pglite: a data dir under outDir (one process at a time). */
export async function openLabDatabase(backend: LabBackend, opts: { given?: string; outDir: string; stockBackstop: boolean; log: (s: string) => void }): Promise<LabDatabase> {
  const name = `lab_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  if (backend === 'pglite') {
    const url = `pglite://${opts.outDir}/${name}`;
    const conn = await connectSql({ url, poolSize: 1, timeoutMs: 10_000 });
    try {
      await migrateToLatest(conn, { stockBackstop: opts.stockBackstop });
    } finally {
      await conn.db.destroy();
    }
    return { backend, url, server: null, drop: async () => undefined };
  }
  const { url: base, server } = await serverUrl(backend, opts.given, opts.log);
  const admin = await connectSql({ url: base, poolSize: 1, timeoutMs: 10_000 });
  let url: string;
  try {
    if (backend === 'postgres') {
      await sql.raw(`CREATE SCHEMA ${name}`).execute(admin.db);
      // encodeURIComponent, not URLSearchParams: the driver does not read '+' as a space.
      url = `${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${name}`)}`;
    } else {
      await sql.raw(`CREATE DATABASE ${name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`).execute(admin.db);
      const u = new URL(base);
      u.pathname = `/${name}`;
      url = u.toString();
    }
  } catch (err) {
    await admin.db.destroy();
    throw new Error(`cannot create the lab's own ${backend === 'postgres' ? 'schema' : 'database'} ${name} on ${backend}: ${(err as Error).message}${backend === 'mysql' ? " (the user needs CREATE on databases named lab_%: GRANT ALL ON `lab\\_%`.* TO …)" : ''}`, { cause: err });
  }
  const drop = async () => {
    await sql.raw(backend === 'postgres' ? `DROP SCHEMA IF EXISTS ${name} CASCADE` : `DROP DATABASE IF EXISTS ${name}`).execute(admin.db).catch(() => undefined);
    await admin.db.destroy();
  };
  try {
    const conn = await connectSql({ url, poolSize: 1, timeoutMs: 10_000 });
    try {
      await migrateToLatest(conn, { stockBackstop: opts.stockBackstop });
    } finally {
      await conn.db.destroy();
    }
  } catch (err) {
    // A namespace that could not be migrated is not left behind.
    await drop();
    throw err;
  }
  return { backend, url, server, drop };
}

/** Redis for lock-based strategies: the given URL, or a throwaway server (restartable by faults). */
export async function openLabRedis(given: string | undefined, log: (s: string) => void): Promise<{ url: string; server: TestServer | null }> {
  if (given) return { url: given, server: null };
  log('starting a throwaway Redis on loopback (no REDIS_URL given)…');
  const server = await startRedis();
  cleanup.push(() => server.destroy());
  return { url: server.url, server };
}

/** Stops every server the lab started. */
export async function closeLabServers(): Promise<void> {
  while (cleanup.length > 0) await cleanup.pop()!().catch(() => undefined);
}
