// Fencing state in SQL: the highest fence used per resource (raiseFence, the store side of
// the FencedTx port) and durable epochs for lock backends that lost their state
// (SqlFenceAnchor). Fences are DECIMAL(39,0): with the Redis TIME anchor they exceed 64 bits.
import { createHash } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { boundedResource } from '@allot/lock';
import type { FenceAnchor } from '../../ports/fence-anchor.ts';
import type { SqlDialect } from './dialect.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type FenceDb = Kysely<any> | Transaction<any>;

/**
 * Call inside the transaction that makes the fenced writes. Raises the resource's fence to
 * `fence` unless a newer one was already used, or the same one by another holder (then returns
 * false and changes nothing), and holds the lock_fences row lock until commit, so a stale holder
 * can never write after a newer one. An equal fence is accepted again from the same holder only
 * (the same lease retrying its transaction): two holders handed one fence (a lock backend that
 * lost an increment in a failover) never both write. `holder` is the lease's owner id; writers
 * without one share the anonymous holder ''.
 * A resource longer than 200 characters is stored under its bounded form (boundedResource: a
 * prefix, '#', its SHA-256), which fits the varchar(255) column and stays one row per resource.
 */
export async function raiseFence(db: FenceDb, dialect: SqlDialect, name: string, fence: bigint, holder = ''): Promise<boolean> {
  if (fence < 0n) throw new RangeError(`fence must be >= 0, got ${fence}`);
  const resource = boundedResource(name);
  const who = holderKey(holder);
  const f = fence.toString();
  const usedAt = dialect.int64(BigInt(Date.now()));
  const raise = sql`UPDATE lock_fences SET fence = CAST(${f} AS DECIMAL(39,0)), holder = ${who}, used_at = ${usedAt}
    WHERE resource = ${resource} AND (fence < CAST(${f} AS DECIMAL(39,0)) OR (fence = CAST(${f} AS DECIMAL(39,0)) AND holder = ${who}))`;
  // MySQL reports 0 affected rows for an UPDATE that changes nothing (the same fence from the
  // same holder), so the result is only trusted when positive there; the SELECT … FOR UPDATE
  // below decides otherwise.
  if (Number((await raise.execute(db)).numAffectedRows ?? 0n) > 0) return true;
  // No row, or a newer one. A resource without a row (first use, or pruned by pruneFences) takes
  // only fences above the prune floor, read under a share lock: it waits for a prune in flight and
  // sees its floor, and a prune that starts later waits for this transaction (see pruneFences).
  if (fence > ((await readFloor(db, dialect, 'share')) ?? 0n)) {
    await dialect.insertIgnore('lock_fences', ['resource', 'fence', 'holder', 'used_at'], [resource, sql`CAST(${f} AS DECIMAL(39,0))`, who, usedAt], ['resource']).execute(db);
    if (Number((await raise.execute(db)).numAffectedRows ?? 0n) > 0) return true;
  }
  if (dialect.capabilities.affectedCountsMatched) return false;
  const row = (await sql<{ fence: string | number; holder: string }>`SELECT fence, holder FROM lock_fences WHERE resource = ${resource} FOR UPDATE`.execute(db)).rows[0];
  return row !== undefined && BigInt(String(row.fence)) === fence && row.holder === who;
}

const FLOOR = 'default';

/** The prune floor, locked: 'share' for raiseFence (many at once), 'update' for the prune.
 * Undefined when the row is missing: then nothing was ever pruned (the prune creates it first). */
async function readFloor(db: FenceDb, dialect: SqlDialect, mode: 'share' | 'update' | 'none'): Promise<bigint | undefined> {
  const lock = sql.raw(mode === 'none' ? '' : mode === 'update' ? 'FOR UPDATE' : dialect.family === 'pg' ? 'FOR SHARE' : 'LOCK IN SHARE MODE');
  const row = (await sql<{ floor: string | number }>`SELECT floor FROM lock_fence_floor WHERE name = ${FLOOR} ${lock}`.execute(db)).rows[0];
  return row ? BigInt(String(row.floor)) : undefined;
}

export interface PruneFencesOptions {
  /** delete rows whose fence was last raised longer ago than this; must exceed every lease TTL
   * and the lock backend's fence horizon (docs/locks.md, "Bounded fencing state") */
  olderThanMs: number;
  /** ms since the epoch; default Date.now() */
  now?: number;
  /** rows per transaction; default 500 */
  batchSize?: number;
  /** stop after this many rows (the next run continues); default 100,000 */
  maxRows?: number;
  signal?: AbortSignal;
}

