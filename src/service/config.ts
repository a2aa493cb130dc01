// Configuration from the environment (and CLI flags on top), validated at start-up: every
// problem is reported at once, each as one line that says what to do.
import { resolve } from 'node:path';
import { defaultPgliteCacheDir, dialectOf } from '../adapters/sql/connect.ts';
import { DEFAULT_STRATEGY, strategyNames } from '../strategies/index.ts';
import { REDIS_LOCK_STRATEGY } from '../strategies/redis-lock.ts';

/** LOCKS_URL schemes (src/service/locks.ts serves each from src/service/lock-backends/). */
export const LOCK_URL_SCHEMES = ['redis', 'rediss', 'redis-sentinel', 'rediss-sentinel', 'redis-cluster', 'rediss-cluster', 'redlock', 'etcd', 'etcds', 'postgres', 'postgresql'] as const;

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** The system of record; undefined means embedded PGlite in dataDir. */
  databaseUrl: string;
  dbPoolSize: number;
  dbTimeoutMs: number;
  /** A database session idle inside a transaction longer than this is ended by the server. */
  dbIdleTxTimeoutMs: number;
  /** The lock backend (LOCKS_URL, else REDIS_URL): redis://, rediss://, redis-sentinel://,
   * redis-cluster://, redlock://, etcd://, postgres://. Undefined: chosen by the database (in-process
   * on PGlite, advisory locks on PostgreSQL, none on MariaDB). */
  locksUrl: string | undefined;
  /** What lock-based strategies do while the lock backend is down: run with the database guard
   * only (degrade) or answer 503 at once (refuse). */
  locksDown: 'degrade' | 'refuse';
  lockPrefix: string;
  adminToken: string | undefined;
  metricsToken: string | undefined;
  defaultStrategy: string;
  allowUnsafeStrategies: boolean;
  logLevel: string;
  shutdownTimeoutMs: number;
  bodyLimitBytes: number;
  /** HTTP server limits (docs/operations.md, "HTTP limits"); defaults as in src/http/limits.ts. */
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  httpKeepAliveTimeoutMs: number;
  httpMaxConnections: number;
  httpCheckIntervalMs: number;
  /** The payment rail of transfer orders (HTTP protocol of docs/payouts.md); undefined means
   * the in-process simulated rail. */
  railUrl: string | undefined;
  railTimeoutMs: number;
  /** Idempotency keys older than this are purged (at least 24 h, the API's promise). */
  keyRetentionMs: number;
  /** How often the service purges expired idempotency keys (one instance at a time); 0: never. */
  keyPurgeIntervalMs: number;
  /** Where the template of a new embedded database is kept; null: keep none. */
  cacheDir: string | null;
  /** When the redis-atomic strategy answers 201: after the SQL commit (durable) or after Redis (fast). */
  redisAtomicMode: 'durable' | 'fast';
  /** redis-atomic fast mode: most claims answered and not yet in SQL per instance; beyond, a claim waits for room. */
  redisAtomicWriteBehindMax: number;
  /** group-commit: every batch as a transaction of one statement per step instead of one round
   * trip (PostgreSQL: one statement; MariaDB ≥ 10.6: one compound statement). */
  groupCommitTransactional: boolean;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** The documented settings: name, default and meaning (README's table is checked against it). */
export const SETTINGS = [
  ['PORT', '3000', 'HTTP port'],
  ['HOST', '127.0.0.1', 'interface to listen on (0.0.0.0 for all)'],
  ['ALLOT_DATA_DIR', './.allot', 'embedded database and the generated admin token'],
  ['DATABASE_URL', '(embedded PGlite in ALLOT_DATA_DIR)', 'postgres://…, mysql://… or mariadb://… (MariaDB/MySQL), pglite://DIR (or a directory path) or memory://'],
  ['DB_POOL_SIZE', '10', 'connections per instance to a server database'],
  ['DB_TIMEOUT_MS', '5000', 'connect and statement timeout for a server database'],
  ['DB_IDLE_TX_TIMEOUT_MS', '2000', 'a server database session idle inside a transaction this long (a frozen instance) is ended, its locks released'],
  ['REDIS_URL', '(none)', 'Redis for distributed locks (the redis-lock strategy) when LOCKS_URL is not set'],
  ['ALLOT_REDIS_ATOMIC_MODE', 'durable', 'when the redis-atomic strategy answers 201: durable (after the SQL commit) or fast (after Redis; the claim reaches SQL behind the answer: docs/strategies.md states when one can be lost)'],
  ['ALLOT_GROUP_COMMIT_TRANSACTIONAL', '0', 'group-commit commits a batch in one round trip (PostgreSQL: one statement; MariaDB 10.6+: one compound statement that keeps its members in a session temporary table); 1: as a transaction of one statement per step (six round trips on PostgreSQL, eleven on MariaDB), e.g. behind a proxy that shares server sessions between clients (docs/strategies.md)'],
  ['ALLOT_REDIS_ATOMIC_WRITE_BEHIND_MAX', '2000', 'redis-atomic fast mode: most claims of one instance answered 201 and not yet written to SQL; beyond it a claim waits for room (bounds memory and what a crash can lose)'],
  ['LOCKS_URL', '(REDIS_URL; else in-process on PGlite, advisory locks on PostgreSQL, none on MariaDB)', 'the lock backend of the redis-lock strategy: redis://, rediss://, redis-sentinel:// (rediss-sentinel://), redis-cluster:// (rediss-cluster://), redlock://, etcd:// (etcds://) or postgres:// (docs/locks.md)'],
  ['LOCKS_DOWN', 'degrade', 'while the lock backend is down, lock-based strategies run with the database guard only (degrade: still exactly-once) or answer 503 at once (refuse); /readyz answers 200 "degraded" or 503'],
  ['ALLOT_LOCK_PREFIX', 'allot:lock:', 'key prefix of lock keys in Redis (and name of the fence epoch sequence)'],
  ['ALLOT_ADMIN_TOKEN', '(generated at first start)', 'bearer token for /v1'],
  ['ALLOT_METRICS_TOKEN', '(none: /metrics is open)', 'bearer token required by /metrics'],
  ['ALLOT_DEFAULT_STRATEGY', DEFAULT_STRATEGY, `claim strategy of campaigns that name none (${strategyNames({ unsafe: false }).join(', ')})`],
  ['ALLOT_ALLOW_UNSAFE_STRATEGIES', '0', 'allow the race lab\'s demo strategies that can oversell (naive, local-mutex); `serve --allow-unsafe-strategies`'],
  ['LOG_LEVEL', 'info', 'fatal, error, warn, info, debug, trace or silent'],
  ['ALLOT_SHUTDOWN_TIMEOUT_MS', '10000', 'how long SIGTERM waits for in-flight requests'],
  ['ALLOT_BODY_LIMIT_BYTES', '65536', 'largest accepted request body'],
  ['ALLOT_HTTP_HEADERS_TIMEOUT_MS', '10000', 'a client must send its request line and headers within this long, else 408 and the connection is closed'],
  ['ALLOT_HTTP_REQUEST_TIMEOUT_MS', '30000', 'a client must send its whole request, body included, within this long (at least the headers timeout)'],
  ['ALLOT_HTTP_KEEP_ALIVE_TIMEOUT_MS', '5000', 'an idle keep-alive connection is closed after this long; behind a load balancer, set it above the balancer\'s idle timeout'],
  ['ALLOT_HTTP_MAX_CONNECTIONS', '10000', 'connections held at once; more are closed as soon as they are accepted'],
  ['ALLOT_HTTP_CHECK_INTERVAL_MS', '1000', 'how often the headers and request timeouts are checked (they fire up to this much late)'],
  ['ALLOT_RAIL_URL', '(none: in-process simulated rail)', 'payment rail of transfer orders, http(s)://… speaking the rail protocol of docs/payouts.md'],
  ['ALLOT_RAIL_TIMEOUT_MS', '10000', 'a rail call unanswered this long leaves its order `unknown`, for a person to resolve'],
  ['ALLOT_KEY_RETENTION_MS', '604800000', 'idempotency keys are kept this long (7 days; at least 86400000, the API\'s 24 h promise), then purged'],
  ['ALLOT_KEY_PURGE_INTERVAL_MS', '600000', 'how often `allot serve` purges idempotency keys past their retention, one instance at a time (0: never; then run `allot keys purge`)'],
  ['ALLOT_CACHE_DIR', '($XDG_CACHE_HOME or ~/.cache)/allot', 'a new embedded database starts as a copy of a template kept here (under 1 s instead of about 3 s of initdb); `off` keeps none'],
] as const;

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const resolvedOrNull = (dir: string | null): string | null => (dir === null ? null : resolve(dir));

export function loadConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<Record<string, string>> = {}): Config {
  const get = (name: string): string | undefined => {
    const v = overrides[name] ?? env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const problems: string[] = [];
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return def;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name}=${raw} is not a whole number from ${min} to ${max}`);
      return def;
    }
    return Number(raw);
  };
  const bool = (name: string): boolean => {
    const raw = get(name);
    if (raw === undefined) return false;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    problems.push(`${name}=${raw} must be 1/true/yes/on or 0/false/no/off`);
    return false;
  };

  const dataDir = resolve(get('ALLOT_DATA_DIR') ?? './.allot');
  const databaseUrl = get('DATABASE_URL') ?? `pglite://${resolve(dataDir, 'pgdata')}`;
  try {
    dialectOf(databaseUrl);
  } catch (err) {
    problems.push(`DATABASE_URL: ${(err as Error).message}`);
  }
  const defaultStrategy = get('ALLOT_DEFAULT_STRATEGY') ?? DEFAULT_STRATEGY;
  const allowUnsafeStrategies = bool('ALLOT_ALLOW_UNSAFE_STRATEGIES');
  if (!strategyNames({ unsafe: allowUnsafeStrategies }).includes(defaultStrategy)) {
    const unsafe = strategyNames().includes(defaultStrategy) ? ' (it can oversell: allowed only with ALLOT_ALLOW_UNSAFE_STRATEGIES=1, for the race lab)' : '';
    problems.push(`ALLOT_DEFAULT_STRATEGY=${defaultStrategy} is not a strategy this server allows${unsafe}; choose one of ${strategyNames({ unsafe: false }).join(', ')}`);
  }
  const logLevel = get('LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) problems.push(`LOG_LEVEL=${logLevel} is not one of ${[...LOG_LEVELS].join(', ')}`);
  const adminToken = get('ALLOT_ADMIN_TOKEN');
  if (adminToken !== undefined && adminToken.length < 16) problems.push('ALLOT_ADMIN_TOKEN must be at least 16 characters');
  const metricsToken = get('ALLOT_METRICS_TOKEN');
  const locksUrl = get('LOCKS_URL') ?? get('REDIS_URL');
  const locksVar = get('LOCKS_URL') ? 'LOCKS_URL' : 'REDIS_URL';
  const scheme = locksUrl === undefined ? undefined : /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(locksUrl)?.[1]?.toLowerCase();
  if (locksUrl !== undefined && locksVar === 'REDIS_URL' && scheme !== 'redis' && scheme !== 'rediss') {
    problems.push(`REDIS_URL=${locksUrl} must be a redis:// or rediss:// URL (another lock backend is named by LOCKS_URL)`);
  } else if (locksUrl !== undefined && !(LOCK_URL_SCHEMES as readonly string[]).includes(scheme ?? '')) {
    problems.push(`LOCKS_URL=${locksUrl} is not a lock backend URL: use one of ${LOCK_URL_SCHEMES.map((s) => `${s}://`).join(', ')} (docs/locks.md has an example of each)`);
  }
  const locksDown = get('LOCKS_DOWN') ?? 'degrade';
  if (locksDown !== 'degrade' && locksDown !== 'refuse') problems.push(`LOCKS_DOWN=${locksDown} must be degrade (lock-based strategies run with the database guard only while the lock backend is down) or refuse (they answer 503 at once)`);
  const lockPrefix = get('ALLOT_LOCK_PREFIX') ?? 'allot:lock:';
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(lockPrefix)) problems.push('ALLOT_LOCK_PREFIX must be 1-64 characters from [A-Za-z0-9_.:-]');

  if (defaultStrategy === REDIS_LOCK_STRATEGY && locksUrl === undefined && /^(mysql|mariadb):/i.test(databaseUrl)) {
    problems.push(`ALLOT_DEFAULT_STRATEGY=${REDIS_LOCK_STRATEGY} needs a lock backend shared by every instance, and MariaDB/MySQL has none allot can use: set LOCKS_URL (e.g. redis://host:6379), or choose another strategy`);
  }

  const redisAtomicMode = get('ALLOT_REDIS_ATOMIC_MODE') ?? 'durable';
  if (redisAtomicMode !== 'durable' && redisAtomicMode !== 'fast') problems.push(`ALLOT_REDIS_ATOMIC_MODE=${redisAtomicMode} must be durable (201 after the SQL commit) or fast (201 after Redis; docs/strategies.md)`);
  const railUrl = get('ALLOT_RAIL_URL');
  if (railUrl !== undefined && !/^https?:\/\/[^/\s]+/.test(railUrl)) problems.push(`ALLOT_RAIL_URL=${railUrl} must be an http:// or https:// URL of a payment rail (docs/payouts.md, "The rail protocol")`);

  const config: Config = {
    port: int('PORT', 3000, 0, 65535),
    host: get('HOST') ?? '127.0.0.1',
    dataDir,
    databaseUrl,
    dbPoolSize: int('DB_POOL_SIZE', 10, 1, 1000),
    dbTimeoutMs: int('DB_TIMEOUT_MS', 5000, 100, 600_000),
    dbIdleTxTimeoutMs: int('DB_IDLE_TX_TIMEOUT_MS', 2000, 100, 600_000),
    locksUrl,
    locksDown: locksDown === 'refuse' ? 'refuse' : 'degrade',
    lockPrefix,
    adminToken,
    metricsToken,
    defaultStrategy,
    allowUnsafeStrategies,
    logLevel,
    shutdownTimeoutMs: int('ALLOT_SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    bodyLimitBytes: int('ALLOT_BODY_LIMIT_BYTES', 65_536, 1024, 16 * 1024 * 1024),
    httpHeadersTimeoutMs: int('ALLOT_HTTP_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
    httpRequestTimeoutMs: int('ALLOT_HTTP_REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000),
    httpKeepAliveTimeoutMs: int('ALLOT_HTTP_KEEP_ALIVE_TIMEOUT_MS', 5_000, 100, 3_600_000),
    httpMaxConnections: int('ALLOT_HTTP_MAX_CONNECTIONS', 10_000, 1, 1_000_000),
    httpCheckIntervalMs: int('ALLOT_HTTP_CHECK_INTERVAL_MS', 1_000, 10, 60_000),
    railUrl,
    railTimeoutMs: int('ALLOT_RAIL_TIMEOUT_MS', 10_000, 100, 600_000),
    keyRetentionMs: int('ALLOT_KEY_RETENTION_MS', 7 * 86_400_000, 86_400_000, 3650 * 86_400_000),
    keyPurgeIntervalMs: int('ALLOT_KEY_PURGE_INTERVAL_MS', 600_000, 0, 86_400_000),
    cacheDir: resolvedOrNull(defaultPgliteCacheDir({ ...env, ...overrides })),
    redisAtomicMode: redisAtomicMode === 'fast' ? 'fast' : 'durable',
    redisAtomicWriteBehindMax: int('ALLOT_REDIS_ATOMIC_WRITE_BEHIND_MAX', 2_000, 1, 1_000_000),
    groupCommitTransactional: bool('ALLOT_GROUP_COMMIT_TRANSACTIONAL'),
  };
  if (config.httpHeadersTimeoutMs > config.httpRequestTimeoutMs) {
    problems.push(`ALLOT_HTTP_HEADERS_TIMEOUT_MS=${config.httpHeadersTimeoutMs} is longer than ALLOT_HTTP_REQUEST_TIMEOUT_MS=${config.httpRequestTimeoutMs}; the request includes its headers: raise the request timeout or lower the headers timeout`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
