// What a connection pool is doing, for /metrics and the dashboard: connections checked out and
// waited for (counted around Kysely's driver, so the same on every dialect), the pool's open
// connections (asked of the driver's pool), and every statement's duration (Kysely's log hook).
import type { DatabaseConnection, Dialect, Driver, LogEvent, TransactionSettings } from 'kysely';

export interface PoolStats {
  /** connections the pool may open (PGlite: its one session) */
  max: number;
  /** connections open now, in use or idle */
  open: number;
  /** connections checked out by a query or a transaction */
  inUse: number;
  /** callers waiting for a connection */
  waiting: number;
}

export class SqlStats {
  inUse = 0;
  waiting = 0;
  /** Set by whoever charts it (the service's metrics): every statement's duration, ok or failed. */
  onQuery: ((durationMs: number, failed: boolean) => void) | undefined;
  /** Set by whoever charts it: how long each checkout waited for a connection. */
  onAcquire: ((waitMs: number) => void) | undefined;

  constructor(
    readonly max: number,
    /** open connections as the pool counts them; undefined when it cannot tell */
    private readonly openCount: () => number | undefined,
  ) {}

  pool(): PoolStats {
    const open = this.openCount() ?? this.inUse;
    return { max: this.max, open: Math.max(open, this.inUse), inUse: this.inUse, waiting: this.waiting };
  }

  /** Kysely's `log` option: called after every statement with its duration. */
  readonly log = (e: LogEvent): void => {
    this.onQuery?.(e.queryDurationMillis, e.level === 'error');
  };

  /** The dialect with its driver wrapped to count checkouts and waits. */
  observe(dialect: Dialect): Dialect {
    return {
      createAdapter: () => dialect.createAdapter(),
      createQueryCompiler: () => dialect.createQueryCompiler(),
      createIntrospector: (db) => dialect.createIntrospector(db),
      createDriver: () => new CountingDriver(dialect.createDriver(), this),
    };
  }
}

class CountingDriver implements Driver {
  savepoint?: Driver['savepoint'];
  rollbackToSavepoint?: Driver['rollbackToSavepoint'];
  releaseSavepoint?: Driver['releaseSavepoint'];

  constructor(
    private readonly inner: Driver,
    private readonly stats: SqlStats,
  ) {
    // Kysely checks whether these exist: forward only those the driver has.
    if (inner.savepoint) this.savepoint = inner.savepoint.bind(inner);
    if (inner.rollbackToSavepoint) this.rollbackToSavepoint = inner.rollbackToSavepoint.bind(inner);
    if (inner.releaseSavepoint) this.releaseSavepoint = inner.releaseSavepoint.bind(inner);
  }

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const started = performance.now();
    this.stats.waiting++;
    let conn: DatabaseConnection;
    try {
      conn = await this.inner.acquireConnection();
    } finally {
      this.stats.waiting--;
    }
    this.stats.inUse++;
    this.stats.onAcquire?.(performance.now() - started);
    return conn;
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    this.stats.inUse--;
    await this.inner.releaseConnection(connection);
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(connection);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}
