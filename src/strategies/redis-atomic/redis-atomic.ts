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
import type { ClaimStore, UserLimits } from '../../ports/claim-store.ts';
import { KeyExistsError, type ClaimRequest, type ClaimStrategy, type StrategyOutcome } from '../../ports/claim-strategy.ts';
import { collectCompletion } from '../collect-completion.ts';
import { retryPolicy, type StrategyDeps } from '../deps.ts';
import { newClaim } from '../outcome.ts';
import { retrying } from '../retry.ts';
import type { RedisAtomicDeps } from './deps.ts';
import type { LeaseRef } from './lease-store.ts';
import { CLAIM_FAST, CLAIM_UNITS, INSTALL_BLOCK, RESTORE_COUNTS, runAtomicScript, UNDO_CLAIM } from './scripts.ts';

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
  /** `fast` mode: claims answered 201 and not yet in SQL (the write-behind), in order */
  wb: Acked[];
  /** their claim ids (a replayed stream skips the claims this instance still holds) */
  wbIds: Set<string>;
  wbRunning: boolean;
  /** members of the write-behind batch being committed now */
  wbBusy: number;
  recovering: Promise<Array<{ id: string; units: number }>> | null;
  /** Idempotency-Keys waiting for the next SQL check (keysInSql) */
  keyChecks: Array<{ key: string; resolve(present: boolean): void; reject(err: unknown): void }>;
}

/** `fast` mode: a claim answered 201 whose SQL write is still to come. */
interface Acked {
  member: BatchMember;
  limits: UserLimits;
  /** the lease its unit came from (this instance's, another's, or the one it was moved to) */
  lease: Lease;
  /** counted in this instance's lease's `inflight` (a unit of its own Redis block) */
  own: boolean;
  /** its entry in a write-behind stream (null: none any more, after a FLUSHALL) */
  entry: { stream: string; id: string } | null;
  /** the Redis key reserving its Idempotency-Key (null: none) */
  reservation: string | null;
  tries: number;
  /** times it was moved to another lease (the one its unit came from had no room) */
  moves: number;
  notBefore: number;
  /** answered by this instance and not tried yet: SQL cannot have it unless another instance
   * replayed this one's stream meanwhile (then SQL refuses the write, and the refusal is checked) */
  fresh: boolean;
  /** resolved once it is in SQL or counted lost */
  settled(): void;
}

/** What a write-behind entry records (JSON): enough for any instance to write the claim. */
interface WbRecord {
  m: BatchMember;
  u: UserLimits;
}

/** A claim waiting for the Redis step. */
interface Take {
  userId: string;
  limit: number;
  /** `fast` mode: the Idempotency-Key ('' for none), its reservation's value, the stream record */
  fast: { key: string; value: string; record: string } | null;
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
  /** `fast` mode's write-behind: claims answered and not yet in SQL, acknowledged claims that
   * SQL refused (lost: Redis had handed out a unit or a count SQL did not have), entries of dead
   * instances replayed, and claims that waited for room in the write-behind (writeBehindMax). */
  fastStats(): { pending: number; lost: number; replayed: number; waited: number };
}

