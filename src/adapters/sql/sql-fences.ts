// Fencing state in SQL: the highest fence used per resource (raiseFence, the store side of
// the FencedTx port) and durable epochs for lock backends that lost their state
// (SqlFenceAnchor). Fences are DECIMAL(39,0): with the Redis TIME anchor they exceed 64 bits.
import { sql, type Kysely, type Transaction } from 'kysely';
import { boundedResource } from '@allot/lock';
import type { FenceAnchor } from '../../ports/fence-anchor.ts';
import type { SqlDialect } from './dialect.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type FenceDb = Kysely<any> | Transaction<any>;

/**
 * Call inside the transaction that makes the fenced writes. Raises the resource's fence to
 * `fence` unless a newer one was already used (then returns false and changes nothing), and
 * holds the lock_fences row lock until commit, so a stale holder can never write after a newer one.
 * A resource longer than 200 characters is stored under its bounded form (boundedResource: a
 * prefix, '#', its SHA-256), which fits the varchar(255) column and stays one row per resource.
 */
export async function raiseFence(db: FenceDb, dialect: SqlDialect, name: string, fence: bigint): Promise<boolean> {
  if (fence < 0n) throw new RangeError(`fence must be >= 0, got ${fence}`);
  const resource = boundedResource(name);
  const f = fence.toString();
  const raise = sql`UPDATE lock_fences SET fence = CAST(${f} AS DECIMAL(39,0)) WHERE resource = ${resource} AND fence <= CAST(${f} AS DECIMAL(39,0))`;
  // MySQL reports 0 affected rows for an UPDATE that changes nothing (an equal fence), so the
  // result is only trusted when positive there; the SELECT … FOR UPDATE below decides otherwise.
  if (Number((await raise.execute(db)).numAffectedRows ?? 0n) > 0) return true;
  await dialect.insertIgnore('lock_fences', ['resource', 'fence'], [resource, sql`CAST(${f} AS DECIMAL(39,0))`], ['resource']).execute(db);
  if (Number((await raise.execute(db)).numAffectedRows ?? 0n) > 0) return true;
  if (dialect.capabilities.affectedCountsMatched) return false;
  const row = (await sql<{ fence: string | number }>`SELECT fence FROM lock_fences WHERE resource = ${resource} FOR UPDATE`.execute(db)).rows[0];
  return row !== undefined && BigInt(String(row.fence)) === fence;
}

/** The durable FenceAnchor: epochs are a row in lock_epochs, bumped in one committed statement. */
export class SqlFenceAnchor implements FenceAnchor {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly #db: Kysely<any>;
  readonly #dialect: SqlDialect;
  readonly #name: string;

  /** name: one epoch sequence per lock namespace (e.g. the Redis key prefix). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(db: Kysely<any>, dialect: SqlDialect, name = 'default') {
    this.#db = db;
    this.#dialect = dialect;
    this.#name = name;
  }

  async nextEpoch(signal?: AbortSignal): Promise<bigint> {
    signal?.throwIfAborted();
    const name = this.#name;
    if (this.#dialect.capabilities.returning) {
      const r = await sql<{ epoch: string | number }>`
        INSERT INTO lock_epochs AS e (name, epoch) VALUES (${name}, 1)
        ON CONFLICT (name) DO UPDATE SET epoch = e.epoch + 1
        RETURNING epoch`.execute(this.#db);
      return BigInt(r.rows[0]!.epoch);
    }
    return this.#db.transaction().execute(async (trx) => {
      await sql`INSERT INTO lock_epochs (name, epoch) VALUES (${name}, 1) ON DUPLICATE KEY UPDATE epoch = epoch + 1`.execute(trx);
      const r = await sql<{ epoch: string | number }>`SELECT epoch FROM lock_epochs WHERE name = ${name}`.execute(trx);
      return BigInt(r.rows[0]!.epoch);
    });
  }
}
