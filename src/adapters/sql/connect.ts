// Opens the system of record named by a URL: postgres://, mysql:// (MariaDB/MySQL), or PGlite
// (pglite:// + a data dir, or memory:// for a throwaway in-memory database).
import { mkdirSync } from 'node:fs';
import { Kysely, MysqlDialect, PostgresDialect } from 'kysely';
import { lockDataDir } from './dir-lock.ts';
import { PgliteDialect } from './pglite-dialect.ts';

export type DialectName = 'pglite' | 'postgres' | 'mysql';
/** Dialect family: the SQL text is shared by pglite and postgres. */
export type SqlFamily = 'pg' | 'mysql';

export interface SqlConnectOptions {
  url: string;
  poolSize: number;
  /** Connect and statement timeout for server databases, in ms. */
  timeoutMs: number;
  /** Called with pool-level errors (an idle connection dropped by the server). */
  onPoolError?: (err: Error) => void;
}

export interface SqlConnection {
  dialect: DialectName;
  family: SqlFamily;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: Kysely<any>;
  /** A URL safe to print: the password masked. */
  displayUrl: string;
}

export function dialectOf(url: string): DialectName {
  const scheme = url.slice(0, url.indexOf(':')).toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') return 'postgres';
  if (scheme === 'mysql' || scheme === 'mariadb') return 'mysql';
  if (scheme === 'pglite' || scheme === 'memory' || scheme === 'file') return 'pglite';
  throw new Error(`unsupported database URL scheme "${scheme}:" (use postgres://, mysql://, mariadb://, pglite://<dir> or memory://)`);
}

export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

export async function connectSql(opts: SqlConnectOptions): Promise<SqlConnection> {
  const dialect = dialectOf(opts.url);
  const displayUrl = maskUrl(opts.url);
  if (dialect === 'pglite') {
    const { PGlite } = await import('@electric-sql/pglite');
    const path = pglitePath(opts.url);
    let release = () => {};
    if (path !== null) {
      mkdirSync(path, { recursive: true });
      release = lockDataDir(path);
    }
    try {
      const pg = await PGlite.create(path ?? 'memory://');
      return { dialect, family: 'pg', db: new Kysely({ dialect: new PgliteDialect(pg, release) }), displayUrl };
    } catch (err) {
      release();
      throw err;
    }
  }
  if (dialect === 'postgres') {
    const pgMod = await import('pg');
    const pg = pgMod.default;
    const pool = new pg.Pool({
      // int8 (counts, epoch ms) as JS numbers: every value we store fits in 2^53. Per pool, so
      // other users of `pg` in the process keep their parsers.
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
      connectionString: opts.url,
      max: opts.poolSize,
      connectionTimeoutMillis: opts.timeoutMs,
      query_timeout: opts.timeoutMs,
      statement_timeout: opts.timeoutMs,
      idleTimeoutMillis: 30_000,
    });
    // Without listeners, a client dropped by the server (idle in the pool, or checked out
    // between two statements) emits an unhandled 'error' that would crash the process. The
    // statement in flight still fails on its own and is answered 503.
    pool.on('error', (err) => opts.onPoolError?.(err));
    pool.on('connect', (client) => client.on('error', (err) => opts.onPoolError?.(err)));
    return { dialect, family: 'pg', db: new Kysely({ dialect: new PostgresDialect({ pool }) }), displayUrl };
  }
  const mysql = await import('mysql2');
  const u = new URL(opts.url);
  const pool = mysql.createPool({
    host: u.hostname,
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.replace(/^\//, ''),
    connectionLimit: opts.poolSize,
    connectTimeout: opts.timeoutMs,
    supportBigNumbers: true,
    bigNumberStrings: false,
    timezone: 'Z',
    enableKeepAlive: true,
  });
  pool.on('connection', (conn) => {
    // Guards are current reads (UPDATE … WHERE, FOR UPDATE) under any level; READ COMMITTED
    // takes no gap locks, so concurrent claims for new users do not deadlock on them.
    conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    conn.on('error', (err: Error) => opts.onPoolError?.(err));
  });
  return { dialect, family: 'mysql', db: new Kysely({ dialect: new MysqlDialect({ pool }) }), displayUrl };
}

function pglitePath(url: string): string | null {
  if (url.startsWith('memory:')) return null;
  const rest = url.replace(/^(pglite|file):(\/\/)?/, '');
  return rest === '' || rest === 'memory' ? null : rest;
}
