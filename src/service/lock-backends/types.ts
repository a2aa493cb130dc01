// The service's lock backends: one opener per LOCKS_URL scheme (redis://, redis-sentinel://,
// redis-cluster://, redlock://, etcd://, postgres://). src/service/locks.ts picks the opener by the
// URL's scheme and wraps what it returns (hold-time metrics, circuit breaker, readiness).
import type { Registry } from 'prom-client';
import type { FenceAnchor, LockEventHook, LockMetrics, LockProvider } from '@allot/lock';
import type { SqlConnection } from '../../adapters/sql/connect.ts';

export interface LockBackendContext {
  /** the service's database: fences are checked there (lock_fences), epochs may be anchored there (lock_epochs) */
  conn: SqlConnection;
  /** the durable fence anchor for this lock namespace (SqlFenceAnchor over lock_epochs) */
  anchor: FenceAnchor;
  /** key prefix / namespace for the backend's keys; default "allot:lock:" */
  prefix: string;
  metrics: LockMetrics;
  registry: Registry;
  onEvent?: LockEventHook;
}

export interface OpenedLockBackend {
  provider: LockProvider;
  /** short name shown in the banner, /readyz and metrics: 'redis', 'redis-sentinel', 'redis-cluster', 'redlock', 'etcd', 'postgres', 'in-process' */
  kind: string;
  /** the URL with credentials masked, for the banner and logs */
  displayUrl: string | null;
  /** resolves when the backend answers; throws (any error) when it does not */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Opens the backend for one LOCKS_URL, given as written: multi-host forms (`redlock://a:6379,b:6379`)
 * are not WHATWG URLs, so each opener parses its own. Throws an Error whose message names the URL
 * (masked) and what to check. */
export type LockBackendOpener = (url: string, ctx: LockBackendContext) => Promise<OpenedLockBackend>;
