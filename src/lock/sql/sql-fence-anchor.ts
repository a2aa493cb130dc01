// The durable FenceAnchor: epochs are a row in lock_epochs, bumped in one committed statement
// (Postgres/PGlite) or transaction (MySQL), so they survive any Redis loss and stay small.
import { sql, type Kysely } from 'kysely';
import type { SqlFamily } from '../../adapters/sql/connect.ts';
import type { FenceAnchor } from '../../ports/fence-anchor.ts';

export class SqlFenceAnchor implements FenceAnchor {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly #db: Kysely<any>;
  readonly #family: SqlFamily;
  readonly #name: string;

  /** name: one epoch sequence per lock namespace (e.g. the Redis key prefix). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(db: Kysely<any>, family: SqlFamily, name = 'default') {
    this.#db = db;
    this.#family = family;
    this.#name = name;
  }

  async nextEpoch(signal?: AbortSignal): Promise<bigint> {
    signal?.throwIfAborted();
    const name = this.#name;
    if (this.#family === 'pg') {
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
