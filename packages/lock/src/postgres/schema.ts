// The PostgreSQL lock backend's schema: two tables, the fence sequence and one versioned
// function per atomic operation (the counterpart of the Redis Lua scripts). Every name carries
// the schema and prefix, so namespaces sharing a database never touch each other's rows or locks.

/** Bumped whenever a function's behaviour changes, so two releases sharing a database never run each other's code. */
export const PG_LOCK_FUNCTIONS_VERSION = 1;

const IDENT = /^[a-z_][a-z0-9_]*$/;

export interface PgLockNames {
  /** "schema"."prefixleases" etc., ready to splice into SQL */
  leases: string;
  waiters: string;
  fenceSeq: string;
  attempt: string;
  extend: string;
  release: string;
  leave: string;
  wake: string;
  /** NOTIFY channel (unquoted) */
  channel: string;
  /** text hashed into the advisory-lock keys of this namespace */
  namespace: string;
  schema: string;
  prefix: string;
}

export function pgLockNames(schema: string, prefix: string): PgLockNames {
  if (!IDENT.test(schema) || schema.length > 63) throw new RangeError(`schema must match ${IDENT} (at most 63 characters), got ${JSON.stringify(schema)}`);
  if (!IDENT.test(prefix) || prefix.length > 40) throw new RangeError(`prefix must match ${IDENT} (at most 40 characters), got ${JSON.stringify(prefix)}`);
  const q = (name: string) => `"${schema}"."${prefix}${name}"`;
  const v = `_v${PG_LOCK_FUNCTIONS_VERSION}`;
  return {
    leases: q('leases'),
    waiters: q('waiters'),
    fenceSeq: q('fence_seq'),
    attempt: q(`attempt${v}`),
    extend: q(`extend${v}`),
    release: q(`release${v}`),
    leave: q(`leave${v}`),
    wake: q(`wake${v}`),
    channel: `${prefix}wake`,
    namespace: `${schema}.${prefix}`,
    schema,
    prefix,
  };
}

/** ms from a positive interval, at least 1 */
const ms = (interval: string) => `GREATEST(1, CEIL(EXTRACT(EPOCH FROM (${interval})) * 1000))::bigint`;

/**
 * Idempotent DDL, in order. fenceStart: the sequence's first value when it is created (an
 * existing sequence is never touched). Run it yourself as a migration when the lock's database
 * user may not create objects (createSchema: false).
 */
