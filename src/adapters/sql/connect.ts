// Opens the system of record named by a URL: postgres://, mysql:// (MariaDB/MySQL), or PGlite
// (pglite:// + a data dir, a bare directory path, or memory:// for a throwaway in-memory
// database).
import { constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CompiledQuery, Kysely, MysqlDialect, PostgresDialect, type DatabaseConnection } from 'kysely';
import { spawn } from 'node:child_process';
import { AllotError } from '../../core/errors.ts';
import { childModule } from '../system/child-module.ts';
import { lockDataDir } from './dir-lock.ts';
import { PgliteDialect } from './pglite-dialect.ts';
import { SqlStats } from './sql-stats.ts';

export type DialectName = 'pglite' | 'postgres' | 'mysql';
/** Dialect family: the SQL text is shared by pglite and postgres. */
export type SqlFamily = 'pg' | 'mysql';

/** Session isolation levels a caller may ask for (the race lab uses repeatable read; the
 * contract suite also runs PostgreSQL at serializable, whose 40001 failures are retried). */
export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';
const ISOLATION_LEVELS: readonly IsolationLevel[] = ['read committed', 'repeatable read', 'serializable'];

/** How long a session may sit idle inside an open transaction before the server ends it. */
export const DEFAULT_IDLE_TX_TIMEOUT_MS = 2_000;
/** PostgreSQL: how much longer than the server's statement_timeout the client waits for an
 * answer. The server's cancel (57014) is a definite "rolled back"; the client giving up first
 * only knows it heard nothing, which for a statement that commits on its own (a one-statement
 * batch, a COMMIT) means "outcome unknown". With both equal the client always fired first. */
export const PG_CLIENT_TIMEOUT_MARGIN_MS = 1_000;

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
  /** PGlite in a directory: where a freshly initialised database is kept as a template, so
   * that a new data dir is a file copy (a fraction of a second) rather than a run of initdb
   * (about 3 s). Default: defaultPgliteCacheDir(); null: keep none. */
  pgliteCacheDir?: string | null;
  /** PGlite in a new directory: the schema it should start with, from a template migrated once
   * (the caller still migrates; the migrations then find nothing to do). */
  pgliteSchema?: PgliteSchema;
  /** PGlite in a new directory, when the template is not there yet: build it now (default; the
   * first new data dir on a machine then takes a few seconds more), or 'later': initialise this
   * data dir in place, the fastest for this one start, and leave the template to be built by
   * buildPgliteTemplatesInBackground (as `allot serve` does once it listens). */
  pgliteBuildTemplate?: 'now' | 'later';
}

export interface SqlConnection {
  dialect: DialectName;
  family: SqlFamily;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: Kysely<any>;
  /** A URL safe to print: the password masked. */
  displayUrl: string;
  /** PGlite: its data dir (null in memory) and how the database was found: 'existing'; or new,
   * 'template' (copied from the cached template) or 'initdb' (initialised in place). */
  pglite?: { dir: string | null; opened: PgliteOpened; template?: string; cacheDir: string | null };
  /** Pool use and statement timings (for /metrics and the dashboard). */
  stats?: SqlStats;
}

/** How a PGlite data dir was found: there already ('existing'); or new, made by moving a spare
 * copy of the template into place ('spare'), by copying the template ('template') or by initdb
 * ('initdb', when there is no template cache). */
export type PgliteOpened = 'existing' | 'spare' | 'template' | 'initdb';

const ACCEPTED_URLS = 'postgres://, mysql://, mariadb://, pglite://DIR (or a directory path) or memory://';

export function dialectOf(url: string): DialectName {
  if (url.trim() === '') throw new Error(`the database URL is empty; use ${ACCEPTED_URLS}`);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  // No scheme (or a one-letter one: a Windows drive): a directory path of embedded PGlite.
  if (!m || m[1]!.length === 1) return 'pglite';
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') return 'postgres';
  if (scheme === 'mysql' || scheme === 'mariadb') return 'mysql';
  if (scheme === 'pglite' || scheme === 'memory' || scheme === 'file') return 'pglite';
  throw new Error(`unsupported database URL scheme "${m[1]}:"; use ${ACCEPTED_URLS}`);
}

/** "pglite, /data/pgdata", "pglite, in memory", "postgres, postgres://u:***@db/allot": which
 * database a URL names, safe to print. */
export function describeDatabase(url: string): string {
  const dialect = dialectOf(url);
  if (dialect !== 'pglite') return `${dialect}, ${maskUrl(url)}`;
  const path = pglitePath(url);
  return `pglite, ${path ?? 'in memory'}`;
}

