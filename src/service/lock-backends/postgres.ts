// PostgreSQL advisory locks (postgres:// and postgresql://) as the service's lock backend, for
// deployments with no Redis; the database may be the service's own. Fences come from a sequence
// created above the SQL fence anchor's epoch, so they outrank fences of an earlier Redis backend.
import pg from 'pg';
import { createPostgresLockProvider } from '@allot/lock';
import { maskUrl } from '../../adapters/sql/connect.ts';
import type { LockBackendOpener } from './types.ts';

/** LOCKS_URL query parameters read here (and not passed to the driver) */
const OWN_PARAMS = ['schema', 'prefix', 'pool_max'] as const;

/** "allot:lock:" -> "allot_lock_": the key prefix as a table-name prefix */
function tablePrefix(prefix: string): string {
  let p = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (!/^[a-z_]/.test(p)) p = `_${p}`;
  return p.slice(0, 40);
}

export const open: LockBackendOpener = async (raw, ctx) => {
  const url = new URL(raw);
  const display = maskUrl(url.href);
  const params = url.searchParams;
  const schema = params.get('schema') ?? 'public';
  const prefix = params.get('prefix') ?? tablePrefix(ctx.prefix);
  const poolMax = Number(params.get('pool_max') ?? 10);
  if (!Number.isInteger(poolMax) || poolMax < 2) throw new Error(`LOCKS_URL ${display}: pool_max must be an integer >= 2 (one connection stays checked out for the session lock)`);
  const driverUrl = new URL(url.href);
  for (const name of OWN_PARAMS) driverUrl.searchParams.delete(name);
  const pool = new pg.Pool({ connectionString: driverUrl.href, max: poolMax, connectionTimeoutMillis: 2_000 });
  // an idle connection the server closed must not become an unhandled 'error' event; the pool replaces it
  pool.on('error', () => undefined);
  let provider;
  try {
    provider = createPostgresLockProvider({ pool, schema, prefix, fenceAnchor: ctx.anchor, metrics: ctx.metrics, ...(ctx.onEvent ? { onEvent: ctx.onEvent } : {}) });
    await provider.ready();
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new Error(
      `cannot use PostgreSQL at ${display} for locks (LOCKS_URL): ${(err as Error).message}. Check the host, port, credentials and database in LOCKS_URL, that the server is up, and that schema "${schema}" exists and the user may create tables in it.`,
      { cause: err },
    );
  }
  const opened = provider;
  return {
    provider: opened,
    kind: 'postgres',
    displayUrl: display,
    ping: async () => {
      await pool.query('SELECT 1');
    },
    close: async () => {
      await opened.close();
      await pool.end();
    },
  };
};
