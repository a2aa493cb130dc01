// The few node-postgres (`pg`) shapes the PostgreSQL lock backend uses: a pg.Pool satisfies
// PgPoolLike, so the lock package needs no hard dependency on `pg` (an optional peer).

export interface PgResult<R> {
  rows: R[];
}

export interface PgQueryable {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  query<R extends Record<string, any> = Record<string, any>>(text: string, values?: unknown[]): Promise<PgResult<R>>;
}

export interface PgNotification {
  channel: string;
  payload?: string | undefined;
}

/** A connection checked out of the pool for as long as the provider lives (its session token and LISTEN). */
export interface PgSessionClient extends PgQueryable {
  on(event: 'notification', listener: (message: PgNotification) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  /** release(true) destroys the connection (pg's PoolClient.release(err)) */
  release(err?: Error | boolean): void;
}

export interface PgPoolLike extends PgQueryable {
  connect(): Promise<PgSessionClient>;
}