export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    // Not a WHATWG URL (a multi-host LOCKS_URL such as redlock://a:6379,b:6379): mask the
    // userinfo's password and password parameters textually.
    return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/?#]*:)[^@/?#]*@/i, '$1***@').replace(/([?&](?:sentinelPassword|password)=)[^&#]*/gi, '$1***');
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
    let opened: PgliteOpened = 'existing';
    let template: string | null = null;
    const cacheDir = opts.pgliteCacheDir === undefined ? defaultPgliteCacheDir() : opts.pgliteCacheDir;
    if (path !== null) {
      mkdirSync(path, { recursive: true });
      try {
        release = lockDataDir(path);
      } catch (err) {
        // Another process has it open: the database is unavailable to this one.
        throw new AllotError('UNAVAILABLE', (err as Error).message, { backend: 'database' }, { cause: err });
      }
    }
    try {
      if (path !== null && !existsSync(join(path, 'PG_VERSION'))) {
        template = opts.pgliteBuildTemplate === 'later'
          ? existingTemplate(cacheDir, opts.pgliteSchema)
          : await pgliteTemplate(PGlite, cacheDir, opts.pgliteSchema);
        opened = template === null ? 'initdb' : (await newDataDir(template, path));
      }
      const pg = await PGlite.create(path ?? 'memory://');
      const stats = new SqlStats(1, () => 1);
      return { dialect, family: 'pg', db: new Kysely({ dialect: stats.observe(new PgliteDialect(pg, release)), log: stats.log }), displayUrl, stats, pglite: { dir: path, opened, cacheDir, ...(template !== null ? { template } : {}) } };
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
      // The server cancels at timeoutMs; the client waits a margin more to hear it (a server
      // that cannot answer at all is still given up on, a second later).
      query_timeout: opts.timeoutMs + PG_CLIENT_TIMEOUT_MARGIN_MS,
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
    const stats = new SqlStats(opts.poolSize, () => pool.totalCount);
    return { dialect, family: 'pg', db: new Kysely({ dialect: stats.observe(new PostgresDialect({ pool })), log: stats.log }), displayUrl, stats };
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
  // mysql2 keeps its open connections in a private list; without it the count is those in use.
  const stats = new SqlStats(opts.poolSize, () => (pool as unknown as { _allConnections?: { length: number } })._allConnections?.length);
  return { dialect, family: 'mysql', db: new Kysely({ dialect: stats.observe(new MysqlDialect({ pool, onCreateConnection })), log: stats.log }), displayUrl, stats };
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
  if (/^memory:/i.test(url)) return null;
  const rest = url.replace(/^(pglite|file):(\/\/)?/i, '');
  return rest === '' || rest === 'memory' ? null : rest;
}

// ---- the PGlite template -------------------------------------------------------------------
// initdb is most of a new embedded database's cost (about 3 s of wasm on one core), and the
// first migrations on a cold wasm another half second. A cluster that PGlite shut down cleanly
// is an ordinary PostgreSQL data dir: a file copy of it is as good as a new initdb (copies
// share the system identifier, which matters only for replication). So the first new data dir
// on a machine builds templates in the cache dir, and every later one is a copy:
//   pglite-<version>/                 initdb's cluster, nothing else;
//   pglite-<version>-schema-<key>/    the same, migrated (built on request: pgliteSchema), so a
//                                     new data dir starts with its schema up to date.
// Templates are keyed by PGlite's version (the data dir format is PGlite's) and the schema's
// key (a hash of the migrations' statements); they hold no data of anyone's.

/** $ALLOT_CACHE_DIR, else $XDG_CACHE_HOME/allot, else ~/.cache/allot; null when it is off. */
export function defaultPgliteCacheDir(env: Record<string, string | undefined> = process.env): string | null {
  const configured = env.ALLOT_CACHE_DIR;
  if (configured !== undefined && configured !== '') return /^(off|none|0)$/i.test(configured) ? null : configured;
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'allot');
}

/** A schema for new embedded databases to start with (their template is built with it). */
export interface PgliteSchema {
  /** names the schema: a new key is a new template (a hash of the migrations, say) */
  key: string;
  /** brings a new database to the schema (runs the migrations) */
  setup(conn: SqlConnection): Promise<void>;
}

let pgliteVersionCache: string | undefined;
function pgliteVersion(): string {
  if (pgliteVersionCache === undefined) {
    // dist/index.js -> ../package.json (the package's exports do not expose package.json).
    const main = fileURLToPath(import.meta.resolve('@electric-sql/pglite'));
    const pkg = JSON.parse(readFileSync(join(dirname(main), '..', 'package.json'), 'utf8')) as { version?: unknown };
    pgliteVersionCache = typeof pkg.version === 'string' && /^[0-9A-Za-z.+-]{1,64}$/.test(pkg.version) ? pkg.version : 'unknown';
  }
  return pgliteVersionCache;
}

