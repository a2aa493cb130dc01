// LockBackend on PostgreSQL: lease rows (owner, fence, expiry on the database clock) changed by
// one function call per operation under a transaction-scoped advisory lock on the key, fences
// from a sequence, and a session advisory lock per provider (its "token") whose loss frees that
// provider's leases at once. Wake-ups are LISTEN/NOTIFY on the provider's dedicated connection.
import { randomInt } from 'node:crypto';
import type { FenceAnchor } from '../fence/fence-anchor.ts';
import { ScriptCode } from '../codes.ts';
import { LockBackendError, LockError } from '../errors.ts';
import { boundedResource } from '../resource.ts';
import type { AttemptResult, ExtendResult, LockBackend, LockEvent, ReleaseResult, WakeSubscription } from '../types.ts';
import type { PgNotification, PgPoolLike, PgSessionClient } from './client.ts';
import { pgLockNames, pgLockSchemaSql, type PgLockNames } from './schema.ts';

const MAX_TOKEN = 2 ** 31 - 1;
const TOKEN_TRIES = 8;
/** fences issued after an anchor epoch E start at E << 40, above every fence of a Redis backend on E - 1 */
const EPOCH_SHIFT = 40n;
const MAX_BIGINT = (1n << 63n) - 1n;

export interface PostgresLockBackendOptions {
  pool: PgPoolLike;
  /** an existing schema; default "public" */
  schema?: string;
  /** table/function name prefix ([a-z_][a-z0-9_]*); default "allot_lock_" */
  prefix?: string;
  /** create the tables, sequence and functions on first use (CREATE … IF NOT EXISTS); default true.
   * With false, run pgLockSchemaSql() as a migration first. */
  createSchema?: boolean;
  /** consulted once, when the fence sequence is created: it then starts at epoch << 40, above the
   * fences of a Redis backend that used the same anchor (switching LOCKS_URL keeps fences increasing) */
  fenceAnchor?: FenceAnchor;
  /** the head of a key's waiter queue re-checks a held lock at least this often (default 1000 ms;
   * other waiters once per waiter lease): a holder whose connection died sends no wake-up, and its
   * lease is free as soon as its session is gone */
  deadHolderCheckMs?: number;
  emit?: (e: LockEvent) => void;
}

interface Session {
  client: PgSessionClient;
  token: number;
  dead: boolean;
  listening: Promise<void> | undefined;
}

function extendResult(code: number): ExtendResult {
  return code === ScriptCode.ok ? 'extended' : code === ScriptCode.notOwner ? 'notOwner' : 'notHeld';
}
function releaseResult(code: number): ReleaseResult {
  return code === ScriptCode.ok ? 'released' : code === ScriptCode.notOwner ? 'notOwner' : 'notHeld';
}

export class PostgresLockBackend implements LockBackend {
  readonly name = 'postgres';
  readonly names: PgLockNames;
  readonly #pool: PgPoolLike;
  readonly #createSchema: boolean;
  readonly #anchor: FenceAnchor | undefined;
  readonly #emit: (e: LockEvent) => void;
  readonly #deadHolderCheckMs: number;
  readonly #subs = new Map<string, Set<(payload: string) => void>>();
  #ready: Promise<number> | undefined;
  #session: Session | undefined;
  #opening: Promise<Session> | undefined;
  #closed = false;

  constructor(opts: PostgresLockBackendOptions) {
    this.#pool = opts.pool;
    this.names = pgLockNames(opts.schema ?? 'public', opts.prefix ?? 'allot_lock_');
    this.#createSchema = opts.createSchema ?? true;
    this.#anchor = opts.fenceAnchor;
    this.#emit = opts.emit ?? (() => undefined);
    this.#deadHolderCheckMs = opts.deadHolderCheckMs ?? 1_000;
  }

  /** Creates the schema objects if needed (once) and resolves to the namespace's advisory lock space. */
  setup(): Promise<number> {
    this.#ready ??= this.#setup().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  async #setup(): Promise<number> {
    const n = this.names;
    if (this.#createSchema) {
      const present = await this.#pool.query<{ seq: string | null; fn: string | null }>('SELECT to_regclass($1)::text AS seq, to_regprocedure($2)::text AS fn', [n.fenceSeq, `${n.leave}(text,text)`]);
      if (!present.rows[0]?.seq || !present.rows[0]?.fn) await this.#createObjects();
    }
    const r = await this.#pool.query<{ space: number }>('SELECT hashtext($1) AS space', [n.namespace]);
    return r.rows[0]!.space;
  }

