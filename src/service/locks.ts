// The service's lock provider, picked by LOCKS_URL's scheme (one opener per scheme in
// lock-backends/, loaded when named, so an unfinished or missing one is a clear error and not a
// build dependency). With no LOCKS_URL: in-process locks on PGlite (one process by nature), the
// PostgreSQL advisory-lock backend on the service's own database, and none on MariaDB (lock-based
// strategies are refused there). Fences are anchored in SQL (lock_epochs) whatever the backend.
// The provider is wrapped: hold-time metrics, and a circuit breaker (lock-breaker.ts) that fails
// fast while the backend is down.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { SqlConnection } from '../adapters/sql/connect.ts';
import { AllotError } from '../core/errors.ts';
import { createMemoryLockProvider, type LockEventHook, type LockMetrics, type LockProvider } from '@allot/lock';
import { registerLockMetrics } from '@allot/lock/prometheus';
import type { Lease } from '@allot/lock';
import { SqlFenceAnchor } from '../adapters/sql/sql-fences.ts';
import { sqlDialect } from '../adapters/sql/dialect.ts';
import { breakerProvider, LockBreaker, type BreakerState, type LockBreakerOptions } from './lock-breaker.ts';
import type { LockBackendContext, LockBackendOpener, OpenedLockBackend } from './lock-backends/types.ts';

/** What lock-based strategies do while the lock backend is down (LOCKS_DOWN). */
export type LocksDownMode = 'degrade' | 'refuse';

/** How the locks are, for /readyz: ok (the backend answers), down (it does not: the breaker is
 * open), in-process (no shared backend needed), none (no lock backend: lock-based strategies are refused). */
export type LocksHealth = 'ok' | 'down' | 'in-process' | 'none';

export interface ServiceLocks {
  /** the breaker-wrapped provider strategies use */
  provider: LockProvider;
  metrics: LockMetrics;
  /** the backend: 'redis', 'redis-sentinel', 'redis-cluster', 'redlock', 'etcd', 'postgres' (LOCKS_URL, or the
   * service's own PostgreSQL), 'in-process' (PGlite), or 'none' (no lock backend: see `missing`) */
  kind: string;
  displayUrl: string | null;
  /** LOCKS_DOWN: what lock-based strategies do while the backend is down */
  whenDown: LocksDownMode;
  /** why there is no lock backend (kind 'none'): a sentence that says what to set; null otherwise */
  missing: string | null;
  /** the circuit breaker's state (always closed for in-process and none) */
  breakerState(): BreakerState;
  /** ok / down / in-process / none, pinging the backend (within the breaker's ping timeout) while the breaker is closed */
  health(): Promise<LocksHealth>;
  /** resolves when the backend answers; throws AllotError UNAVAILABLE (details.backend 'locks') otherwise */
  ping(): Promise<void>;
  /** counts a claim of a lock-based strategy made while the backend was down (run without the lock, or refused) */
  observeDown(mode: LocksDownMode): void;
  close(): Promise<void>;
}

export const DEFAULT_LOCK_PREFIX = 'allot:lock:';

/** LOCKS_URL schemes and the opener file (lock-backends/<file>.ts) each is served by. */
export const LOCK_SCHEMES: Readonly<Record<string, string>> = Object.freeze({
  redis: 'redis',
  rediss: 'redis',
  'redis-sentinel': 'redis-sentinel',
  'rediss-sentinel': 'redis-sentinel',
  'redis-cluster': 'redis-cluster',
  'rediss-cluster': 'redis-cluster',
  redlock: 'redlock',
  etcd: 'etcd',
  etcds: 'etcd',
  postgres: 'postgres',
  postgresql: 'postgres',
});

export function lockSchemeOf(url: string): string | undefined {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  const scheme = m?.[1]?.toLowerCase();
  return scheme !== undefined && Object.hasOwn(LOCK_SCHEMES, scheme) ? scheme : undefined;
}