type PGliteClass = typeof import('@electric-sql/pglite').PGlite;

/** Builds the templates of new embedded databases in `cacheDir` when they are missing (about
 * 3 s, once per machine, PGlite version and schema), so that even the first new data dir starts
 * fast; returns the path of the one to copy, or null when there is no cache dir or it cannot be
 * written. */
export async function ensurePgliteTemplate(cacheDir: string | null = defaultPgliteCacheDir(), schema?: PgliteSchema): Promise<string | null> {
  const { PGlite } = await import('@electric-sql/pglite');
  return pgliteTemplate(PGlite, cacheDir, schema);
}

/** The template to copy (the schema's when asked and it can be built, else initdb's), built
 * when missing; null when there is no cache dir or it cannot be written (the caller then lets
 * PGlite run initdb in place). */
async function pgliteTemplate(PGlite: PGliteClass, cacheDir: string | null, schema?: PgliteSchema): Promise<string | null> {
  if (cacheDir === null) return null;
  const baseName = `pglite-${pgliteVersion()}`;
  const initdb = async (dir: string) => {
    const pg = await PGlite.create(dir);
    await pg.close();
  };
  if (schema === undefined) return buildTemplate(cacheDir, baseName, initdb);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(schema.key)) throw new Error(`invalid PGlite schema key "${schema.key}"`);
  const migrated = await buildTemplate(cacheDir, `${baseName}-schema-${schema.key}`, async (dir) => {
    // From initdb's template when there is one (a new schema version), else initdb right here
    // (the first start on a machine: no second template to build and copy first).
    const base = join(cacheDir, baseName);
    if (existsSync(join(base, 'PG_VERSION'))) await copyDataDir(base, dir);
    const pg = await PGlite.create(dir);
    const db = new Kysely({ dialect: new PgliteDialect(pg) });
    try {
      await schema.setup({ dialect: 'pglite', family: 'pg', db, displayUrl: `pglite://${dir}` });
    } finally {
      await db.destroy();
      if (!pg.closed) await pg.close();
    }
  });
  return migrated ?? buildTemplate(cacheDir, baseName, initdb);
}

/** The template pgliteTemplate would return, when it is there already. */
function existingTemplate(cacheDir: string | null, schema?: PgliteSchema): string | null {
  if (cacheDir === null) return null;
  const name = `pglite-${pgliteVersion()}${schema ? `-schema-${schema.key}` : ''}`;
  return existsSync(join(cacheDir, name, 'PG_VERSION')) ? join(cacheDir, name) : null;
}

/** `cacheDir/name`, made by `make` in a temp dir and renamed into place when missing (atomic: a
 * template is whole or absent; another process that built it at the same time may have won,
 * then ours is dropped). Null when it cannot be made. */
