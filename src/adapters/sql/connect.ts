// Opens the system of record named by a URL: postgres://, mysql:// (MariaDB/MySQL), or PGlite
// (pglite:// + a data dir, or memory:// for a throwaway in-memory database).
import { mkdirSync } from 'node:fs';
import { CompiledQuery, Kysely, MysqlDialect, PostgresDialect, type DatabaseConnection } from 'kysely';
import { lockDataDir } from './dir-lock.ts';
import { PgliteDialect } from './pglite-dialect.ts';

export type DialectName = 'pglite' | 'postgres' | 'mysql';
/** Dialect family: the SQL text is shared by pglite and postgres. */
export type SqlFamily = 'pg' | 'mysql';

/** Session isolation levels a caller may ask for (the race lab uses repeatable read; the
 * contract suite also runs PostgreSQL at serializable, whose 40001 failures are retried). */
export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';
const ISOLATION_LEVELS: readonly IsolationLevel[] = ['read committed', 'repeatable read', 'serializable'];

/** How long a session may sit idle inside an open transaction before the server ends it. */
export const DEFAULT_IDLE_TX_TIMEOUT_MS = 2_000;

export interface SqlConnectOptions {
  url: string;
  poolSize: number;
  /** Connect and statement timeout for server databases, in ms. It also bounds row-lock waits
   * (PostgreSQL statement_timeout; MariaDB max_statement_time and innodb_lock_wait_timeout,
   * rounded up to whole seconds; MySQL 8 max_execution_time and innodb_lock_wait_timeout). */
  timeoutMs: number;
  /** Isolation level of every session on a server database. MySQL/MariaDB: default
   * 'read committed' (no gap locks). PostgreSQL: default the server's (read committed unless
   * configured otherwise). Ignored by PGlite. */
  isolation?: IsolationLevel;
  /** A session idle inside an open transaction for longer than this (a frozen or stalled
   * instance) is ended by the server, which rolls the transaction back and releases its locks
   * (PostgreSQL idle_in_transaction_session_timeout; MariaDB idle_transaction_timeout, rounded
   * up to whole seconds; MySQL 8 has no such setting). 0 leaves the server's setting. Ignored by
   * PGlite. Default DEFAULT_IDLE_TX_TIMEOUT_MS. */
  idleTxTimeoutMs?: number;
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
  checkSessionOptions(opts);
  const idleTxTimeoutMs = opts.idleTxTimeoutMs ?? DEFAULT_IDLE_TX_TIMEOUT_MS;
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
      // Session settings travel as startup parameters: a connection either starts with them or
      // fails to connect (then the pool reports it to the query that asked), never half set up.
      connectionString: withPgOptions(opts.url, opts.isolation ? [`-c default_transaction_isolation=${opts.isolation.replace(' ', '\\ ')}`] : []),
      max: opts.poolSize,
      connectionTimeoutMillis: opts.timeoutMs,
      query_timeout: opts.timeoutMs,
      statement_timeout: opts.timeoutMs,
      // The server ends a session left idle in a transaction (its process frozen, say), which
      // rolls it back and frees its row locks. 0 (not sent) keeps the server's setting.
      idle_in_transaction_session_timeout: idleTxTimeoutMs > 0 ? idleTxTimeoutMs : undefined,
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
  // Raw connections by thread id: a connection whose session setup failed is destroyed, since
  // Kysely keeps it checked out forever (and would not set it up again).
  const rawById = new Map<number, { destroy(): void }>();
  pool.on('connection', (conn) => {
    conn.on('error', (err: Error) => opts.onPoolError?.(err));
    const id = conn.threadId;
    rawById.set(id, conn);
    conn.once('end', () => rawById.delete(id));
  });
  const setUp = mysqlSessionSetup({ timeoutMs: opts.timeoutMs, idleTxTimeoutMs, isolation: opts.isolation ?? 'read committed' });
  const onCreateConnection = async (connection: DatabaseConnection): Promise<void> => {
    try {
      await setUp(connection);
    } catch (err) {
      const r = await connection.executeQuery<{ id: unknown }>(CompiledQuery.raw('SELECT CONNECTION_ID() AS id')).catch(() => null);
      // A broken connection has left the pool by itself; a healthy one is closed here.
      const id = Number(r?.rows[0]?.id);
      rawById.get(id)?.destroy();
      rawById.delete(id);
      throw err;
    }
  };
  return { dialect, family: 'mysql', db: new Kysely({ dialect: new MysqlDialect({ pool, onCreateConnection }) }), displayUrl };
}