/** Thrown when a scheme has no opener in this build (unknown, or its file is missing). */
export class UnsupportedLockSchemeError extends Error {
  constructor(readonly scheme: string, detail: string) {
    super(`unsupported LOCKS_URL scheme "${scheme}://": ${detail}; supported: ${Object.keys(LOCK_SCHEMES).map((s) => `${s}://`).join(', ')}`);
    this.name = 'UnsupportedLockSchemeError';
  }
}

/** Loads the opener of a scheme (lock-backends/<file>.ts, or .js in the build). */
export async function lockOpener(scheme: string): Promise<LockBackendOpener> {
  const file = Object.hasOwn(LOCK_SCHEMES, scheme) ? LOCK_SCHEMES[scheme] : undefined;
  if (file === undefined) throw new UnsupportedLockSchemeError(scheme, 'no lock backend has this scheme');
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  const at = new URL(`./lock-backends/${file}.${ext}`, import.meta.url);
  if (!existsSync(fileURLToPath(at))) throw new UnsupportedLockSchemeError(scheme, `this build has no ${file} lock backend (src/service/lock-backends/${file}.ts)`);
  const mod = (await import(at.href)) as { open?: unknown };
  if (typeof mod.open !== 'function') throw new UnsupportedLockSchemeError(scheme, `src/service/lock-backends/${file}.ts does not export an opener named "open"`);
  return mod.open as LockBackendOpener;
}

export interface OpenLocksOptions {
  conn: SqlConnection;
  /** LOCKS_URL (or REDIS_URL); undefined: chosen by the database, see the module comment */
  url?: string | undefined;
  /** the service's DATABASE_URL: the advisory-lock backend's database when no url is given */
  databaseUrl?: string | undefined;
  prefix?: string | undefined;
  registry: Registry;
  onEvent?: LockEventHook;
  whenDown?: LocksDownMode | undefined;
  breaker?: LockBreakerOptions;
}

export async function openLocks(opts: OpenLocksOptions): Promise<ServiceLocks> {
  const prefix = opts.prefix ?? DEFAULT_LOCK_PREFIX;
  const whenDown = opts.whenDown ?? 'degrade';
  const metrics = registerLockMetrics(opts.registry);
  const hold = new Histogram({ name: 'allot_lock_hold_seconds', help: 'How long a lock was held: from acquired to released (release included).', labelNames: ['backend'], buckets: HOLD_BUCKETS, registers: [opts.registry] });
  const down = new Counter({ name: 'allot_lock_down_claims_total', help: 'Claims of lock-based strategies while the lock backend was down: run with the database guard only (degrade) or refused at once (refuse)', labelNames: ['mode'], registers: [opts.registry] });
  const observeDown = (mode: LocksDownMode) => down.inc({ mode });
  const anchor = new SqlFenceAnchor(opts.conn.db, sqlDialect(opts.conn.family), prefix);
  // The breaker is made once the opener returned (it needs its ping), but the provider's events
  // may start during the open: they reach it through this reference.
  const ref: BreakerRef = { current: undefined };

  let url = opts.url;
  if (!url) {
    if (opts.conn.dialect === 'pglite') {
      // In-memory counters restart at every start: a fresh durable epoch puts this process's
      // fences above every earlier one. PGlite is one process, so the locks are its only users.
      const epoch = await anchor.nextEpoch();
      const provider = createMemoryLockProvider({ fenceBase: epoch << 40n, metrics, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
      return local(timedHolds(provider, hold), metrics, 'in-process', whenDown, null, observeDown);
    }
    if (opts.conn.family === 'mysql') {
      return local(refusingProvider(NO_LOCKS_MARIADB), metrics, 'none', whenDown, NO_LOCKS_MARIADB, observeDown);
    }
    // PostgreSQL: advisory locks on the service's own database, shared by every instance.
    url = opts.databaseUrl;
    if (!url) throw new Error('openLocks: the database URL is needed for the PostgreSQL advisory-lock backend');
    const scheme = lockSchemeOf(url) ?? 'postgres';
    let opener: LockBackendOpener;
    try {
      opener = await lockOpener(scheme);
    } catch (err) {
      if (!(err instanceof UnsupportedLockSchemeError)) throw err;
      const why = `redis-lock needs a lock backend shared by every instance, and this build has no PostgreSQL advisory-lock backend (${err.message}); set LOCKS_URL (e.g. redis://host:6379)`;
      return local(refusingProvider(why), metrics, 'none', whenDown, why, observeDown);
    }
    let opened: OpenedLockBackend;
    try {
      opened = await opener(url, context());
    } catch (err) {
      throw new Error(`no LOCKS_URL is set, so redis-lock uses PostgreSQL advisory locks on the service's database (DATABASE_URL), and they could not be opened: ${(err as Error).message}`, { cause: err });
    }
    return wrap(opened, opts, metrics, hold, whenDown, ref, observeDown);
  }

  const scheme = lockSchemeOf(url);
  const opener = await lockOpener(scheme ?? (/^([^:]*):/.exec(url)?.[1] ?? url));
  return wrap(await opener(url, context()), opts, metrics, hold, whenDown, ref, observeDown);

  function context(): LockBackendContext {
    // The breaker listens to the provider's events (backend errors) beside the caller's hook.
    return { conn: opts.conn, anchor, prefix, metrics, registry: opts.registry, onEvent: (e) => {
      ref.current?.onEvent(e);
      opts.onEvent?.(e);
    } };
  }
}

interface BreakerRef {
  current: LockBreaker | undefined;
}

function wrap(opened: OpenedLockBackend, opts: OpenLocksOptions, metrics: LockMetrics, hold: Histogram<'backend'>, whenDown: LocksDownMode, ref: BreakerRef, observeDown: (mode: LocksDownMode) => void): ServiceLocks {
  const breaker = new LockBreaker(() => opened.ping(), opts.breaker, opts.registry);
  ref.current = breaker;
  const provider = breakerProvider(timedHolds(opened.provider, hold), breaker);
  return {
    provider,
    metrics,
    kind: opened.kind,
    displayUrl: opened.displayUrl,
    whenDown,
    missing: null,
    observeDown,
    breakerState: () => breaker.state,
    health: async () => {
      if (breaker.state !== 'closed') return 'down';
      try {
        await breaker.ping();
        return 'ok';
      } catch {
        return 'down';
      }
    },
    ping: async () => {
      try {
        await breaker.ping();
      } catch (err) {
        throw new AllotError('UNAVAILABLE', `the lock backend (${opened.kind}${opened.displayUrl ? ` ${opened.displayUrl}` : ''}) does not answer`, { backend: 'locks' }, { cause: err });
      }
    },
    close: async () => {
      breaker.stop();
      await provider.close();
      await opened.close();
    },
  };
}

function local(provider: LockProvider, metrics: LockMetrics, kind: 'in-process' | 'none', whenDown: LocksDownMode, missing: string | null, observeDown: (mode: LocksDownMode) => void): ServiceLocks {
  return {
    provider,
    metrics,
    kind,
    displayUrl: null,
    whenDown,
    missing,
    observeDown,
    breakerState: () => 'closed',
    health: async () => kind,
    ping: async () => {},
    close: () => provider.close(),
  };
}

const NO_LOCKS_MARIADB = 'redis-lock needs a lock backend shared by every instance, and MariaDB/MySQL has none allot can use: set LOCKS_URL (e.g. redis://host:6379, etcd://host:2379 or postgres://…)';

/** No lock backend: every lock operation answers UNAVAILABLE with the reason (nothing is issued). */
function refusingProvider(why: string): LockProvider {
  const refuse = async (): Promise<never> => {
    throw new AllotError('UNAVAILABLE', `no lock backend: ${why}; nothing was issued`, { backend: 'locks', outcome: 'nothing-issued' });
  };
  return { backend: 'none', acquire: refuse, tryAcquire: refuse, using: refuse, adopt: refuse, close: async () => {} };
}

const HOLD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The provider, with each lease's hold time observed when it is released (the lock library
 * reports acquisitions and handovers, not holds). */
function timedHolds(p: LockProvider, hold: Histogram<'backend'>): LockProvider {
  const observe = (started: number) => hold.observe({ backend: p.backend }, (performance.now() - started) / 1000);
  const track = (lease: Lease): Lease => {
    const started = performance.now();
    const release = lease.release.bind(lease);
    let done = false;
    lease.release = async () => {
      try {
        return await release();
      } finally {
        if (!done) {
          done = true;
          observe(started);
        }
      }
    };
    return lease;
  };
  return {
    get backend() {
      return p.backend;
    },
    acquire: async (key, o) => track(await p.acquire(key, o)),
    tryAcquire: async (key, o) => {
      const lease = await p.tryAcquire(key, o);
      return lease && track(lease);
    },
    using: async (key, o, fn) => {
      let started: number | null = null;
      try {
        return await p.using(key, o, (signal, lease) => {
          started = performance.now();
          return fn(signal, lease);
        });
      } finally {
        if (started !== null) observe(started);
      }
    },
    adopt: async (key, o) => track(await p.adopt(key, o)),
    close: () => p.close(),
  };
}
