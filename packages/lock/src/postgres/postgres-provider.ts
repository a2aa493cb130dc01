// Composition for the PostgreSQL advisory-lock provider: the generic provider (waiting, validity,
// watchdog, metrics) over PostgresLockBackend, on a pool it is given or one it opens with `pg`.
import { BackendLockProvider, type LockProviderOptions } from '../provider.ts';
import { callHook, hookErrorReporter } from '../metrics.ts';
import type { LockEvent, LockProvider } from '../types.ts';
import type { PgPoolLike } from './client.ts';
import { PostgresLockBackend, type PostgresLockBackendOptions } from './postgres-backend.ts';

export interface PostgresLockProviderOptions extends LockProviderOptions, Omit<PostgresLockBackendOptions, 'pool' | 'emit'> {
  /** a pg.Pool (or anything PgPoolLike); the provider keeps one of its connections checked out */
  pool?: PgPoolLike;
  /** used when no pool is given: the provider opens (and on close() ends) a pg.Pool; needs the `pg` package */
  connectionString?: string;
  /** size of the pool opened from connectionString; default 10 */
  poolMax?: number;
}

export interface PostgresLockProvider extends LockProvider {
  /** creates the schema objects if needed and opens the session (its dedicated connection and
   * token); rejects when the database cannot be used. Optional: the first acquisition does it too. */
  ready(): Promise<void>;
}

interface PgModule {
  Pool: new (config: { connectionString: string; max?: number }) => PgPoolLike & { end(): Promise<void>; on(event: 'error', listener: (err: Error) => void): unknown };
}

/** a pg.Pool whose creation waits for the first use (the factory stays synchronous) */
function lazyPool(connectionString: string, max: number, onError: (error: unknown) => void): PgPoolLike & { end(): Promise<void> } {
  let opened: Promise<PgPoolLike & { end(): Promise<void> }> | undefined;
  const open = () =>
    (opened ??= import('pg').then((mod: unknown) => {
      const pg = ((mod as { default?: PgModule }).default ?? mod) as PgModule;
      const pool = new pg.Pool({ connectionString, max });
      pool.on('error', onError); // an idle connection killed by the server must not crash the process
      return pool;
    }));
  return {
    query: (text, values) => open().then((p) => p.query(text, values)),
    connect: () => open().then((p) => p.connect()),
    end: () => (opened ? opened.then((p) => p.end()) : Promise.resolve()),
  } as PgPoolLike & { end(): Promise<void> };
}

class PgLockProvider extends BackendLockProvider implements PostgresLockProvider {
  readonly #pgBackend: PostgresLockBackend;
  readonly #ownPool: { end(): Promise<void> } | undefined;

  constructor(backend: PostgresLockBackend, ownPool: { end(): Promise<void> } | undefined, opts: LockProviderOptions) {
    super(backend, opts);
    this.#pgBackend = backend;
    this.#ownPool = ownPool;
  }

  async ready(): Promise<void> {
    await this.#pgBackend.open();
  }

  override async close(): Promise<void> {
    await super.close();
    await this.#ownPool?.end();
  }
}

export function createPostgresLockProvider(opts: PostgresLockProviderOptions): PostgresLockProvider {
  const onHookError = hookErrorReporter(opts.onHookError);
  const onEvent = opts.onEvent;
  // hooks never break the lock machinery
  const emit = (e: LockEvent) => (onEvent ? callHook('onEvent', () => onEvent(e), onHookError) : undefined);
  let pool = opts.pool;
  let ownPool: (PgPoolLike & { end(): Promise<void> }) | undefined;
  if (!pool) {
    if (!opts.connectionString) throw new TypeError('createPostgresLockProvider needs a pool or a connectionString');
    pool = ownPool = lazyPool(opts.connectionString, opts.poolMax ?? 10, (error) => emit({ type: 'backendError', error }));
  }
  const backend = new PostgresLockBackend({ ...opts, pool, emit });
  return new PgLockProvider(backend, ownPool, { ...opts, onHookError });
}