const available = (l: Lease): number => l.granted - l.used - l.inflight;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function createRedisAtomic(deps: StrategyDeps): RedisAtomicStrategy {
  const ra: RedisAtomicDeps | undefined = deps.redisAtomic;
  const policy = retryPolicy(deps);
  const blockMax = ra?.blockMax ?? 1024;
  // A block is refilled in the background once fewer units than this are left in it.
  const lowWater = Math.max(1, Math.floor(blockMax / 2));
  const ttlMs = ra?.leaseTtlMs ?? 30_000;
  const maxBatch = ra?.maxBatch ?? 256;
  const settleMs = ra?.settleMs ?? 10_000;
  const inflightWaitMs = ra?.inflightWaitMs ?? 2_000;
  const fast = ra?.mode === 'fast';
  const recoverEveryMs = ra?.recoverEveryMs ?? 1_000;
  const keyReserveMs = ra?.keyReserveMs ?? 7 * 86_400_000;
  const writeBehindMax = ra?.writeBehindMax ?? 2_000;
  const stats = { lost: 0, replayed: 0, waited: 0 };
  // `fast` claims between their decision and their entry in the write-behind (or their end).
  let deciding = 0;
  let ticker: NodeJS.Timeout | null = null;
  const blocks = new Map<string, Block>();
  let client: Promise<RedisClient> | null = null;
  let closed = false;
  /** close() gave up waiting for the write-behind (the database is down): stop retrying */
  let abandoned = false;

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
    return { marker: `${base}:ready`, users: `${base}:users`, lease: `${base}:lease:${lease?.id ?? ''}`, leases: `${base}:leases`, stream: `${base}:wb:${lease?.id ?? ''}`, reserve: `${base}:key:` };
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
    if (!b) blocks.set(campaignId, (b = { campaignId, lease: null, dirty: false, refilling: null, takes: [], takesScheduled: false, leasedRead: null, truingUp: null, dryUntil: 0, rebuilding: null, queue: [], running: false, foreign: new Map(), wb: [], wbIds: new Set(), wbRunning: false, wbBusy: 0, recovering: null, keyChecks: [] }));

    return b;
  };

  /** Redis's copy of the lease: what the books say is left. */
  const install = async (env: ReturnType<typeof need>, b: Block): Promise<void> => {
    const l = b.lease!;
    const k = keys(env.ra.prefix, b.campaignId, l.ref);
    const r = await env.redis();
    if (fast) {
      // Not while the campaign's state is lost and not rebuilt (installBlock-3.lua says why).
      await runAtomicScript(r, INSTALL_BLOCK, [k.marker, k.lease, k.leases], [l.ref.id, l.ref.fence, Math.max(0, available(l))]);
      return;
    }
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
        const back = fast ? await recoverOnce(env, b) : await env.ra.store.reclaimExpired(b.campaignId, Date.now(), [l.ref.id]);
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
    // `fast` mode: another instance's block is only ever set by its owner (which knows its
    // acknowledged claims not yet in SQL: counting their units again would lose them) or, once
    // its lease expired, by the instance that replays its stream and reclaims it.
    if (fast) return false;
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
      if (fast && !own) continue;
      const target = row.granted - row.used - (own ? b.lease!.inflight : 0);
      if (target <= 0) continue;
      const k = keys(env.ra.prefix, b.campaignId, row);
      const [fence, left] = (await r.command(['HMGET', k.lease, 'fence', 'left'])) as Array<string | null>;
      if (fence === String(row.fence) && Number(left ?? 0) >= target) continue;
      if (fast) {
        if (Number(await runAtomicScript(r, INSTALL_BLOCK, [k.marker, k.lease, k.leases], [row.id, row.fence, target])) === 1) raised = true;
        continue;
      }
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
    if (fast) {
      // Claims answered 201 and not yet in SQL are not in the totals read below. No instance
      // answers a new one while the marker is missing: let every instance's write-behind commit
      // what it holds first, until the claims committed under the campaign's leases stop moving
      // (bounded). A campaign with no unit granted yet has nothing in flight and starts at once;
      // otherwise this costs ~200 ms, once per rebuild (a new campaign's first claims included:
      // without it, a Redis lost within a campaign's first milliseconds lost an acknowledged
      // claim in the lab's redis-restart@100ms row, 1 run in 10).
      const until = Date.now() + 5_000;
      while (b.wb.length > 0 && Date.now() < until) await sleep(10);
      const used = async (): Promise<number | null> => {
        const rows = await env.ra.store.openLeases(b.campaignId);
        return rows.some((l) => l.granted > 0) ? rows.reduce((n, l) => n + l.used, 0) : null;
      };
      let last = await used();
      for (let still = 0; last !== null && still < 2 && Date.now() < until;) {
        await sleep(100);
        const now = await used();
        still = now === last ? still + 1 : 0;
        last = now;
      }
    }
    const r = await env.redis();
    const k = keys(env.ra.prefix, b.campaignId, null);
    let after: string | null = null;
    for (;;) {
      const page = await env.ra.store.userTotals(b.campaignId, after, REBUILD_PAGE);
      // Never lowering a count: another instance may have rebuilt already, and claims counted since.
      if (page.length > 0) await runAtomicScript(r, RESTORE_COUNTS, [k.users], page.flatMap((u) => [u.userId, u.total]));
      if (page.length < REBUILD_PAGE) break;
      after = page[page.length - 1]!.userId;
    }
    if (fast && b.lease) {
      // What is still pending here goes back: its users' counts, its keys' reservations, and its
      // entries, so another instance can still write it should this one die.
      const own = keys(env.ra.prefix, b.campaignId, b.lease.ref);
      for (const a of b.wb) {
        await r.command(['HINCRBY', k.users, a.member.claim.userId, 1]);
        if (a.reservation !== null) await r.command(['SET', a.reservation, `|${a.member.claim.id}`, 'PX', keyReserveMs]);
        const id = await r.command(['XADD', own.stream, '*', 'l', a.lease.ref.id, 'f', a.lease.ref.fence, 'd', JSON.stringify({ m: a.member, u: a.limits } satisfies WbRecord)]);
        a.entry = { stream: own.stream, id: String(id) };
      }
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

  /** Claims answered and not yet in SQL, across this instance's campaigns. */
  const pendingWb = (): number => {
    let n = 0;
    for (const x of blocks.values()) n += x.wb.length + x.wbBusy;
    return n;
  };

  /** Room in the write-behind: fewer than writeBehindMax claims of this instance answered and
   * not yet in SQL (counting those being decided). A claim waits for it, up to its deadline, and
   * takes its place (deciding, given back once it is answered):
   * that bounds this instance's memory, its streams in Redis and what a crash can lose, and slows
   * the answers to the rate SQL writes them. (Waiting, not answering such claims the durable way:
   * the durable script does not look at the Idempotency-Key reservations, so a key's retry could
   * be refused while its first claim, already answered 201, waited for SQL.) */
  const roomFor = async (deadline: number, signal?: AbortSignal): Promise<void> => {
    // The place is taken (deciding) in the same synchronous step as the check.
    if (pendingWb() + deciding < writeBehindMax) {
      deciding += 1;
      return;
    }
    stats.waited += 1;
    while (pendingWb() + deciding >= writeBehindMax) {
      signal?.throwIfAborted();
      const left = deadline - Date.now();
      if (left <= 0 || closed) {
        throw new AllotError('UNAVAILABLE', `redis-atomic (fast): ${writeBehindMax} claims of this instance are still waiting to be written to SQL (the database does not keep up or does not answer); nothing was issued. Retry later.`, { outcome: 'nothing-issued', reason: 'write-behind-full' });
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(left, 250));
        function done(): void {
          clearTimeout(t);
          roomWaiters.delete(done);
          resolve();
        }
        roomWaiters.add(done);
      });
    }
    deciding += 1;
  };
  const roomWaiters = new Set<() => void>();
  const roomMade = (): void => {
    if (roomWaiters.size === 0 || pendingWb() + deciding >= writeBehindMax) return;
    for (const w of [...roomWaiters]) w();
  };

  /** One pass of a claim; in `fast` mode, answered after Redis once the write-behind has room. */
  const claimOnce = async (env: ReturnType<typeof need>, b: Block, req: ClaimRequest, ctx: Attempt, deadline: number): Promise<StrategyOutcome | null> => {
    if (!fastFor(req)) return claimPass(env, b, req, ctx, false);
    await roomFor(deadline, req.signal);
    try {
      return await claimPass(env, b, req, ctx, true);
    } finally {
      deciding -= 1;
      roomMade();
    }
  };

  const claimPass = async (env: ReturnType<typeof need>, b: Block, req: ClaimRequest, ctx: Attempt, fastPass: boolean): Promise<StrategyOutcome | null> => {
    if (closed) throw new AllotError('UNAVAILABLE', 'the service is closing; nothing was issued', { outcome: 'nothing-issued' });
    if (b.rebuilding) await b.rebuilding;
    if (!b.lease || b.dirty) await refillOnce(env, b);
    const limit = req.campaign.perUserLimit;
    const prep = fastPass ? await prepare(req) : null;
    const { raw, lease } = await takeUnit(env, b, req.userId, limit, prep?.take ?? null);
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
    if (code === 4 && prep) {
      // Another claim holds this key and is not in SQL yet: once it is, the protocol answers
      // (a replay of its 201, or a key reused for another user).
      await keyCommitted(env, b, req.idempotencyKey!);
      throw new KeyExistsError();
    }
    if (code === -1) {
      // Redis's count can be too high (an undo that never arrived, a daily-limit refusal): SQL
      // decides, read twice so that a claim of the same user still committing elsewhere is not
      // taken for a stale count (in `fast` mode a claim answered 201 can take a while to reach
      // SQL: a user at the limit is not let through on a count SQL has not caught up with).
      let total = await env.ra.store.userTotal(b.campaignId, req.userId);
      if (total >= limit) return { kind: 'user_limit', stats: { retries: 0 } };
      if (fast && b.wb.some((a) => a.member.claim.userId === req.userId)) return { kind: 'user_limit', stats: { retries: 0 } };
      await new Promise((r) => setTimeout(r, fast ? 1_000 : 50));
      total = await env.ra.store.userTotal(b.campaignId, req.userId);
      if (total >= limit) return { kind: 'user_limit', stats: { retries: 0 } };
      await (await env.redis()).command(['HSET', k.users, req.userId, total]).catch((err: unknown) => {
        throw redisDown(err);
      });
      return null;
    }
    if (code === 1 && prep) return ack(env, b, foreign(b, String(raw[1]), Number(raw[2])), false, { stream: k.stream, id: String(raw[3]) }, prep, req);
    if (code === 0 && prep) return ack(env, b, lease, true, { stream: k.stream, id: String(raw[1]) }, prep, req);
    if (code === 1) return settle(env, b, foreign(b, String(raw[1]), Number(raw[2])), req);
    if (code !== 0) throw new Error(`redis-atomic: ${CLAIM_UNITS.name} returned ${String(code)}`);
    // Redis took a unit of this instance's block (counted in flight by flushTakes). Should
    // Redis's copy be ahead of SQL (a restart from an older snapshot), the lease guard refuses
    // the member and the claim runs again.
    return settle(env, b, lease, req);
  };

  // ---- the Redis step: the claims of one campaign that arrive in the same turn of the event
  // loop share one script call (one round trip and one command instead of one per claim) ----
  const takeUnit = (env: ReturnType<typeof need>, b: Block, userId: string, limit: number, fastTake: Take['fast']): Promise<{ raw: unknown[]; lease: Lease }> => {
    const p = new Promise<{ raw: unknown[]; lease: Lease }>((resolve, reject) => b.takes.push({ userId, limit, fast: fastTake, resolve, reject }));
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
    const groups = new Map<string, Take[]>();
    for (const t of all) {
      const g = `${t.limit}:${t.fast ? 'f' : 'd'}`;
      groups.set(g, [...(groups.get(g) ?? []), t]);
    }
    const calls: Take[][] = [];
    for (const g of groups.values()) for (let i = 0; i < g.length; i += MAX_TAKES) calls.push(g.slice(i, i + MAX_TAKES));
    await Promise.all(calls.map(async (call) => {
      let reply: unknown[];
      try {
        reply = call[0]!.fast
          ? ((await runAtomicScript(await env.redis(), CLAIM_FAST, [k.marker, k.users, k.lease, k.leases, k.stream], [call[0]!.limit, lease.ref.fence, lease.ref.id, k.reserve, keyReserveMs, ...call.flatMap((t) => [t.userId, t.fast!.key, t.fast!.value, t.fast!.record])])) as unknown[])
          : ((await runAtomicScript(await env.redis(), CLAIM_UNITS, [k.marker, k.users, k.lease, k.leases], [call[0]!.limit, lease.ref.fence, ...call.map((t) => t.userId)])) as unknown[]);
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

  // ---- `fast` mode: 201 after Redis; the claims reach SQL behind the answer ----

  /** A claim `fast` mode answers after Redis: a coupon with no daily limit (Redis counts no days),
   * and an Idempotency-Key no request took in SQL yet (a key the protocol took beforehand, after
   * a retry, goes the durable way). */
  const fastFor = (req: ClaimRequest): boolean =>
    fast && req.campaign.perUserDailyLimit === null && (req.idempotencyKey === null || req.pendingKey?.result === 'pending');

  /** The claim's SQL write, as a batch member, and the stream record that lets any instance do it. */
  const prepare = async (req: ClaimRequest): Promise<{ member: BatchMember; limits: UserLimits; take: NonNullable<Take['fast']> }> => {
    const member: BatchMember = { claim: newClaim(req), day: req.day, idempotencyKey: req.idempotencyKey, draw: null, completion: null };
    member.completion = await collectCompletion(req, member.claim, REDIS_ATOMIC_STRATEGY);
    const p = req.pendingKey;
    if (p?.result === 'pending' && member.completion !== null) member.takeKey = { fingerprint: p.fingerprint, lockedUntil: p.nowMs + p.leaseMs, createdAt: p.nowMs };
    const limits: UserLimits = { perUserLimit: req.campaign.perUserLimit, perUserDailyLimit: null, day: req.day };
    const record = JSON.stringify({ m: member, u: limits } satisfies WbRecord);
    return { member, limits, take: { key: req.idempotencyKey ?? '', value: `${p?.fingerprint ?? ''}|${member.claim.id}`, record } };
  };

  /** Redis took a unit, reserved the key and logged the claim: unless SQL already has this key
   * (answered before, by a claim or a refusal), the claim is answered 201 now and written behind. */
  const ack = async (
    env: ReturnType<typeof need>, b: Block, lease: Lease, own: boolean, entry: { stream: string; id: string },
    prep: { member: BatchMember; limits: UserLimits }, req: ClaimRequest,
  ): Promise<StrategyOutcome> => {
    const k = keys(env.ra.prefix, b.campaignId, null);
    const reservation = req.idempotencyKey === null ? null : k.reserve + req.idempotencyKey;
    if (req.idempotencyKey !== null) {
      let inSql: boolean;
      try {
        inSql = await keyInSql(env, b, req.idempotencyKey);
      } catch (err) {
        await takeBack(env, b, lease, own, req.userId, entry, reservation);
        throw err;
      }
      if (inSql) {
        await takeBack(env, b, lease, own, req.userId, entry, reservation);
        throw new KeyExistsError();
      }
    }
    if (req.pendingKey) req.pendingKey.result = 'taken';
    enqueue(env, b, { member: prep.member, limits: prep.limits, lease, own, entry, reservation, tries: 0, moves: 0, notBefore: 0, fresh: true, settled: () => undefined });
    return { kind: 'issued', claim: prep.member.claim, stats: { retries: 0 } };
  };

  /** Undoes what the script did for a claim that is not answered 201: its entry first. Should the
   * entry be gone (another instance replayed this instance's stream because its lease expired
   * while SQL was out of reach, or Redis lost it) or Redis not answer, the outcome is unknown: the
   * claim may be in SQL, and a retry with the same key learns it. */
  const takeBack = async (env: ReturnType<typeof need>, b: Block, lease: Lease, own: boolean, userId: string, entry: { stream: string; id: string }, reservation: string | null): Promise<void> => {
    if (own) lease.inflight -= 1;
    let deleted = 0;
    let cause: unknown = null;
    try {
      deleted = Number(await (await env.redis()).command(['XDEL', entry.stream, entry.id]));
    } catch (err) {
      cause = err;
    }
    if (deleted !== 1) {
      throw new AllotError('UNAVAILABLE', 'redis-atomic (fast): SQL did not answer after Redis logged the claim, and the log entry could not be taken back; the outcome is unknown. Retry with the same Idempotency-Key to learn it.', { outcome: 'unknown', backend: 'redis' }, cause === null ? undefined : { cause });
    }
    await undo(env, b, lease.ref, userId, 1);
    if (reservation !== null) await (await env.redis()).command(['DEL', reservation]).catch(() => undefined);
  };

  const enqueue = (env: ReturnType<typeof need>, b: Block, a: Acked): void => {
    b.wb.push(a);
    b.wbIds.add(a.member.claim.id);
    if (!b.wbRunning) {
      b.wbRunning = true;
      setImmediate(() => void wbDrain(env, b));
    }
  };

  /** The write-behind: batches of one lease and distinct users, until nothing is pending. */
  const wbDrain = async (env: ReturnType<typeof need>, b: Block): Promise<void> => {
    b.wbRunning = true;
    try {
      while (b.wb.length > 0 && !abandoned) {
        const now = Date.now();
        const batch = wbTake(b, now);
        if (batch.length === 0) {
          await sleep(Math.max(1, Math.min(...b.wb.map((a) => a.notBefore)) - now));
          continue;
        }
        b.wbBusy = batch.length;
        try {
          await wbCommit(env, b, batch);
        } finally {
          b.wbBusy = 0;
          roomMade();
        }
      }
    } finally {
      b.wbRunning = false;
    }
  };

  const wbTake = (b: Block, now: number): Acked[] => {
    const first = b.wb.find((a) => a.notBefore <= now);
    if (!first) return [];
    const batch: Acked[] = [];
    const rest: Acked[] = [];
    const users = new Set<string>();
    for (const a of b.wb) {
      if (batch.length < maxBatch && a.notBefore <= now && a.lease === first.lease && a.limits.perUserLimit === first.limits.perUserLimit && !users.has(a.member.claim.userId)) {
        users.add(a.member.claim.userId);
        batch.push(a);
      } else rest.push(a);
    }
    b.wb = rest;
    return batch;
  };

  const wbCommit = async (env: ReturnType<typeof need>, b: Block, batch: Acked[]): Promise<void> => {
    const lease = batch[0]!.lease;
    const done: Acked[] = [];
    const lost: Array<{ a: Acked; userBack: boolean }> = [];
    const moved: Acked[] = [];
    try {
      // Claims SQL has already (written by an instance that replayed a stream, or by an attempt
      // whose outcome was not learned) are done: the write-behind is idempotent. A batch of fresh
      // claims skips the read: SQL refuses one it has (its claim id, key or user count), and a
      // refusal is checked below, an error retried with the read.
      const have = batch.every((a) => a.fresh) ? new Set<string>() : await env.ra.store.existingClaims(b.campaignId, batch.map((a) => a.member.claim.id));
      const todo = batch.filter((a) => !have.has(a.member.claim.id));
      done.push(...batch.filter((a) => have.has(a.member.claim.id)));
      if (todo.length > 0) {
        const r = await env.ra.store.commitBatch(lease.ref, batch[0]!.limits, todo.map((a) => a.member), Date.now(), ttlMs);
        if (r === 'lease_refused') moved.push(...todo);
        else {
          const refused: Array<{ a: Acked; kind: string }> = [];
          todo.forEach((a, i) => {
            const v = r[i];
            if (v === null || v === undefined) moved.push(a);
            else if (v.kind === 'issued') done.push(a);
            else refused.push({ a, kind: v.kind });
          });
          // A refusal of a claim SQL has (another instance wrote it meanwhile: several replay
          // one dead instance's stream at once, or it replayed this one's while SQL was out of
          // reach): done. Otherwise SQL refused a claim Redis let through (a count Redis lost, a
          // key SQL had): the acknowledged claim is lost; counted, and its unit goes back.
          const there = refused.length === 0 ? new Set<string>() : await env.ra.store.existingClaims(b.campaignId, refused.map((x) => x.a.member.claim.id));
          for (const { a, kind } of refused) {
            if (there.has(a.member.claim.id)) done.push(a);
            else lost.push({ a, userBack: kind !== 'user_limit' });
          }
        }
      }
    } catch {
      // Not learned (SQL down, a conflict): the whole batch again, later; SQL's unique claim ids
      // make a second write of a claim that did commit impossible (it is found above).
      for (const a of batch) {
        a.fresh = false;
        a.tries += 1;
        a.notBefore = Date.now() + Math.min(2_000, 10 * 2 ** Math.min(a.tries, 8)) + Math.floor(deps.random.next() * 10);
      }
      b.wb.unshift(...batch);
      return;
    }
    lease.used += done.length;
    for (const a of [...done, ...lost.map((x) => x.a), ...moved]) {
      if (a.own) {
        a.lease.inflight -= 1;
        a.own = false;
      }
    }
    for (const { a, userBack } of lost) {
      stats.lost += 1;
      await undo(env, b, a.lease.ref, userBack ? a.member.claim.userId : '', 1);
    }
    if (moved.length > 0) await move(env, b, moved);
    await forget(env, b, [...done, ...lost.map((x) => x.a)]);
  };

  /** Claims whose lease had no room for them (Redis handed out units SQL never granted it: a
   * block restored from an older state) or was reclaimed: units granted anew to this instance's
   * lease, not added to its Redis block, carry them. With no stock left to grant they are lost. */
  const move = async (env: ReturnType<typeof need>, b: Block, moved: Acked[]): Promise<void> => {
    const keep: Acked[] = [];
    for (const a of moved) {
      a.moves += 1;
      a.fresh = false;
      a.tries = 0;
      if (a.moves > 5) {
        stats.lost += 1;
        await forget(env, b, [a]);
      } else keep.push(a);
    }
    let i = 0;
    try {
      if (!b.lease || b.dirty) await refillOnce(env, b);
      for (let round = 0; i < keep.length && round < 50; round++) {
        const l = b.lease!;
        const n = await env.ra.store.grant(l.ref, keep.length - i, Date.now(), ttlMs);
        if (n === 0) {
          if (b.lease !== l) continue;
          // Closed under us? A new lease, and ask again; else nothing is left to grant.
          b.dirty = true;
          await refillOnce(env, b);
          if (b.lease === l) break;
          continue;
        }
        l.granted += n;
        for (const a of keep.slice(i, i + n)) a.lease = l;
        i += n;
      }
    } catch {
      // SQL did not answer: they try again later, from where they were.
      for (const a of keep.slice(i)) a.notBefore = Date.now() + 200;
      for (const a of keep) enqueue(env, b, a);
      return;
    }
    for (const a of keep.slice(0, i)) enqueue(env, b, a);
    for (const a of keep.slice(i)) {
      stats.lost += 1;
      await forget(env, b, [a]);
    }
  };

  /** Claims done with (in SQL, or lost): their entries and key reservations leave Redis. */
  const forget = async (env: ReturnType<typeof need>, b: Block, gone: Acked[]): Promise<void> => {
    for (const a of gone) {
      b.wbIds.delete(a.member.claim.id);
      a.settled();
    }
    roomMade();
    const r = await env.redis().catch(() => null);
    if (!r) return;
    const streams = new Map<string, string[]>();
    for (const a of gone) if (a.entry) streams.set(a.entry.stream, [...(streams.get(a.entry.stream) ?? []), a.entry.id]);
    const reservations = gone.map((a) => a.reservation).filter((x): x is string => x !== null);
    // Best effort: an entry left behind is found in SQL by whoever replays it.
    await Promise.all([
      ...[...streams].map(([stream, ids]) => r.command(['XDEL', stream, ...ids]).catch(() => undefined)),
      reservations.length > 0 ? r.command(['DEL', ...reservations]).catch(() => undefined) : undefined,
    ]);
  };

  /** Every `recoverEveryMs`: this instance's campaigns, and every campaign with an expired lease
   * (an instance died; nobody may be claiming there any more), are recovered. */
  let ticking = false;
  const tick = async (): Promise<void> => {
    if (closed || !ra?.redis || ticking) return;
    ticking = true;
    try {
      const env = need();
      const ids = new Set([...blocks.keys(), ...(await env.ra.store.campaignsWithExpiredLeases(Date.now(), 100))]);
      for (const id of ids) await recoverOnce(env, blockOf(id)).catch(() => undefined);
    } catch {
      // The next tick tries again.
    } finally {
      ticking = false;
    }
  };

  /** Replays the streams of dead instances (their leases expired), then reclaims those leases:
   * their acknowledged claims reach SQL before their units go back. */
  const recoverOnce = (env: ReturnType<typeof need>, b: Block): Promise<Array<{ id: string; units: number }>> => {
    b.recovering ??= recoverDead(env, b).finally(() => {
      b.recovering = null;
    });
    return b.recovering;
  };

  const recoverDead = async (env: ReturnType<typeof need>, b: Block): Promise<Array<{ id: string; units: number }>> => {
    const rows = await env.ra.store.openLeases(b.campaignId);
    const now = Date.now();
    const dead = rows.filter((row) => row.expiresAt < now && row.id !== b.lease?.ref.id);
    // This instance's own block, lost from Redis (a FLUSHALL, a restart) while it sits idle:
    // only its owner knows how many of its units are answered and not yet in SQL.
    // Not before the campaign's state is rebuilt (the marker): until then other instances' claims
    // on this block may still be on their way to SQL, and counting their units again would lose them.
    const mine = b.lease;
    if (mine && !b.dirty && !b.refilling && !b.rebuilding) {
      const r = await env.redis();
      const mk = keys(env.ra.prefix, b.campaignId, mine.ref);
      const [fence, marker] = await Promise.all([r.command(['HGET', mk.lease, 'fence']), r.command(['EXISTS', mk.marker])]);
      if (Number(marker) === 1 && String(fence) !== String(mine.ref.fence) && available(mine) > 0) {
        b.dirty = true;
        await refillOnce(env, b).catch(() => undefined);
      }
    }
    if (dead.length === 0) return [];
    const r = await env.redis();
    for (const row of dead) {
      const k = keys(env.ra.prefix, b.campaignId, row);
      let from = '-';
      for (;;) {
        const page = (await r.command(['XRANGE', k.stream, from, '+', 'COUNT', REBUILD_PAGE])) as Array<[string, string[]]>;
        const waits: Array<Promise<void>> = [];
        for (const [id, fields] of page) {
          const f = new Map<string, string>();
          for (let i = 0; i + 1 < fields.length; i += 2) f.set(String(fields[i]), String(fields[i + 1]));
          const rec = JSON.parse(f.get('d') ?? 'null') as WbRecord | null;
          if (!rec || b.wbIds.has(rec.m.claim.id)) continue;
          const leaseId = f.get('l') ?? row.id;
          const fence = Number(f.get('f') ?? row.fence);
          const lease = b.lease && leaseId === b.lease.ref.id && fence === b.lease.ref.fence ? b.lease : foreign(b, leaseId, fence);
          stats.replayed += 1;
          waits.push(new Promise<void>((settled) => enqueue(env, b, {
            member: rec.m, limits: rec.u, lease, own: false, entry: { stream: k.stream, id: String(id) },
            reservation: rec.m.idempotencyKey === null ? null : k.reserve + rec.m.idempotencyKey, tries: 0, moves: 0, notBefore: 0, fresh: false, settled,
          })));
        }
        await Promise.all(waits);
        if (page.length < REBUILD_PAGE) break;
        from = `(${String(page[page.length - 1]![0])}`;
      }
    }
    // Only the leases whose streams were replayed (one that expired meanwhile waits for the next pass).
    const keep = rows.filter((row) => !dead.includes(row)).map((row) => row.id);
    const back = await env.ra.store.reclaimExpired(b.campaignId, Date.now(), [...keep, ...(b.lease ? [b.lease.ref.id] : [])]);
    for (const c of back) {
      const ck = keys(env.ra.prefix, b.campaignId, { id: c.id, campaignId: b.campaignId, fence: 0 });
      await r.command(['SREM', ck.leases, ck.lease]);
      await r.command(['DEL', ck.lease, ck.stream]);
    }
    return back;
  };

  /** Whether SQL has an Idempotency-Key of the campaign: one query for the keys asked in the same turn. */
  const keyInSql = (env: ReturnType<typeof need>, b: Block, key: string): Promise<boolean> => {
    const p = new Promise<boolean>((resolve, reject) => b.keyChecks.push({ key, resolve, reject }));
    if (b.keyChecks.length === 1) {
      setImmediate(() => {
        const all = b.keyChecks;
        b.keyChecks = [];
        void (async () => {
          for (let i = 0; i < all.length; i += 500) {
            const part = all.slice(i, i + 500);
            try {
              const have = await env.ra.store.presentKeys(b.campaignId, part.map((c) => c.key));
              for (const c of part) c.resolve(have.has(c.key));
            } catch (err) {
              for (const c of part) c.reject(err);
            }
          }
        })();
      });
    }
    return p;
  };

  /** Waits until SQL has the key (its claim's write-behind committed). */
  const keyCommitted = async (env: ReturnType<typeof need>, b: Block, key: string): Promise<void> => {
    const deadline = Date.now() + settleMs;
    while (!(await keyInSql(env, b, key))) {
      if (Date.now() >= deadline) throw new AllotError('IDEMPOTENCY_IN_PROGRESS', 'A claim with this Idempotency-Key was answered and is still being written; retry in a moment.');
      await sleep(25);
    }
  };

  if (fast && ra?.redis) {
    // Each instance replays the write-behind streams of dead instances (their leases expired)
    // before their units are reclaimed, whether or not it is claiming itself.
    ticker = setInterval(() => void tick(), recoverEveryMs);
    ticker.unref();
  }

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
        const out = await claimOnce(env, b, req, ctx, deadline);
        if (out) return { ...out, stats: { retries: i } };
        if (Date.now() >= deadline) {
          throw new AllotError('UNAVAILABLE', `redis-atomic: the claim did not settle in ${settleMs} ms (${i + 1} passes: Redis state being rebuilt or leases refilled); nothing was issued`, { outcome: 'nothing-issued', reason: 'contention' });
        }
        // A little jitter after a few passes, so that claims that lost a refill do not all come back at once.
        if (i >= 3) await new Promise((r) => setTimeout(r, Math.floor(deps.random.next() * Math.min(20, 2 * i))));
      }
    },
    fastStats() {
      let pending = 0;
      for (const b of blocks.values()) pending += b.wb.length + b.wbBusy;
      return { pending, lost: stats.lost, replayed: stats.replayed, waited: stats.waited };
    },
    async close(): Promise<void> {
      closed = true;
      if (ticker) clearInterval(ticker);
      ticker = null;
      if (!ra || !client) return;
      const env = need();
      const deadline = Date.now() + 5_000;
      for (const b of blocks.values()) {
        while ((b.running || b.queue.length > 0 || b.wb.length + b.wbBusy > 0 || (b.lease?.inflight ?? 0) > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        const l = b.lease;
        if (!l) continue;
        // `fast` claims still not in SQL (the database is down): the lease stays open, and its
        // stream in Redis, for another instance (or this one, restarted) to replay once it expired.
        if (b.wb.length + b.wbBusy > 0) {
          abandoned = true;
          continue;
        }
        await env.ra.store.closeLease(l.ref).catch(() => undefined);
        const k = keys(env.ra.prefix, b.campaignId, l.ref);
        await (await env.redis()).command(['SREM', k.leases, k.lease]).catch(() => undefined);
        await (await env.redis()).command(['DEL', k.lease]).catch(() => undefined);
      }
      // Whatever is still pending stays in the streams; the write-behind stops with the database.
      abandoned = true;
      blocks.clear();
      const c = await client.catch(() => null);
      client = null;
      await c?.quit().catch(() => undefined);
    },
  };
}
