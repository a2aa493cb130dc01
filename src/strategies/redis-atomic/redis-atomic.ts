// `redis-atomic`: one Lua script (lua/claimUnits-4.lua) checks the user's count, takes a unit from
// this instance's leased block (else another instance's) and counts the claim, in Redis; the claims then commit to SQL in
// batches (group-commit's transaction plus the lease guard), and a 201 is answered only after
// that commit (`durable` mode). Redis only holds units SQL granted (redis_leases, with a fence),
// so a FLUSHALL, a restart or a failover can never issue more than SQL granted, and the SQL write
// still guards every user's limits. The in-process books of each lease (granted, used, in flight)
// decide whether a unit Redis handed out really exists; Redis's copy is a mirror refilled from them.
import { randomUUID } from 'node:crypto';
import type { RedisClient } from '@allot/lock';
import type { Claim } from '../../core/claim.ts';
import { AllotError } from '../../core/errors.ts';
import type { BatchMember, MemberVerdict } from '../../ports/claim-batch.ts';
import type { ClaimStore } from '../../ports/claim-store.ts';
import { KeyExistsError, type ClaimRequest, type ClaimStrategy, type StrategyOutcome } from '../../ports/claim-strategy.ts';
import { collectCompletion } from '../collect-completion.ts';
import { retryPolicy, type StrategyDeps } from '../deps.ts';
import { newClaim } from '../outcome.ts';
import { retrying } from '../retry.ts';
import type { RedisAtomicDeps } from './deps.ts';
import type { LeaseRef } from './lease-store.ts';
import { CLAIM_UNITS, runAtomicScript, UNDO_CLAIM } from './scripts.ts';

export const REDIS_ATOMIC_STRATEGY = 'redis-atomic';

const REBUILD_PAGE = 500;
/** most claims in one script call */
const MAX_TAKES = 256;
/** how long a refill that found nothing in SQL is believed */
const DRY_MS = 20;

/** One lease's books: what SQL granted it, what committed under it, what Redis handed out that
 * has not committed yet. */
interface Lease {
  ref: LeaseRef;
  granted: number;
  used: number;
  inflight: number;
}

interface Waiter {
  req: ClaimRequest;
  lease: Lease;
  resolve(v: MemberVerdict): void;
  reject(err: unknown): void;
}

/** One campaign on this instance. */
interface Block {
  campaignId: string;
  lease: Lease | null;
  /** the books may be stale (an outcome not learned): reread the lease before trusting them */
  dirty: boolean;
  refilling: Promise<boolean> | null;
  leasedRead: Promise<number> | null;
  /** claims waiting for the next script call (flushTakes) */
  takes: Take[];
  takesScheduled: boolean;
  truingUp: Promise<boolean> | null;
  /** until when SQL is known to have no unit to grant (ms since the epoch) */
  dryUntil: number;
  rebuilding: Promise<void> | null;
  queue: Waiter[];
  running: boolean;
  /** other instances' leases this one took units from, by id and fence */
  foreign: Map<string, Lease>;
}

/** A claim waiting for the Redis step. */
interface Take {
  userId: string;
  limit: number;
  resolve(r: { raw: unknown[]; lease: Lease }): void;
  reject(err: unknown): void;
}

/** One claim's passes: since when it waits for units in flight, and whether it had the blocks
 * trued up from SQL. */
interface Attempt {
  inflightSince: number | null;
  trued: boolean;
}

/** Thrown to a member whose batch the lease guard refused: run the claim again. */
class Again extends Error {}

export interface RedisAtomicStrategy extends ClaimStrategy {
  /** Waits for the claims in flight, then closes this instance's leases, giving their unused units back. */
  close(): Promise<void>;
}

const available = (l: Lease): number => l.granted - l.used - l.inflight;

