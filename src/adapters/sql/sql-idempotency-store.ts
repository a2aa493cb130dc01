// The IdempotencyStore port over SQL: one row per (scope, key) in idempotency_keys, taken with
// an insert, owned under a lease, completed by an owner-checked update (inside the effect's
// transaction through completeKey, or on its own for a refusal).
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { AllotError } from '../../core/errors.ts';
import type { StoredResponse } from '../../core/idempotency.ts';
import type { IdempotencyBegin, IdempotencyStore } from '../../ports/idempotency-store.ts';
import type { SqlDialect } from './dialect.ts';
import { guarded } from './translate.ts';
import { isUniqueViolation } from './errors.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any> | Transaction<any>;

async function affected(db: Db, q: RawBuilder<unknown>): Promise<number> {
  return Number((await q.execute(db)).numAffectedRows ?? 0n);
}

/** Completes a key this request owns; throws IDEMPOTENCY_IN_PROGRESS when a retry took it over
 * (the caller's transaction must then roll back). */
export async function completeKey(db: Db, scope: string, key: string, owner: string, response: StoredResponse, ref: string | null): Promise<void> {
  const n = await affected(db, sql`UPDATE idempotency_keys SET state = 'done', status_code = ${response.status}, response = ${JSON.stringify(response.body)}, claim_id = ${ref}
    WHERE campaign_id = ${scope} AND idem_key = ${key} AND owner = ${owner} AND state = 'running'`);
  if (n !== 1) throw new AllotError('IDEMPOTENCY_IN_PROGRESS', 'This request lost its Idempotency-Key lease to a retry; the retry decides the outcome.');
}

export class SqlIdempotencyStore implements IdempotencyStore {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(private readonly db: Kysely<any>, private readonly dialect: SqlDialect) {}

  begin(scope: string, key: string, fp: string, owner: string, nowMs: number, leaseMs: number): Promise<IdempotencyBegin> {
    return guarded(async () => {
      const until = nowMs + leaseMs;
      if (await this.insertKey(scope, key, fp, owner, until, nowMs)) return { state: 'owner' };
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = (await sql<Record<string, unknown>>`SELECT fingerprint, state, locked_until, status_code, response FROM idempotency_keys WHERE campaign_id = ${scope} AND idem_key = ${key}`.execute(this.db)).rows[0];
        if (!r) {
          // Abandoned between our insert and read: try to take it again.
          if (await this.insertKey(scope, key, fp, owner, until, nowMs)) return { state: 'owner' };
          continue;
        }
        if (String(r.fingerprint) !== fp) return { state: 'mismatch' };
        if (r.state === 'done') {
          return { state: 'done', response: { status: Number(r.status_code), body: JSON.parse(String(r.response)) as unknown } };
        }
        if (Number(r.locked_until) > nowMs) return { state: 'busy' };
        // The first request's lease ran out (it crashed, or the database failed under it); its
        // effect, if any, would have marked the key done in the same transaction. Take over.
        const took = await affected(this.db, sql`UPDATE idempotency_keys SET owner = ${owner}, locked_until = ${until}
          WHERE campaign_id = ${scope} AND idem_key = ${key} AND state = 'running' AND locked_until <= ${nowMs}`);
        if (took === 1) return { state: 'owner' };
      }
      return { state: 'busy' };
    });
  }

  private async insertKey(scope: string, key: string, fp: string, owner: string, until: number, nowMs: number): Promise<boolean> {
    const cols = ['campaign_id', 'idem_key', 'fingerprint', 'state', 'owner', 'locked_until', 'created_at'];
    const values = [scope, key, fp, 'running', owner, until, nowMs];
    if (this.dialect.capabilities.onConflict === 'on-conflict') {
      return (await affected(this.db, this.dialect.insertIgnore('idempotency_keys', cols, values, ['campaign_id', 'idem_key']))) === 1;
    }
    // An ON DUPLICATE KEY no-op counts as 0 or 1 row depending on client flags: a plain insert decides.
    try {
      await sql`INSERT INTO idempotency_keys (${sql.raw(cols.join(', '))}) VALUES (${sql.join(values)})`.execute(this.db);
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  complete(scope: string, key: string, owner: string, response: StoredResponse, ref: string | null): Promise<void> {
    return guarded(() => completeKey(this.db, scope, key, owner, response, ref));
  }

  abandon(scope: string, key: string, owner: string): Promise<void> {
    return guarded(async () => {
      await sql`DELETE FROM idempotency_keys WHERE campaign_id = ${scope} AND idem_key = ${key} AND owner = ${owner} AND state = 'running'`.execute(this.db);
    });
  }

  purge(beforeMs: number, nowMs: number, limit: number): Promise<number> {
    return guarded(async () => {
      const stale = sql`created_at < ${beforeMs} AND (state = 'done' OR locked_until <= ${nowMs})`;
      if (this.dialect.capabilities.deleteWithLimit) return affected(this.db, sql`DELETE FROM idempotency_keys WHERE ${stale} ORDER BY created_at LIMIT ${limit}`);
      return affected(this.db, sql`DELETE FROM idempotency_keys WHERE (campaign_id, idem_key) IN (SELECT campaign_id, idem_key FROM idempotency_keys WHERE ${stale} ORDER BY created_at LIMIT ${limit})`);
    });
  }
}