async function buildTemplate(cacheDir: string, name: string, make: (dir: string) => Promise<void>): Promise<string | null> {
  const dir = join(cacheDir, name);
  if (existsSync(join(dir, 'PG_VERSION'))) return dir;
  let tmp: string | null = null;
  try {
    mkdirSync(cacheDir, { recursive: true });
    tmp = mkdtempSync(join(cacheDir, `.${name}-`));
    await make(tmp);
    try {
      renameSync(tmp, dir);
      tmp = null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
    return existsSync(join(dir, 'PG_VERSION')) ? dir : null;
  } catch {
    return null;
  } finally {
    if (tmp !== null) rmSync(tmp, { recursive: true, force: true });
  }
}

// Creating a file costs about a millisecond on some disks (a journal shared with busy
// databases, a VM), so copying a template's thousand files can take a second. A spare copy,
// prepared in the background beside the template (preparePgliteSpare, after `allot serve` is
// up), makes the next new data dir a few renames instead: the spare is claimed by one rename
// (two processes never get the same one), then its top-level entries are moved into the data
// dir. Across file systems (EXDEV) or on any failure, the template is copied instead.

const spareName = (template: string) => `spare-${basename(template)}-`;

/** Makes the data dir `path` from `template`: a spare moved into place, else a copy. */
async function newDataDir(template: string, path: string): Promise<'spare' | 'template'> {
  // A directory that holds other files is not taken for an empty one (DATABASE_URL=. , say);
  // files of the template are what a copy cut short left.
  const known = new Set(readdirSync(template));
  const foreign = readdirSync(path).filter((e) => e !== 'allot.lock' && !known.has(e));
  if (foreign.length > 0) {
    throw new Error(`${path} holds files but no database (no PG_VERSION; ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}): point the embedded database at an empty or new directory`);
  }
  const cacheDir = dirname(template);
  let claimed: string | null = null;
  try {
    for (const entry of readdirSync(cacheDir)) {
      if (!entry.startsWith(spareName(template))) continue;
      const mine = join(cacheDir, `.taken-${process.pid}-${randomBytes(4).toString('hex')}`);
      try {
        renameSync(join(cacheDir, entry), mine);
        claimed = mine;
        break;
      } catch {
        // taken by another process meanwhile: try the next
      }
    }
    if (claimed !== null) {
      for (const e of readdirSync(claimed)) if (e !== 'PG_VERSION') renameSync(join(claimed, e), join(path, e));
      renameSync(join(claimed, 'PG_VERSION'), join(path, 'PG_VERSION'));
      return 'spare';
    }
  } catch {
    // another file system, or a spare half moved: the copy below overwrites what is there
  } finally {
    if (claimed !== null) rmSync(claimed, { recursive: true, force: true });
  }
  await copyDataDir(template, path);
  return 'template';
}

/** Prepares a spare copy of `template` (the path in SqlConnection.pglite.template) when there
 * is none, so that the next new data dir is moved into place rather than copied. Runs on the
 * thread pool; `signal` stops it between files (a partial spare is removed). */
export async function preparePgliteSpare(template: string, signal?: AbortSignal): Promise<void> {
  const cacheDir = dirname(template);
  const entries = readdirSync(cacheDir);
  // Leftovers of processes that died while building a template or preparing or moving a spare
  // (temp dirs an hour old), and spares of other templates (another PGlite version or schema)
  // unused for a day.
  for (const e of entries) {
    const age = e.startsWith('.') ? 3_600_000 : e.startsWith('spare-') && !e.startsWith(spareName(template)) ? 86_400_000 : null;
    if (age === null) continue;
    const dir = join(cacheDir, e);
    try {
      if (Date.now() - statSync(dir).mtimeMs > age) rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone meanwhile
    }
  }
  if (entries.some((e) => e.startsWith(spareName(template)))) return;
  const tmp = join(cacheDir, `.spare-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await copyDataDir(template, tmp, signal);
    renameSync(tmp, join(cacheDir, `${spareName(template)}${randomBytes(4).toString('hex')}`));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Starts a process that builds the templates (the service's schema) and a spare copy in
 * `cacheDir` (pglite-template-main); resolves when it ends. `signal` kills it. */
export function buildPgliteTemplatesInBackground(cacheDir: string, signal?: AbortSignal): Promise<void> {
  const m = childModule(import.meta.url, './pglite-template-main');
  const child = spawn(process.execPath, [...m.execArgv, m.path, cacheDir], { stdio: 'ignore' });
  const kill = () => child.kill();
  signal?.addEventListener('abort', kill, { once: true });
  return new Promise((resolve) => {
    child.once('error', () => resolve());
    child.once('exit', () => {
      signal?.removeEventListener('abort', kill);
      resolve();
    });
  });
}

/** Copies a template data dir into `to`, PG_VERSION last: a copy cut short is not taken for a
 * database (the next start copies again). The files (about a thousand, most of them small) are
 * copied several at a time on libuv's thread pool, so the copy overlaps the JavaScript the
 * process runs meanwhile (`allot serve` loads its HTTP app). */
async function copyDataDir(from: string, to: string, signal?: AbortSignal): Promise<void> {
  const files: Array<[string, string]> = [];
  const walk = (src: string, dst: string, top: boolean) => {
    mkdirSync(dst, { recursive: true, mode: 0o700 });
    for (const e of readdirSync(src, { withFileTypes: true })) {
      if (top && (e.name === 'PG_VERSION' || e.name === 'postmaster.pid' || e.name === 'allot.lock')) continue;
      if (e.isDirectory()) walk(join(src, e.name), join(dst, e.name), false);
      else if (e.isFile()) files.push([join(src, e.name), join(dst, e.name)]);
    }
  };
  walk(from, to, true);
  let next = 0;
  // Every worker settles before an error is thrown, so nothing writes into `to` after it.
  const results = await Promise.allSettled(Array.from({ length: 8 }, async () => {
    while (next < files.length) {
      signal?.throwIfAborted();
      const [src, dst] = files[next++]!;
      await copyFile(src, dst, constants.COPYFILE_FICLONE);
    }
  }));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  await copyFile(join(from, 'PG_VERSION'), join(to, 'PG_VERSION'));
}