export function createRedisAtomic(deps: StrategyDeps): RedisAtomicStrategy {
  const ra: RedisAtomicDeps | undefined = deps.redisAtomic;
  if (ra?.mode === 'fast') throw new AllotError('VALIDATION_FAILED', 'redis-atomic `fast` mode (201 after Redis, write-behind to SQL) is not built yet; use `durable` (docs/strategies.md)');
  const policy = retryPolicy(deps);
  const blockMax = ra?.blockMax ?? 1024;
  // A block is refilled in the background once fewer units than this are left in it.
  const lowWater = Math.max(1, Math.floor(blockMax / 2));
  const ttlMs = ra?.leaseTtlMs ?? 30_000;
  const maxBatch = ra?.maxBatch ?? 256;
  const settleMs = ra?.settleMs ?? 10_000;
  const inflightWaitMs = ra?.inflightWaitMs ?? 2_000;
  const blocks = new Map<string, Block>();
  let client: Promise<RedisClient> | null = null;
  let closed = false;

  const need = (): { ra: RedisAtomicDeps; redis: () => Promise<RedisClient> } => {
    const connect = ra?.redis;
    if (!ra || !connect) throw new AllotError('UNAVAILABLE', 'redis-atomic needs Redis: set REDIS_URL (or a redis:// LOCKS_URL); nothing was issued', { outcome: 'nothing-issued', backend: 'redis' });
    return {
      ra,
      redis: () => {
        client ??= connect().then(guarded, (err: unknown) => {
          client = null;
          throw redisDown(err);
        });
        return client;
      },
    };
  };

  const keys = (prefix: string, campaignId: string, lease: LeaseRef | null) => {
    const base = `${prefix}{${campaignId}}`;
    return { marker: `${base}:ready`, users: `${base}:users`, lease: `${base}:lease:${lease?.id ?? ''}`, leases: `${base}:leases` };
  };

  const redisDown = (err: unknown): AllotError =>
    err instanceof AllotError ? err : new AllotError('UNAVAILABLE', `Redis did not answer (redis-atomic): ${String((err as Error)?.message ?? err)}; nothing was issued`, { outcome: 'nothing-issued', backend: 'redis' }, { cause: err });

  /** Redis failures as UNAVAILABLE, nothing issued (Redis is only asked before the SQL write). */
  const guarded = (c: RedisClient): RedisClient => ({
    ...c,
    evalsha: (sha, k, args) => c.evalsha(sha, k, args).catch((err: unknown) => {
      throw /NOSCRIPT/.test(String((err as Error)?.message)) ? err : redisDown(err);
    }),
    eval: (src, k, args) => c.eval(src, k, args).catch((err: unknown) => {
      throw redisDown(err);
    }),
    scriptLoad: (src) => c.scriptLoad(src).catch((err: unknown) => {
      throw redisDown(err);
    }),
    command: (args) => c.command(args).catch((err: unknown) => {
      throw redisDown(err);
    }),
    quit: () => c.quit(),
  });

  const blockOf = (campaignId: string): Block => {
    let b = blocks.get(campaignId);
    if (!b) blocks.set(campaignId, (b = { campaignId, lease: null, dirty: false, refilling: null, takes: [], takesScheduled: false, leasedRead: null, truingUp: null, dryUntil: 0, rebuilding: null, queue: [], running: false, foreign: new Map() }));
    return b;
  };

  /** Redis's copy of the lease: what the books say is left. */
  const install = async (env: ReturnType<typeof need>, b: Block): Promise<void> => {
    const l = b.lease!;
    const k = keys(env.ra.prefix, b.campaignId, l.ref);
    const r = await env.redis();
    await r.command(['HSET', k.lease, 'id', l.ref.id, 'fence', l.ref.fence, 'left', Math.max(0, available(l))]);
    await r.command(['SADD', k.leases, k.lease]);
  };

  /** Makes the books match SQL: opens a lease when there is none (or it was closed or reclaimed). */
  const sync = async (env: ReturnType<typeof need>, b: Block): Promise<void> => {
    const row = b.lease ? await env.ra.store.readLease(b.lease.ref.id) : null;
    if (b.lease && row && row.state === 'open' && row.fence === b.lease.ref.fence) {
      b.lease.granted = row.granted;
      b.lease.used = row.used;
    } else {
      const ref = { id: randomUUID(), campaignId: b.campaignId, fence: 1 };
      await env.ra.store.openLease(ref, Date.now(), ttlMs);
      b.lease = { ref, granted: 0, used: 0, inflight: 0 };
    }
    b.dirty = false;
  };

  /** Puts units in Redis's block. While Redis holds this lease's block it is the authority on
   * what is left (other instances take from it too): only new units from SQL are added. A block
   * Redis lost (restart, FLUSHALL), or one the SQL lease guard found over-full, is set again from
   * the books as SQL has them. False: sold out. */
  const refill = async (env: ReturnType<typeof need>, b: Block): Promise<boolean> => {
    try {
      const resync = b.dirty || !b.lease;
      await sync(env, b);
      let l = b.lease!;
      const r = await env.redis();
      const k = keys(env.ra.prefix, b.campaignId, l.ref);
      const fence = await r.command(['HGET', k.lease, 'fence']);
      if (resync || String(fence) !== String(l.ref.fence)) {
        await install(env, b);
        if (available(l) > 0) return true;
      }
      let n = await env.ra.store.grant(l.ref, blockMax, Date.now(), ttlMs);
      if (n === 0) {
        // Closed or reclaimed under us? Then a new lease, and ask again.
        await sync(env, b);
        if (b.lease !== l) {
          l = b.lease!;
          await install(env, b);
          n = await env.ra.store.grant(l.ref, blockMax, Date.now(), ttlMs);
        }
      }
      // Units stranded by an instance that died are reclaimed once its lease expired.
      if (n === 0) {
        const back = await env.ra.store.reclaimExpired(b.campaignId, Date.now(), [l.ref.id]);
        for (const c of back) {
          const ck = keys(env.ra.prefix, b.campaignId, { id: c.id, campaignId: b.campaignId, fence: 0 });
          await r.command(['SREM', ck.leases, ck.lease]);
          await r.command(['DEL', ck.lease]);
        }
        if (back.some((c) => c.units > 0)) n = await env.ra.store.grant(l.ref, blockMax, Date.now(), ttlMs);
      }
      if (n === 0) return restoreOthers(env, b);
      l.granted += n;
      const kk = keys(env.ra.prefix, b.campaignId, l.ref);
      await r.command(['HINCRBY', kk.lease, 'left', n]);
      await r.command(['SADD', kk.leases, kk.lease]);
      return true;
    } catch (err) {
      b.dirty = true;
      throw err;
    }
  };
  /** After a FLUSHALL or a restart, another instance's block is back in Redis only when that
   * instance next claims (it may be idle): before answering SOLD_OUT, put back the blocks of open
   * leases that Redis lost, from SQL (granted - used). Their owners' claims in flight make that
   * too high; the lease guard then refuses the excess (a unit too many in Redis costs a retry,
   * one too few would be stock never sold). True: some block got units. */
  const restoreOthers = async (env: ReturnType<typeof need>, b: Block): Promise<boolean> => {
    const r = await env.redis();
    let any = false;
    for (const row of await env.ra.store.openLeases(b.campaignId)) {
      if (row.id === b.lease?.ref.id || row.granted - row.used <= 0) continue;
      const k = keys(env.ra.prefix, b.campaignId, row);
      if (Number(await r.command(['EXISTS', k.lease])) === 1) continue;
      await r.command(['HSET', k.lease, 'id', row.id, 'fence', row.fence, 'left', row.granted - row.used]);
      await r.command(['SADD', k.leases, k.lease]);
      any = true;
    }
    return any;
  };
  /** Sets every open lease's block in Redis to at least what SQL says it has left (granted -
   * used; minus this instance's claims in flight for its own lease). Claims in flight elsewhere
   * make that too high, which the lease guard corrects; too low would be stock never sold. True:
   * some block got units. */
  const trueUp = async (env: ReturnType<typeof need>, b: Block): Promise<boolean> => {
    const r = await env.redis();
    let raised = false;
    for (const row of await env.ra.store.openLeases(b.campaignId)) {
      const own = row.id === b.lease?.ref.id && row.fence === b.lease.ref.fence;
      const target = row.granted - row.used - (own ? b.lease!.inflight : 0);
      if (target <= 0) continue;
      const k = keys(env.ra.prefix, b.campaignId, row);
      const [fence, left] = (await r.command(['HMGET', k.lease, 'fence', 'left'])) as Array<string | null>;
      if (fence === String(row.fence) && Number(left ?? 0) >= target) continue;
      await r.command(['HSET', k.lease, 'id', row.id, 'fence', row.fence, 'left', target]);
      await r.command(['SADD', k.leases, k.lease]);
      raised = true;
    }
    return raised;
  };
  const trueUpOnce = (env: ReturnType<typeof need>, b: Block): Promise<boolean> => {
    b.truingUp ??= trueUp(env, b).finally(() => {
      b.truingUp = null;
    });
    return b.truingUp;
  };

  /** `campaigns.leased`, read once for every claim of this instance waiting at that moment. */
  const leasedOnce = (env: ReturnType<typeof need>, b: Block): Promise<number> => {
    b.leasedRead ??= env.ra.store.leased(b.campaignId).finally(() => {
      b.leasedRead = null;
    });
    return b.leasedRead;
  };
  const refillOnce = (env: ReturnType<typeof need>, b: Block): Promise<boolean> => {
    b.refilling ??= refill(env, b).finally(() => {
      b.refilling = null;
    });
    return b.refilling;
  };

  /** Rebuilds the campaign's Redis state from SQL (the marker was missing): the users' committed
   * counts, then the marker. Leases are refilled from the books by the next claims. */
  const rebuild = async (env: ReturnType<typeof need>, b: Block): Promise<void> => {
    const r = await env.redis();
    const k = keys(env.ra.prefix, b.campaignId, null);
    let after: string | null = null;
    for (;;) {
      const page = await env.ra.store.userTotals(b.campaignId, after, REBUILD_PAGE);
      if (page.length > 0) await r.command(['HSET', k.users, ...page.flatMap((u) => [u.userId, u.total])]);
      if (page.length < REBUILD_PAGE) break;
      after = page[page.length - 1]!.userId;
    }
    await r.command(['SET', k.marker, String(Date.now())]);
  };
  const rebuildOnce = (env: ReturnType<typeof need>, b: Block): Promise<void> => {
    b.rebuilding ??= rebuild(env, b).finally(() => {
      b.rebuilding = null;
    });
    return b.rebuilding;
  };

  const undo = async (env: ReturnType<typeof need>, b: Block, ref: LeaseRef, userId: string, unit: 0 | 1): Promise<void> => {
    const k = keys(env.ra.prefix, b.campaignId, ref);
    // Best effort: a count left too high is corrected by the SQL check of the next refusal.
    await runAtomicScript(await env.redis(), UNDO_CLAIM, [k.marker, k.users, k.lease], [userId, ref.fence, unit]).catch(() => undefined);
  };

  // ---- the batches: one in flight per campaign, members of one lease, distinct users ----
  const take = (b: Block): Waiter[] => {
    const batch: Waiter[] = [];
    const rest: Waiter[] = [];
    const users = new Set<string>();
    const lease = b.queue[0]?.lease;
    for (const w of b.queue) {
      if (batch.length < maxBatch && w.lease === lease && !users.has(w.req.userId)) {
        users.add(w.req.userId);
        batch.push(w);
      } else rest.push(w);
    }
    b.queue = rest;
    return batch;
  };

  const runBatch = async (env: ReturnType<typeof need>, b: Block, batch: Waiter[]): Promise<void> => {
    const lease = batch[0]!.lease;
    const first = batch[0]!.req;
    const members: BatchMember[] = batch.map((w) => ({ claim: newClaim(w.req), day: w.req.day, idempotencyKey: w.req.idempotencyKey, draw: w.req.draw, completion: null }));
    try {
      await Promise.all(batch.map(async (w, i) => {
        const m = members[i]!;
        m.completion = await collectCompletion(w.req, m.claim, REDIS_ATOMIC_STRATEGY);
        // A key nobody took yet goes into the batch's transaction with the claim (takesKeys).
        const p = w.req.pendingKey;
        if (p?.result === 'pending' && m.completion !== null) m.takeKey = { fingerprint: p.fingerprint, lockedUntil: p.nowMs + p.leaseMs, createdAt: p.nowMs };
      }));
      const limits = { perUserLimit: first.campaign.perUserLimit, perUserDailyLimit: first.campaign.perUserDailyLimit, day: first.day };
      const r = await retrying(policy, deps, undefined, () => env.ra.store.commitBatch(lease.ref, limits, members, Date.now(), ttlMs));
      lease.inflight -= batch.length;
      if (r.value === 'lease_refused') {
        if (lease === b.lease) b.dirty = true;
        for (const w of batch) w.reject(new Again());
        return;
      }
      const verdicts = r.value;
      lease.used += verdicts.filter((v) => v?.kind === 'issued').length;
      batch.forEach((w, i) => {
        const v = verdicts[i];
        if (members[i]!.takeKey !== undefined && v !== null && v !== undefined && v.kind !== 'key_exists') w.req.pendingKey!.result = 'taken';
        // null: the lease had no room for this member (Redis handed out a unit SQL never granted).
        if (v === null || v === undefined) w.reject(new Again());
        else w.resolve(v);
      });
    } catch (err) {
      lease.inflight -= batch.length;
      b.dirty = true;
      for (const w of batch) w.reject(err);
    }
  };

  const drain = async (env: ReturnType<typeof need>, b: Block): Promise<void> => {
    b.running = true;
    try {
      while (b.queue.length > 0) await runBatch(env, b, take(b));
    } finally {
      b.running = false;
    }
  };

  const submit = (env: ReturnType<typeof need>, b: Block, lease: Lease, req: ClaimRequest): Promise<MemberVerdict> => {
    const p = new Promise<MemberVerdict>((resolve, reject) => b.queue.push({ req, lease, resolve, reject }));
    if (!b.running) {
      b.running = true;
      // Claims arriving in the same turn of the event loop share the first batch.
      setImmediate(() => void drain(env, b));
    }
    return p;
  };

  const claimOnce = async (env: ReturnType<typeof need>, b: Block, req: ClaimRequest, ctx: Attempt): Promise<StrategyOutcome | null> => {
    if (closed) throw new AllotError('UNAVAILABLE', 'the service is closing; nothing was issued', { outcome: 'nothing-issued' });
    if (b.rebuilding) await b.rebuilding;
    if (!b.lease || b.dirty) await refillOnce(env, b);
    const limit = req.campaign.perUserLimit;
    const { raw, lease } = await takeUnit(env, b, req.userId, limit);
    const k = keys(env.ra.prefix, b.campaignId, lease.ref);
    const code = Number(raw[0]);
    if (code === -3) {
      await rebuildOnce(env, b).catch((err: unknown) => {
        throw redisDown(err);
      });
      return null;
    }
    if (code === -2) {
      // SQL had nothing to grant a moment ago: units now come back only through Redis (claims
      // SQL refused), so do not ask SQL again for a while.
      if (b.lease !== lease) return null;
      if (Date.now() >= b.dryUntil) {
        if (await refillOnce(env, b)) return null;
        b.dryUntil = Date.now() + DRY_MS;
      }
      // No block has a unit and SQL has none to grant. Units granted and not yet used are in
      // flight (taken by claims whose batch has not committed; one SQL refuses comes back): wait
      // for them, as a conditional update would wait for the row lock, rather than answer
      // SOLD_OUT while a unit may come back.
      if ((await leasedOnce(env, b)) > 0) {
        ctx.inflightSince ??= Date.now();
        if (Date.now() - ctx.inflightSince < inflightWaitMs) {
          await new Promise((r) => setTimeout(r, 2 + Math.floor(deps.random.next() * 8)));
          return null;
        }
        // Still granted and unused after longer than a batch takes: Redis lost track of them (a
        // restart from an older snapshot, a give-back that never arrived, an instance that died
        // holding units in flight). Put them back from SQL, once per claim, and wait again.
        if (!ctx.trued) {
          ctx.trued = true;
          if (await trueUpOnce(env, b)) {
            ctx.inflightSince = null;
            return null;
          }
        }
      }
      return { kind: 'sold_out', stats: { retries: 0 } };
    }
    if (code === -1) {
      // Redis's count can be too high (an undo that never arrived, a daily-limit refusal): SQL
      // decides, read twice so that a claim of the same user still committing elsewhere is not
      // taken for a stale count.
      let total = await env.ra.store.userTotal(b.campaignId, req.userId);
      if (total >= limit) return { kind: 'user_limit', stats: { retries: 0 } };
      await new Promise((r) => setTimeout(r, 50));
      total = await env.ra.store.userTotal(b.campaignId, req.userId);
      if (total >= limit) return { kind: 'user_limit', stats: { retries: 0 } };
      await (await env.redis()).command(['HSET', k.users, req.userId, total]).catch((err: unknown) => {
        throw redisDown(err);
      });
      return null;
    }
    if (code === 1) return settle(env, b, foreign(b, String(raw[1]), Number(raw[2])), req);
    if (code !== 0) throw new Error(`redis-atomic: ${CLAIM_UNITS.name} returned ${String(code)}`);
    // Redis took a unit of this instance's block (counted in flight by flushTakes). Should
    // Redis's copy be ahead of SQL (a restart from an older snapshot), the lease guard refuses
    // the member and the claim runs again.
    return settle(env, b, lease, req);
  };

  // ---- the Redis step: the claims of one campaign that arrive in the same turn of the event
  // loop share one script call (one round trip and one command instead of one per claim) ----
  const takeUnit = (env: ReturnType<typeof need>, b: Block, userId: string, limit: number): Promise<{ raw: unknown[]; lease: Lease }> => {
    const p = new Promise<{ raw: unknown[]; lease: Lease }>((resolve, reject) => b.takes.push({ userId, limit, resolve, reject }));
    if (!b.takesScheduled) {
      b.takesScheduled = true;
      setImmediate(() => void flushTakes(env, b));
    }
    return p;
  };

  const flushTakes = async (env: ReturnType<typeof need>, b: Block): Promise<void> => {
    b.takesScheduled = false;
    const all = b.takes;
    b.takes = [];
    const lease = b.lease!;
    const k = keys(env.ra.prefix, b.campaignId, lease.ref);
    // One call per per-user limit (a campaign's limit can change between requests), at most
    // MAX_TAKES users each so that one call never holds Redis long.
    const groups = new Map<number, Take[]>();
    for (const t of all) groups.set(t.limit, [...(groups.get(t.limit) ?? []), t]);
    const calls: Take[][] = [];
    for (const g of groups.values()) for (let i = 0; i < g.length; i += MAX_TAKES) calls.push(g.slice(i, i + MAX_TAKES));
    await Promise.all(calls.map(async (call) => {
      let reply: unknown[];
      try {
        reply = (await runAtomicScript(await env.redis(), CLAIM_UNITS, [k.marker, k.users, k.lease, k.leases], [call[0]!.limit, lease.ref.fence, ...call.map((t) => t.userId)])) as unknown[];
      } catch (err) {
        for (const t of call) t.reject(redisDown(err));
        return;
      }
      if (Number(reply[0]) === -3) {
        for (const t of call) t.resolve({ raw: [-3], lease });
        return;
      }
      call.forEach((t, i) => {
        const raw = reply[i] as unknown[];
        // Counted in flight before anyone can read the books (a refill installing the block).
        if (Number(raw[0]) === 0) lease.inflight += 1;
        t.resolve({ raw, lease });
      });
      // The block runs low: ask SQL for more now, in the background, rather than when claims
      // find it empty and wait for a refill behind the campaign row's lock.
      const left = Number(reply[call.length]);
      if (left < lowWater && b.lease === lease && !b.refilling && !b.dirty && Date.now() >= b.dryUntil) {
        void refillOnce(env, b).then((ok) => {
          if (!ok) b.dryUntil = Date.now() + DRY_MS;
        }, () => undefined);
      }
    }));
  };

  /** Another instance's lease, as a unit taken from its block is written against it (no books:
   * its owner keeps them; the SQL lease guard decides). */
  const foreign = (b: Block, id: string, fence: number): Lease => {
    const key = `${id}\u0000${fence}`;
    let l = b.foreign.get(key);
    if (!l) b.foreign.set(key, (l = { ref: { id, campaignId: b.campaignId, fence }, granted: Number.POSITIVE_INFINITY, used: 0, inflight: 0 }));
    return l;
  };

  /** The SQL write of a claim Redis took a unit for, and what follows from its verdict. */
  const settle = async (env: ReturnType<typeof need>, b: Block, lease: Lease, req: ClaimRequest): Promise<StrategyOutcome | null> => {
    let v: MemberVerdict;
    try {
      v = await submit(env, b, lease, req);
    } catch (err) {
      if (err instanceof Again) {
        await undo(env, b, lease.ref, req.userId, 0);
        return null;
      }
      // The batch failed (its outcome may be unknown): the unit goes back to the block. Should
      // it have committed after all, Redis is one unit ahead and the lease guard refuses that
      // unit later; kept out, it would be stock never sold.
      await undo(env, b, lease.ref, req.userId, 1);
      throw err;
    }
    if (v.kind === 'issued') return { kind: 'issued', claim: newClaim(req) as Claim, stats: { retries: 0 } };
    if (v.kind === 'key_exists') {
      // Another request holds this Idempotency-Key: this one changed nothing in SQL; Redis's
      // count and unit go back, and the protocol answers (a replay, in progress or reused).
      await undo(env, b, lease.ref, req.userId, 1);
      throw new KeyExistsError();
    }
    // Not issued: the unit goes back to the block; the user's count too, unless SQL says the
    // user is at the limit (then Redis's count is not too high).
    await undo(env, b, lease.ref, v.kind === 'user_limit' ? '' : req.userId, 1);
    if (v.kind === 'user_limit') return { kind: 'user_limit', stats: { retries: 0 } };
    if (v.kind === 'key_lost') throw new AllotError('IDEMPOTENCY_IN_PROGRESS', 'This request lost its Idempotency-Key lease to a retry; the retry decides the outcome.');
    throw new Error(`redis-atomic: a batch with no stock step answered ${v.kind}`);
  };

  return {
    name: REDIS_ATOMIC_STRATEGY,
    safe: true,
    takesKeys: true,
    async claim(_store: ClaimStore, req: ClaimRequest): Promise<StrategyOutcome> {
      const env = need();
      if (req.unit === null || req.unit.prizeId !== null) {
        throw new AllotError('VALIDATION_FAILED', 'redis-atomic does not draw lotteries (coupon campaigns only): choose another strategy for a lottery', { field: 'strategy' });
      }
      const b = blockOf(req.campaign.id);
      // Every pass that does not settle made progress for someone (a refill granted units that
      // another claim took, the state was rebuilt, a stale count was corrected, a batch was
      // refused under a stale lease), and the stock is finite: the loop ends with an answer, so it
      // is bounded by time, not by a count (near the end of the stock a claim can lose many
      // refills in a row to other instances).
      const deadline = Date.now() + settleMs;
      const ctx: Attempt = { inflightSince: null, trued: false };
      for (let i = 0; ; i++) {
        req.signal?.throwIfAborted();
        const out = await claimOnce(env, b, req, ctx);
        if (out) return { ...out, stats: { retries: i } };
        if (Date.now() >= deadline) {
          throw new AllotError('UNAVAILABLE', `redis-atomic: the claim did not settle in ${settleMs} ms (${i + 1} passes: Redis state being rebuilt or leases refilled); nothing was issued`, { outcome: 'nothing-issued', reason: 'contention' });
        }
        // A little jitter after a few passes, so that claims that lost a refill do not all come back at once.
        if (i >= 3) await new Promise((r) => setTimeout(r, Math.floor(deps.random.next() * Math.min(20, 2 * i))));
      }
    },
    async close(): Promise<void> {
      closed = true;
      if (!ra || !client) return;
      const env = need();
      const deadline = Date.now() + 5_000;
      for (const b of blocks.values()) {
        while ((b.running || b.queue.length > 0 || (b.lease?.inflight ?? 0) > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        const l = b.lease;
        if (!l) continue;
        await env.ra.store.closeLease(l.ref).catch(() => undefined);
        const k = keys(env.ra.prefix, b.campaignId, l.ref);
        await (await env.redis()).command(['SREM', k.leases, k.lease]).catch(() => undefined);
        await (await env.redis()).command(['DEL', k.lease]).catch(() => undefined);
      }
      blocks.clear();
      const c = await client.catch(() => null);
      client = null;
      await c?.quit().catch(() => undefined);
    },
  };
}