export interface PruneFencesResult {
  deleted: number;
  /** the prune floor afterwards: resources without a row refuse fences up to it */
  floor: bigint;
}

/**
 * Deletes lock_fences rows unused for `olderThanMs` and raises the prune floor to the highest
 * fence it deleted, in the same transaction: a stale holder of a pruned resource has a fence at
 * most that row's, so raiseFence refuses it (no row: fences up to the floor are refused).
 * Deadlock-free: the prune takes the floor row first, holding nothing, and then only rows nobody
 * has locked (SKIP LOCKED), so it never waits while holding a lock.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function pruneFences(db: Kysely<any>, dialect: SqlDialect, opts: PruneFencesOptions): Promise<PruneFencesResult> {
  if (!(opts.olderThanMs > 0)) throw new RangeError(`olderThanMs must be > 0, got ${opts.olderThanMs}`);
  const cutoff = dialect.int64(BigInt(Math.floor((opts.now ?? Date.now()) - opts.olderThanMs)));
  const batch = opts.batchSize ?? 500;
  const maxRows = opts.maxRows ?? 100_000;
  let deleted = 0;
  let floor = 0n;
  for (;;) {
    opts.signal?.throwIfAborted();
    const limit = Math.min(batch, maxRows - deleted);
    if (limit <= 0) break;
    // A plain read picks candidates; the transaction re-checks them under row locks.
    const candidates = (await sql<{ resource: string }>`SELECT resource FROM lock_fences WHERE used_at < ${cutoff} ORDER BY used_at LIMIT ${sql.raw(String(limit))}`.execute(db)).rows.map((r) => r.resource);
    if (candidates.length === 0) break;
    const n = await db.transaction().execute(async (trx) => {
      let locked = await readFloor(trx, dialect, 'update');
      if (locked === undefined) {
        await dialect.insertIgnore('lock_fence_floor', ['name', 'floor'], [FLOOR, 0], ['name']).execute(trx);
        locked = (await readFloor(trx, dialect, 'update')) ?? 0n;
      }
      floor = locked;
      const rows = (
        await sql<{ resource: string; fence: string | number }>`SELECT resource, fence FROM lock_fences
          WHERE resource IN (${sql.join(candidates)}) AND used_at < ${cutoff} FOR UPDATE SKIP LOCKED`.execute(trx)
      ).rows;
      if (rows.length === 0) return 0;
      for (const r of rows) if (BigInt(String(r.fence)) > floor) floor = BigInt(String(r.fence));
      // The floor first: it is what keeps the deleted rows' stale holders out.
      await sql`UPDATE lock_fence_floor SET floor = CAST(${floor.toString()} AS DECIMAL(39,0)) WHERE name = ${FLOOR}`.execute(trx);
      await sql`DELETE FROM lock_fences WHERE resource IN (${sql.join(rows.map((r) => r.resource))})`.execute(trx);
      return rows.length;
    });
    deleted += n;
    // Every candidate locked by a writer (in use right now): leave them to the next run.
    if (n === 0 || candidates.length < limit) break;
  }
  return { deleted, floor: deleted > 0 ? floor : ((await readFloor(db, dialect, 'none')) ?? 0n) };
}

/** The holder column is 128 ASCII characters compared bytewise: longer or non-ASCII owner ids
 * (and ids that look like a digest) are stored as their SHA-256, so distinct owners stay distinct. */
function holderKey(owner: string): string {
  if (owner.length <= 128 && /^[\x20-\x7e]*$/.test(owner) && !owner.startsWith('sha256:')) return owner;
  return `sha256:${createHash('sha256').update(owner).digest('hex')}`;
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

/** Default retention of idle lock_fences rows in the service's scheduled purge: one day, far
 * longer than any lease and than the Redis backends' fence horizon (fenceTtlMs, default 2 h). */
export const DEFAULT_FENCE_RETENTION_MS = 86_400_000;

/** A scheduled purge (the service's idempotency-key purge) that also prunes idle fencing state
 * once its own last batch is done: one scheduler, one lease, for both. */
export function withFencePrune<S extends { purge(before: number, now: number, limit: number): Promise<number> }>(
  store: S,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  db: Kysely<any>,
  dialect: SqlDialect,
  olderThanMs = DEFAULT_FENCE_RETENTION_MS,
): { purge(before: number, now: number, limit: number): Promise<number> } {
  return {
    async purge(before, now, limit) {
      const n = await store.purge(before, now, limit);
      // used_at is wall-clock ms (raiseFence): judged by Date.now(), not by an injected clock.
      if (n < limit) await pruneFences(db, dialect, { olderThanMs });
      return n;
    },
  };
}
