// Store-side fence check: call it inside the transaction that makes the fenced writes. It
// raises the resource's fence to `fence` unless a newer one was already used, and holds the
// lock_fences row lock until commit, so a stale holder can never write after a newer one.
import { sql, type Kysely, type Transaction } from 'kysely';
import type { SqlFamily } from '../../adapters/sql/connect.ts';
import { StaleFenceError } from '../errors.ts';
import type { LockMetrics } from '../metrics.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type FenceDb = Kysely<any> | Transaction<any>;

export interface FenceCheckOptions {
  /** counts a rejection (fenceRejected) */
  metrics?: LockMetrics;
}

/** Throws StaleFenceError when a fence greater than `fence` was already used on `resource`. */
export async function checkFence(db: FenceDb, family: SqlFamily, resource: string, fence: bigint, opts: FenceCheckOptions = {}): Promise<void> {
  if (fence < 0n) throw new RangeError(`fence must be >= 0, got ${fence}`);
  const f = fence.toString();
  const raise = sql`UPDATE lock_fences SET fence = CAST(${f} AS DECIMAL(39,0)) WHERE resource = ${resource} AND fence <= CAST(${f} AS DECIMAL(39,0))`;
  // MySQL may report 0 affected rows for an UPDATE that changes nothing (equal fence), so the
  // result is only trusted when positive; the SELECT … FOR UPDATE below decides otherwise.
  if (Number((await raise.execute(db)).numAffectedRows ?? 0n) > 0) return;
  const insert =
    family === 'pg'
      ? sql`INSERT INTO lock_fences (resource, fence) VALUES (${resource}, CAST(${f} AS DECIMAL(39,0))) ON CONFLICT (resource) DO NOTHING`
      : sql`INSERT INTO lock_fences (resource, fence) VALUES (${resource}, CAST(${f} AS DECIMAL(39,0))) ON DUPLICATE KEY UPDATE resource = resource`;
  await insert.execute(db);
  if (Number((await raise.execute(db)).numAffectedRows ?? 0n) > 0) return;
  const row = (await sql<{ fence: string | number }>`SELECT fence FROM lock_fences WHERE resource = ${resource} FOR UPDATE`.execute(db)).rows[0];
  if (row && BigInt(String(row.fence)) === fence) return;
  opts.metrics?.fenceRejected?.({ resource });
  throw new StaleFenceError(resource, fence);
}