/**
 * The statements that set up each new MySQL/MariaDB session, awaited before its first query
 * (Kysely's onCreateConnection): a failure fails that query instead of going unnoticed.
 * - Isolation: guards are current reads (UPDATE … WHERE, FOR UPDATE) under any level; READ
 *   COMMITTED takes no gap locks, so concurrent claims for new users do not deadlock on them.
 * - MariaDB: max_statement_time (s), innodb_lock_wait_timeout (whole s, >= 1; 50 by default,
 *   far past an idempotency lease) and idle_transaction_timeout (whole s).
 * - MySQL 8 knows neither max_statement_time nor idle_transaction_timeout (error 1193):
 *   max_execution_time (ms; SELECTs only) and innodb_lock_wait_timeout instead, and no
 *   idle-transaction timeout (a frozen instance holds its locks until its connection drops).
 */
export function mysqlSessionSetup(opts: { timeoutMs: number; idleTxTimeoutMs: number; isolation: IsolationLevel }): (connection: DatabaseConnection) => Promise<void> {
  const run = (connection: DatabaseConnection, text: string) => connection.executeQuery(CompiledQuery.raw(text));
  const lockWaitS = Math.max(1, Math.ceil(opts.timeoutMs / 1000));
  const mariadb: string[] = [];
  const mysql: string[] = [];
  if (opts.timeoutMs > 0) {
    mariadb.push(`max_statement_time = ${(opts.timeoutMs / 1000).toFixed(3)}`, `innodb_lock_wait_timeout = ${lockWaitS}`);
    mysql.push(`max_execution_time = ${Math.ceil(opts.timeoutMs)}`, `innodb_lock_wait_timeout = ${lockWaitS}`);
  }
  if (opts.idleTxTimeoutMs > 0) mariadb.push(`idle_transaction_timeout = ${Math.max(1, Math.ceil(opts.idleTxTimeoutMs / 1000))}`);
  return async (connection) => {
    await run(connection, `SET SESSION TRANSACTION ISOLATION LEVEL ${opts.isolation.toUpperCase()}`);
    if (mariadb.length === 0) return;
    try {
      await run(connection, `SET SESSION ${mariadb.join(', ')}`);
    } catch (err) {
      const e = err as { errno?: unknown; message?: unknown };
      // 1193 unknown system variable: the first MariaDB-only one named is the culprit.
      if (e.errno !== 1193 || !/max_statement_time|idle_transaction_timeout/.test(String(e.message))) throw err;
      if (mysql.length > 0) await run(connection, `SET SESSION ${mysql.join(', ')}`);
    }
  };
}

function checkSessionOptions(opts: SqlConnectOptions): void {
  if (opts.isolation !== undefined && !ISOLATION_LEVELS.includes(opts.isolation)) {
    throw new Error(`unsupported isolation level "${String(opts.isolation)}" (use ${ISOLATION_LEVELS.join(' or ')})`);
  }
  for (const [name, v] of [['timeoutMs', opts.timeoutMs], ['idleTxTimeoutMs', opts.idleTxTimeoutMs]] as const) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new Error(`${name} must be a number of ms >= 0, not ${String(v)}`);
  }
}

/** Adds PostgreSQL startup options (`-c name=value`) to those the URL may already carry: the
 * URL's own `options` would otherwise replace any passed beside it. */
function withPgOptions(url: string, extra: string[]): string {
  if (extra.length === 0) return url;
  const u = new URL(url);
  u.searchParams.set('options', [u.searchParams.get('options'), ...extra].filter(Boolean).join(' '));
  return u.toString();
}

function pglitePath(url: string): string | null {
  if (url.startsWith('memory:')) return null;
  const rest = url.replace(/^(pglite|file):(\/\/)?/, '');
  return rest === '' || rest === 'memory' ? null : rest;
}
