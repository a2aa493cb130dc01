// Classifies driver errors: which ones mean "retry the transaction", which mean "the database
// is unreachable" (503, nothing issued), and which are unique-key conflicts.

interface DriverError {
  code?: unknown;
  errno?: unknown;
  message?: unknown;
  fatal?: unknown;
}

const PG_RETRYABLE = new Set(['40001', '40P01', '55P03']);
const MYSQL_RETRYABLE = new Set([1213, 1205]);
/** MariaDB max_statement_time exceeded (ER_STATEMENT_TIMEOUT); MySQL max_execution_time
 * exceeded (ER_QUERY_TIMEOUT); the server killed the connection (ER_CONNECTION_KILLED). */
const MYSQL_UNAVAILABLE = new Set([1969, 3024, 1927]);
const NET_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR', 'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'POOL_CLOSED',
]);

/** Deadlock, serialization failure, lock timeout: the transaction rolled back; retry it whole. */
export function isRetryable(err: unknown): boolean {
  const e = err as DriverError | null;
  if (!e) return false;
  if (typeof e.code === 'string' && PG_RETRYABLE.has(e.code)) return true;
  return typeof e.errno === 'number' && MYSQL_RETRYABLE.has(e.errno);
}

/** The database cannot be reached or went away. */
export function isUnavailable(err: unknown): boolean {
  const e = err as DriverError | null;
  if (!e) return false;
  if (typeof e.code === 'string') {
    if (NET_CODES.has(e.code)) return true;
    // PostgreSQL: connection exceptions, shutdown, too many connections, query canceled
    // (statement timeout), session ended by idle_in_transaction_session_timeout.
    if (/^(08|57P0|53300|57014|25P03)/.test(e.code)) return true;
  }
  if (typeof e.errno === 'number' && MYSQL_UNAVAILABLE.has(e.errno)) return true;
  if (e.fatal === true) return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|timeout exceeded|Query read timeout|Client has encountered a connection error|Cannot enqueue|connect ECONNREFUSED|socket hang up|closed state|Pool is closed|pool.*destroyed|driver has already been destroyed/i.test(msg);
}

export function isUniqueViolation(err: unknown): boolean {
  const e = err as DriverError | null;
  return !!e && (e.code === '23505' || e.errno === 1062 || e.code === 'ER_DUP_ENTRY');
}

/** A CHECK constraint refused the row (PostgreSQL 23514; MariaDB 4025, MySQL 3819). */
export function isCheckViolation(err: unknown): boolean {
  const e = err as DriverError | null;
  return !!e && (e.code === '23514' || e.errno === 4025 || e.errno === 3819);
}