  async #createObjects(): Promise<void> {
    const n = this.names;
    const c = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      // concurrent first uses (several instances starting at once) create the objects one at a time
      await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`allot-lock-setup:${n.namespace}`]);
      let start = 1n;
      const seq = await c.query<{ seq: string | null }>('SELECT to_regclass($1)::text AS seq', [n.fenceSeq]);
      if (!seq.rows[0]?.seq && this.#anchor) {
        const epoch = await this.#anchor.nextEpoch();
        start = epoch << EPOCH_SHIFT;
        if (epoch < 1n || start > MAX_BIGINT) throw new Error(`fence anchor epoch ${epoch} does not fit a bigint sequence (epoch << 40 must be < 2^63)`);
      }
      for (const stmt of pgLockSchemaSql(n, start)) await c.query(stmt);
      await c.query('COMMIT');
    } catch (error) {
      broken = error instanceof Error ? error : new Error(String(error));
      await c.query('ROLLBACK').catch(() => undefined);
      throw new Error(`cannot create the lock tables ${n.leases}, ${n.waiters} and sequence ${n.fenceSeq} (does schema "${n.schema}" exist and may this user create objects in it? else run pgLockSchemaSql() as a migration and pass createSchema: false): ${broken.message}`, { cause: error });
    } finally {
      c.release(broken ?? false);
    }
  }

  /** Creates the schema objects if needed and opens the session (takes the token): afterwards an
   * acquisition is one round trip. */
  async open(): Promise<void> {
    await this.#sessionOf('*', 'open');
  }

  /** The provider's session: a dedicated connection holding the token (a session advisory lock). */
  #sessionOf(key: string, op: string): Promise<Session> {
    const s = this.#session;
    if (s && !s.dead) return Promise.resolve(s);
    if (this.#closed) return Promise.reject(new LockBackendError(key, op, new Error('the PostgreSQL lock provider is closed')));
    this.#opening ??= this.#openSession().finally(() => (this.#opening = undefined));
    return this.#opening;
  }

  async #openSession(): Promise<Session> {
    const space = await this.setup();
    const client = await this.#pool.connect();
    const s: Session = { client, token: 0, dead: false, listening: undefined };
    client.on('error', (error) => this.#lost(s, error));
    client.on('end', () => this.#lost(s, new Error('connection ended')));
    client.on('notification', (m) => this.#onNotification(m));
    try {
      for (let i = 0; i < TOKEN_TRIES && !s.token; i++) {
        const token = randomInt(1, MAX_TOKEN);
        const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::integer, $2::integer) AS ok', [space, token]);
        if (r.rows[0]?.ok) s.token = token;
      }
      if (!s.token) throw new Error(`no free session token after ${TOKEN_TRIES} tries`);
    } catch (error) {
      this.#lost(s, error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    if (this.#closed) {
      this.#lost(s, new Error('closed'));
      throw new Error('the PostgreSQL lock provider is closed');
    }
    this.#session = s;
    // waiters subscribed before a reconnect listen again
    if (this.#subs.size > 0) this.#listen(s).catch((error: unknown) => this.#emit({ type: 'backendError', error }));
    return s;
  }

  /** The session's connection failed: its token is gone, so its leases are free for others. */
  #lost(s: Session, error: Error): void {
    if (s.dead) return;
    s.dead = true;
    if (this.#session === s) this.#session = undefined;
    try {
      s.client.release(error);
    } catch {
      // already released
    }
    if (!this.#closed) this.#emit({ type: 'backendError', error: new LockBackendError('*', 'session', error) });
    // Wake every waiter: notifications are lost until the next session listens.
    for (const ls of this.#subs.values()) for (const l of ls) queueMicrotask(() => l('*'));
  }

  #listen(s: Session): Promise<void> {
    s.listening ??= s.client.query(`LISTEN "${this.names.channel}"`).then(
      () => undefined,
      (error: unknown) => {
        s.listening = undefined;
        throw error;
      },
    );
    return s.listening;
  }

  #onNotification(m: PgNotification): void {
    if (m.channel !== this.names.channel || !m.payload) return;
    let key: unknown;
    let payload: unknown;
    try {
      [key, payload] = JSON.parse(m.payload) as unknown[];
    } catch {
      return;
    }
    const ls = typeof key === 'string' ? this.#subs.get(key) : undefined;
    if (!ls || typeof payload !== 'string') return;
    for (const l of ls) l(payload);
  }

  #fail(key: string, op: string, error: unknown): never {
    throw error instanceof LockError ? error : new LockBackendError(key, op, error);
  }

  async attempt(req: { key: string; ownerId: string; ttlMs: number; fair: boolean; waiterTtlMs: number; queued: boolean }): Promise<AttemptResult> {
    try {
      const s = await this.#sessionOf(req.key, 'acquire');
      const r = await this.#pool.query<{ code: number; val: string; head: boolean | null }>(`SELECT code, val, head FROM ${this.names.attempt}($1, $2, $3, $4, $5, $6)`, [
        boundedResource(req.key),
        req.ownerId,
        s.token,
        req.ttlMs,
        req.fair,
        req.waiterTtlMs,
      ]);
      const row = r.rows[0]!;
      if (row.code === ScriptCode.ok) return { acquired: true, fence: BigInt(row.val) };
      const left = Math.max(1, Number(row.val));
      if (row.code !== ScriptCode.locked) return { acquired: false, retryAfterMs: left };
      // A holder whose connection died sends no wake-up: the queue's head re-checks every
      // deadHolderCheckMs, the others (woken in turn) at least once per waiter lease.
      const check = row.head ? this.#deadHolderCheckMs : Math.max(this.#deadHolderCheckMs, req.waiterTtlMs);
      return { acquired: false, retryAfterMs: Math.min(left, check) };
    } catch (error) {
      return this.#fail(req.key, 'acquire', error);
    }
  }

  async extend(key: string, ownerId: string, ttlMs: number): Promise<ExtendResult> {
    try {
      const s = await this.#sessionOf(key, 'extend');
      const r = await this.#pool.query<{ code: number }>(`SELECT ${this.names.extend}($1, $2, $3, $4) AS code`, [boundedResource(key), ownerId, s.token, ttlMs]);
      return extendResult(r.rows[0]!.code);
    } catch (error) {
      return this.#fail(key, 'extend', error);
    }
  }

  async release(key: string, ownerId: string): Promise<ReleaseResult> {
    try {
      await this.setup();
      const r = await this.#pool.query<{ code: number }>(`SELECT ${this.names.release}($1, $2) AS code`, [boundedResource(key), ownerId]);
      return releaseResult(r.rows[0]!.code);
    } catch (error) {
      return this.#fail(key, 'release', error);
    }
  }

  async refreshWaiter(key: string, ownerId: string, waiterTtlMs: number): Promise<void> {
    try {
      await this.#pool.query(`UPDATE ${this.names.waiters} SET expires_at = clock_timestamp() + $3 * interval '1 millisecond' WHERE key = $1 AND owner = $2`, [boundedResource(key), ownerId, waiterTtlMs]);
    } catch (error) {
      this.#fail(key, 'refreshWaiter', error);
    }
  }

  async leaveQueue(key: string, ownerId: string): Promise<void> {
    try {
      await this.setup();
      await this.#pool.query(`SELECT ${this.names.leave}($1, $2)`, [boundedResource(key), ownerId]);
    } catch (error) {
      this.#fail(key, 'leaveQueue', error);
    }
  }

  async subscribe(key: string, onWake: (payload: string) => void): Promise<WakeSubscription> {
    const k = boundedResource(key);
    let ls = this.#subs.get(k);
    if (!ls) this.#subs.set(k, (ls = new Set()));
    const listener = (p: string) => onWake(p);
    ls.add(listener);
    const close = () => {
      ls.delete(listener);
      if (ls.size === 0 && this.#subs.get(k) === ls) this.#subs.delete(k);
    };
    try {
      await this.#listen(await this.#sessionOf(key, 'subscribe'));
    } catch (error) {
      close();
      throw error;
    }
    return { close };
  }

  /** Destroys the dedicated connection (its token and LISTEN go with it); the pool is the caller's. */
  async close(): Promise<void> {
    this.#closed = true;
    const opening = this.#opening;
    if (opening) await opening.catch(() => undefined);
    const s = this.#session;
    this.#subs.clear();
    if (s) this.#lost(s, new Error('closed'));
  }

  /** pid of the dedicated connection's backend (tests, diagnostics); undefined before first use */
  async sessionPid(): Promise<number | undefined> {
    const s = this.#session;
    if (!s || s.dead) return undefined;
    return (await s.client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  }
}
