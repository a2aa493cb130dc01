// The IdempotencyStore port over SQL: one row per (scope, key) in idempotency_keys, taken with
// an insert, owned under a lease, completed by an owner-checked update (inside the effect's
// transaction through completeKey, or on its own for a refusal).
import { sql, type Kysely } from 'kysely';
import { AllotError } from '../../core/errors.ts';
import type { StoredResponse } from '../../core/idempotency.ts';
import type { IdempotencyBegin, IdempotencyStore } from '../../ports/idempotency-store.ts';
import type { SqlDialect } from './dialect.ts';
import { guarded } from './translate.ts';
import { isUniqueViolation } from './errors.ts';
import { affected, type Db } from './exec.ts';


/** Completes a key this request owns; throws IDEMPOTENCY_IN_PROGRESS when a retry took it over
 * (the caller's transaction must then roll back). */
export async function completeKey(db: Db, scope: string, key: string, owner: string, response: StoredResponse, ref: string | null): Promise<void> {
  const n = await affected(db, sql`UPDATE idempotency_keys SET state = 'done', status_code = ${response.status}, response = ${JSON.stringify(response.body)}, claim_id = ${ref}
    WHERE campaign_id = ${scope} AND idem_key = ${key} AND owner = ${owner} AND state = 'running'`);
  if (n !== 1) throw new AllotError('IDEMPOTENCY_IN_PROGRESS', 'This request lost its Idempotency-Key lease to a retry; the retry decides the outcome.');
}

interface PendingInsert {
  values: unknown[];
  owner: string;
  resolve(inserted: boolean): void;
  reject(err: unknown): void;
}

/** Most keys taken by one INSERT. */
const MAX_KEY_BATCH = 500;
const KEY_COLUMNS = ['campaign_id', 'idem_key', 'fingerprint', 'state', 'owner', 'locked_until', 'created_at'];

export class SqlIdempotencyStore implements IdempotencyStore {
  // Keys taken concurrently share one multi-row INSERT (one round trip and one commit for all):
  // while one runs, the next ones queue, and the next INSERT takes them all.
  private queued: PendingInsert[] = [];
  private inserting = false;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(private readonly db: Kysely<any>, private readonly dialect: SqlDialect) {}

  begin(scope: string, key: string, fp: string, owner: string, nowMs: number, leaseMs: number): Promise<IdempotencyBegin> {
    return guarded(async () => {
      const until = nowMs + leaseMs;
      if (await this.insertBatched([scope, key, fp, 'running', owner, until, nowMs], owner)) return { state: 'owner' };
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

  private insertBatched(values: unknown[], owner: string): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.queued.push({ values, owner, resolve, reject });
      if (!this.inserting) {
        // The first INSERT waits for the rest of this turn of the event loop, so requests that
        // arrive together go together (none runs a round trip ahead of the others).
        this.inserting = true;
        setImmediate(() => void this.flushInserts());
      }
    });
  }

  private async flushInserts(): Promise<void> {
    this.inserting = true;
    try {
      while (this.queued.length > 0) {
        const batch = this.queued.splice(0, MAX_KEY_BATCH);
        try {
          const mine = await this.insertMany(batch);
          for (const p of batch) p.resolve(mine.has(p.owner));
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.inserting = false;
    }
  }

  /** Inserts the rows that are new; returns the owners whose row went in. */
  private async insertMany(batch: PendingInsert[]): Promise<Set<string>> {
    if (batch.length === 1) {
      const [scope, key, fp, , owner, until, now] = batch[0]!.values as [string, string, string, string, string, number, number];
      return (await this.insertKey(scope, key, fp, owner, until, now)) ? new Set([owner]) : new Set();
    }
    const rowsSql = sql.join(batch.map((p) => sql`(${sql.join(p.values)})`));
    const cols = sql.raw(KEY_COLUMNS.join(', '));
    if (this.dialect.capabilities.returning) {
      const r = await sql<{ owner: string }>`INSERT INTO idempotency_keys (${cols}) VALUES ${rowsSql} ON CONFLICT (campaign_id, idem_key) DO NOTHING RETURNING owner`.execute(this.db);
      return new Set(r.rows.map((x) => String(x.owner)));
    }
    // MySQL: rows already there are left as they are; the owners read back are the new rows.
    await sql`INSERT INTO idempotency_keys (${cols}) VALUES ${rowsSql} ON DUPLICATE KEY UPDATE campaign_id = campaign_id`.execute(this.db);
    const pairs = sql.join(batch.map((p) => sql`(${p.values[0]}, ${p.values[1]})`));
    const r = await sql<{ owner: string }>`SELECT owner FROM idempotency_keys WHERE (campaign_id, idem_key) IN (${pairs})`.execute(this.db);
    const present = new Set(r.rows.map((x) => String(x.owner)));
    return new Set(batch.filter((p) => present.has(p.owner)).map((p) => p.owner));
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

/**
 * A named lease in allot_leases: background work that one instance at a time should do (the
 * scheduled key purge) runs only while its holder has it. Taken when it has expired (or on the
 * first insert of its row), extended by its holder only, so two holders never overlap as long
 * as a holder checks `extend` between steps and the instances' clocks agree to within a lease.
 */
export class SqlLease {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(private readonly db: Kysely<any>, readonly name: string) {}

  /** Takes the lease until `untilMs` when it is free (expired at `nowMs`); true when taken. */
  take(holder: string, nowMs: number, untilMs: number): Promise<boolean> {
    return guarded(async () => {
      const n = await affected(this.db, sql`UPDATE allot_leases SET holder = ${holder}, expires_at = ${untilMs}, taken = taken + 1
        WHERE name = ${this.name} AND expires_at <= ${nowMs}`);
      if (n === 1) return true;
      // No row yet: the first insert takes it; a row that is there and held is not ours.
      try {
        await sql`INSERT INTO allot_leases (name, holder, expires_at, taken) VALUES (${this.name}, ${holder}, ${untilMs}, 1)`.execute(this.db);
        return true;
      } catch (err) {
        if (isUniqueViolation(err)) return false;
        throw err;
      }
    });
  }

  /** Moves the end of `holder`'s lease to `untilMs` (later to keep it, or to when the work is
   * next due); false when the lease is no longer this holder's. */
  extend(holder: string, untilMs: number): Promise<boolean> {
    return guarded(async () => {
      const n = await affected(this.db, sql`UPDATE allot_leases SET expires_at = ${untilMs} WHERE name = ${this.name} AND holder = ${holder}`);
      if (n === 1) return true;
      // MySQL counts changed rows only: an update to the value already there reads 0.
      const r = await sql<{ holder: string }>`SELECT holder FROM allot_leases WHERE name = ${this.name}`.execute(this.db);
      return r.rows[0]?.holder === holder;
    });
  }
}