export function pgLockSchemaSql(n: PgLockNames, fenceStart = 1n): string[] {
  const ns = `'${n.namespace}'`; // validated identifiers only: safe inside a literal
  const keyLock = `PERFORM pg_advisory_xact_lock(hashtextextended(p_key, hashtext(${ns})));`;
  // Waiter bookkeeping and releases commit asynchronously (no WAL flush wait): a crash can only
  // make a lock look held until its TTL. Acquisitions and extensions commit synchronously.
  const asyncCommit = `PERFORM set_config('synchronous_commit', 'off', true);`;
  const enqueue = `${asyncCommit}
        INSERT INTO ${n.waiters} (key, owner, expires_at) VALUES (p_key, p_owner, t + p_waiter_ttl_ms * interval '1 millisecond')
        ON CONFLICT (key, owner) DO UPDATE SET expires_at = EXCLUDED.expires_at;`;
  return [
    `CREATE TABLE IF NOT EXISTS ${n.leases} (
      key text PRIMARY KEY,
      owner text NOT NULL,
      token integer NOT NULL,
      fence bigint NOT NULL,
      expires_at timestamptz NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS ${n.waiters} (
      key text NOT NULL,
      owner text NOT NULL,
      seq bigint GENERATED ALWAYS AS IDENTITY,
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (key, owner))`,
    `CREATE INDEX IF NOT EXISTS "${n.prefix}waiters_seq" ON ${n.waiters} (key, seq)`,
    `CREATE SEQUENCE IF NOT EXISTS ${n.fenceSeq} AS bigint START WITH ${fenceStart.toString()}`,
    // Wakes the head of the key's waiter queue (payload "<owner> <ms left on its queue lease>"),
    // or anyone ("*") when only expired waiters were left. NOTIFY is delivered on commit.
    `CREATE OR REPLACE FUNCTION ${n.wake}(p_key text, t timestamptz) RETURNS void LANGUAGE plpgsql AS $fn$
    DECLARE h record; n integer;
    BEGIN
      DELETE FROM ${n.waiters} WHERE key = p_key AND expires_at <= t;
      GET DIAGNOSTICS n = ROW_COUNT;
      SELECT owner, expires_at INTO h FROM ${n.waiters} WHERE key = p_key ORDER BY seq LIMIT 1;
      IF FOUND THEN
        PERFORM pg_notify('${n.channel}', json_build_array(p_key, h.owner || ' ' || ${ms('h.expires_at - t')})::text);
      ELSIF n > 0 THEN
        PERFORM pg_notify('${n.channel}', json_build_array(p_key, '*')::text);
      END IF;
    END $fn$`,
    // Returns (0, fence) when acquired (a repeated attempt by the holder renews and keeps its
    // fence), (-1, ms left on the holder's lease, whether the caller heads the queue) when held, (-4, ms left on the head's queue
    // lease) when a fair caller must wait behind a live head. A lease is held while it has not
    // expired (database clock) AND its holder's session token is still locked by a live session.
    `CREATE OR REPLACE FUNCTION ${n.attempt}(p_key text, p_owner text, p_token integer, p_ttl_ms bigint, p_fair boolean, p_waiter_ttl_ms bigint, OUT code integer, OUT val bigint, OUT head boolean)
    LANGUAGE plpgsql AS $fn$
    DECLARE t timestamptz; l record; h record;
    BEGIN
      ${keyLock}
      t := clock_timestamp();
      SELECT owner, token, fence, expires_at INTO l FROM ${n.leases} WHERE key = p_key;
      IF FOUND AND l.expires_at > t THEN
        IF l.owner = p_owner THEN
          UPDATE ${n.leases} SET expires_at = t + p_ttl_ms * interval '1 millisecond', token = p_token WHERE key = p_key;
          code := 0; val := l.fence; RETURN;
        END IF;
        -- the try succeeds only when no session holds the holder's token: its connection is gone
        IF NOT pg_try_advisory_xact_lock(hashtext(${ns}), l.token) THEN
          ${enqueue}
          -- only the queue's head polls for a dead holder often; the others are woken in turn
          head := p_owner = (SELECT owner FROM ${n.waiters} WHERE key = p_key AND expires_at > t ORDER BY seq LIMIT 1);
          code := -1; val := ${ms('l.expires_at - t')}; RETURN;
        END IF;
      END IF;
      SELECT owner, expires_at INTO h FROM ${n.waiters} WHERE key = p_key AND expires_at > t ORDER BY seq LIMIT 1;
      IF FOUND AND h.owner <> p_owner AND p_fair THEN
        ${enqueue}
        code := -4; val := ${ms('h.expires_at - t')}; RETURN;
      END IF;
      DELETE FROM ${n.waiters} WHERE key = p_key AND (owner = p_owner OR expires_at <= t);
      val := nextval('${n.fenceSeq}');
      INSERT INTO ${n.leases} (key, owner, token, fence, expires_at) VALUES (p_key, p_owner, p_token, val, t + p_ttl_ms * interval '1 millisecond')
        ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, token = EXCLUDED.token, fence = EXCLUDED.fence, expires_at = EXCLUDED.expires_at;
      code := 0;
    END $fn$`,
    // 0 extended, -2 held by another owner, -6 not held (expired or released)
    `CREATE OR REPLACE FUNCTION ${n.extend}(p_key text, p_owner text, p_token integer, p_ttl_ms bigint) RETURNS integer
    LANGUAGE plpgsql AS $fn$
    DECLARE t timestamptz; l record;
    BEGIN
      ${keyLock}
      t := clock_timestamp();
      SELECT owner, expires_at INTO l FROM ${n.leases} WHERE key = p_key;
      IF NOT FOUND OR l.expires_at <= t THEN RETURN -6; END IF;
      IF l.owner <> p_owner THEN RETURN -2; END IF;
      UPDATE ${n.leases} SET expires_at = t + p_ttl_ms * interval '1 millisecond', token = p_token WHERE key = p_key;
      RETURN 0;
    END $fn$`,
    // 0 released (waiters woken), -2 held by another owner, -6 not held
    `CREATE OR REPLACE FUNCTION ${n.release}(p_key text, p_owner text) RETURNS integer
    LANGUAGE plpgsql AS $fn$
    DECLARE t timestamptz; l record;
    BEGIN
      ${keyLock}
      t := clock_timestamp();
      SELECT owner, expires_at INTO l FROM ${n.leases} WHERE key = p_key;
      IF NOT FOUND THEN RETURN -6; END IF;
      IF l.owner <> p_owner THEN
        IF l.expires_at <= t THEN RETURN -6; END IF;
        RETURN -2;
      END IF;
      ${asyncCommit}
      DELETE FROM ${n.leases} WHERE key = p_key;
      PERFORM ${n.wake}(p_key, t);
      IF l.expires_at <= t THEN RETURN -6; END IF;
      RETURN 0;
    END $fn$`,
    // leaves the waiter queue; wakes the next waiter if the lock is free
    `CREATE OR REPLACE FUNCTION ${n.leave}(p_key text, p_owner text) RETURNS void
    LANGUAGE plpgsql AS $fn$
    DECLARE t timestamptz;
    BEGIN
      ${keyLock}
      t := clock_timestamp();
      ${asyncCommit}
      DELETE FROM ${n.waiters} WHERE key = p_key AND owner = p_owner;
      IF NOT FOUND THEN RETURN; END IF;
      IF NOT EXISTS (SELECT 1 FROM ${n.leases} WHERE key = p_key AND expires_at > t) THEN
        PERFORM ${n.wake}(p_key, t);
      END IF;
    END $fn$`,
  ];
}
