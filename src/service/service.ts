// The composition root: configuration -> SQL adapter -> strategies -> claim engine. The HTTP
// app and the CLI are thin layers over the object this returns.
import { buildPgliteTemplatesInBackground, connectSql, describeDatabase, maskUrl, preparePgliteSpare, type SqlConnection } from '../adapters/sql/connect.ts';
import { isUnavailable } from '../adapters/sql/errors.ts';
import { defaultPgliteSchema, migrateToLatest, type MigrateReport } from '../adapters/sql/migrate.ts';
import { SqlClaimStore } from '../adapters/sql/sql-store.ts';
import { SqlIdempotencyStore, SqlLease } from '../adapters/sql/sql-idempotency-store.ts';
import { withFencePrune } from '../adapters/sql/sql-fences.ts';
import { sql } from 'kysely';
import { sqlDialect } from '../adapters/sql/dialect.ts';
import { randomIds, systemClock, systemRandom } from '../adapters/system/clock.ts';
import { randomBytes } from 'node:crypto';
import { buildCampaign, ID_REGEX, MAX_STOCK, type Campaign, type NewCampaign } from '../core/campaign.ts';
import type { DrawProof } from '../core/lottery.ts';
import type { Claim } from '../core/claim.ts';
import { AllotError } from '../core/errors.ts';
import type { AuditCheck, ClaimStore } from '../ports/claim-store.ts';
import type { Clock, IdSource } from '../ports/clock.ts';
import type { IdempotencyStore } from '../ports/idempotency-store.ts';
import type { RandomSource } from '../ports/random.ts';
import type { ClaimStrategy } from '../ports/claim-strategy.ts';
import { createStrategies, type StrategyDeps } from '../strategies/index.ts';
import { REDIS_LOCK_STRATEGY, type RedisLockStrategyOptions } from '../strategies/redis-lock.ts';
import { REDIS_ATOMIC_STRATEGY, type RedisAtomicStrategy } from '../strategies/redis-atomic/redis-atomic.ts';
import { redisAtomicDeps, redisAtomicUrl, type RedisAtomicOptions } from './redis-atomic-wiring.ts';
import { ClaimEngine, type ClaimOutcome, type DrawRecord } from './claim-engine.ts';
import { IdempotencyProtocol, KeyPurgeScheduler, type KeyPurgeEvents, type KeyPurgeOptions } from './idempotency.ts';
import { PayoutService, type PayoutOptions } from './payouts.ts';
import { SqlPayoutStore } from '../adapters/sql/sql-payout-store.ts';
import type { PaymentRail } from '../ports/payment-rail.ts';
import { railFromConfig } from './rail.ts';
import type { Config } from './config.ts';
import { openLocks, type LocksHealth, type ServiceLocks } from './locks.ts';
import { createMetrics, type ServiceMetrics } from './metrics.ts';

export interface ServiceOptions {
  config: Pick<Config, 'databaseUrl' | 'dbPoolSize' | 'dbTimeoutMs' | 'defaultStrategy' | 'allowUnsafeStrategies'>
    & Partial<Pick<Config, 'locksUrl' | 'locksDown' | 'lockPrefix' | 'dbIdleTxTimeoutMs' | 'railUrl' | 'railTimeoutMs' | 'dataDir' | 'keyRetentionMs' | 'keyPurgeIntervalMs' | 'cacheDir' | 'redisAtomicMode' | 'redisAtomicWriteBehindMax' | 'groupCommitTransactional'>> & {
    /** session isolation (the race lab runs MariaDB at REPEATABLE READ); default READ COMMITTED */
    dbIsolation?: 'read committed' | 'repeatable read' | 'serializable';
  };
  clock?: Clock;
  ids?: IdSource;
  random?: RandomSource;
  /** Strategy settings beyond the defaults (the race lab's think time, retry policies). */
  strategies?: Partial<Omit<StrategyDeps, 'locks' | 'random' | 'redisAtomic'>> & { redisLock?: RedisLockStrategyOptions };
  /** The redis-atomic strategy's Redis and settings (default: a redis:// config.locksUrl, `durable`). */
  redisAtomic?: RedisAtomicOptions;
  /** group-commit's batches: a batch of claims whose keys it takes itself commits in ONE round
   * trip (default true, unless config.groupCommitTransactional): one statement on PostgreSQL (and
   * PGlite), one compound statement on MariaDB ≥ 10.6; false runs every batch as a transaction of
   * one statement per step, as on MySQL (see docs/strategies.md). */
  groupCommit?: { oneStatement?: boolean };
  /** Run migrations with these options (the race lab's schema has no stock backstop). */
  migrationOptions?: { stockBackstop?: boolean };
  /** Run migrations on start (default true). */
  migrate?: boolean;
  onPoolError?: (err: Error) => void;
  /** The payment rail of transfer orders; default from config (ALLOT_RAIL_URL, else the
   * in-process simulated rail). */
  rail?: PaymentRail;
  /** Executor and recovery settings of transfer orders. */
  payouts?: PayoutOptions;
  /** Background payout errors (the executor and its sweep never throw); default: ignored. */
  onPayoutError?: (err: unknown, context: string) => void;
  /** The scheduled purge of idempotency keys: settings beyond config.keyPurgeIntervalMs (default
   * 0: off, so only a service given the interval, as `allot serve` is, purges by itself) and
   * config.keyRetentionMs (default 7 days), and its events. */
  keyPurge?: Partial<KeyPurgeOptions> & KeyPurgeEvents;
  /** A new embedded data dir with no template to copy yet: build the template now (default) or
   * 'later' (initdb in place; prepareNextDataDir builds it in another process), as `allot serve`
   * does. */
  pgliteBuildTemplate?: 'now' | 'later';
  /** Runs each start-up step (open the database, migrate, connect to Redis); `allot serve`
   * prints a progress line per step. Default: just runs it. */
  step?: StartStep;
}

/** Runs one start-up step named by `label`; `note` describes its result (or nothing). */
export type StartStep = <T>(label: string, work: () => Promise<T>, note?: (value: T) => string | undefined) => Promise<T>;
const silentStep: StartStep = (_label, work) => work();

export const DEFAULT_KEY_RETENTION_MS = 7 * 24 * 3600 * 1000;

export const MIN_KEY_RETENTION_MS = 24 * 3600 * 1000;

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export class AllotService {
  readonly engine: ClaimEngine;
  readonly payouts: PayoutService;
  readonly dialect: string;
  /** The scheduled purge of idempotency keys; null when off. */
  readonly keyPurge: KeyPurgeScheduler | null;

  private readonly strategies: ReadonlyMap<string, ClaimStrategy>;

  private constructor(
    readonly store: ClaimStore,
    readonly keys: IdempotencyStore,
    private readonly conn: SqlConnection,
    readonly locks: ServiceLocks,
    readonly metrics: ServiceMetrics,
    private readonly opts: ServiceOptions,
    private readonly clock: Clock,
    private readonly ids: IdSource,
    readonly migrations: MigrateReport,
    rail: PaymentRail,
  ) {
    this.dialect = store.dialect;
    const keyRetentionMs = Math.max(MIN_KEY_RETENTION_MS, opts.keyPurge?.retentionMs ?? opts.config.keyRetentionMs ?? DEFAULT_KEY_RETENTION_MS);
    metrics.bind({
      dialect: store.dialect, conn, locksKind: locks.kind, locksDown: locks.whenDown, pingDatabase: () => store.ping(), pingLocks: () => locks.ping(), now: () => clock.now(),
      keyRetentionMs: () => keyRetentionMs,
      redisAtomicFast: () => this.redisAtomicFast(),
    });
    const random = opts.random ?? systemRandom;
    const { redisLock, ...strategyDeps } = opts.strategies ?? {};
    this.strategies = createStrategies(
      {
        ...strategyDeps, locks: locks.provider, random, onFenceRejected: (resource) => locks.metrics.fenceRejected?.({ resource }),
        redisAtomic: redisAtomicDeps(conn, { ...(opts.config.redisAtomicMode ? { mode: opts.config.redisAtomicMode } : {}), ...(opts.config.redisAtomicWriteBehindMax ? { writeBehindMax: opts.config.redisAtomicWriteBehindMax } : {}), ...opts.redisAtomic }, opts.config.locksUrl, opts.config.lockPrefix),
      },
      { redisLock: { whenLocksDown: locks.whenDown, onLocksDown: (mode) => locks.observeDown(mode), ...redisLock } },
    );
    this.engine = new ClaimEngine({
      store,
      idempotency: new IdempotencyProtocol(keys, clock, ids, random),
      clock,
      ids,
      strategyFor: (name) => this.strategies.get(name),
      onResult: (result, ms, info) => this.metrics.observeClaim(result, ms, info),
    });
    this.payouts = new PayoutService({
      store: new SqlPayoutStore(conn),
      idempotency: new IdempotencyProtocol(keys, clock, ids, random),
      rail,
      clock,
      ids,
      random,
      options: { ...(opts.config.railTimeoutMs !== undefined ? { railTimeoutMs: opts.config.railTimeoutMs } : {}), ...opts.payouts },
      events: {
        onTransferState: (state) => this.metrics.observeTransfer(state),
        onBackgroundError: (err, context) => {
          this.metrics.observePayoutError();
          opts.onPayoutError?.(err, context);
        },
      },
    });
    this.payouts.start();
    const { onStart, onRun, onError, ...purgeOpts } = opts.keyPurge ?? {};
    const intervalMs = purgeOpts.intervalMs ?? opts.config.keyPurgeIntervalMs ?? 0;
    this.keyPurge = intervalMs > 0
      // idle fencing state (lock_fences) goes in the same run: every lock backend issues fences
      // above every fence it issued a retention ago (docs/locks.md, "Bounded fencing state")
      ? new KeyPurgeScheduler(withFencePrune(keys, conn.db, sqlDialect(conn.family)), new SqlLease(conn.db, 'idempotency-keys-purge'), clock, ids, {
        ...purgeOpts,
        intervalMs,
        retentionMs: keyRetentionMs,
      }, { ...(onStart ? { onStart } : {}), ...(onRun ? { onRun } : {}), ...(onError ? { onError } : {}) })
      : null;
    this.keyPurge?.start();
  }

  /** redis-atomic `fast` mode's write-behind on this instance: claims answered and not yet in SQL,
   * acknowledged claims SQL refused (lost), dead instances' entries replayed, claims that waited
   * for room in the write-behind (writeBehindMax); null unless fast. */
  redisAtomicFast(): { pending: number; lost: number; replayed: number; waited: number } | null {
    if ((this.opts.redisAtomic?.mode ?? this.opts.config.redisAtomicMode) !== 'fast') return null;
    return (this.strategies?.get(REDIS_ATOMIC_STRATEGY) as RedisAtomicStrategy | undefined)?.fastStats() ?? null;
  }

  static async open(opts: ServiceOptions): Promise<AllotService> {
    const step = opts.step ?? silentStep;
    const database = describeDatabase(opts.config.databaseUrl);
    const conn = await step(`opening the database (${database})`, async () => {
      const c = await connectSql({
        url: opts.config.databaseUrl,
        poolSize: opts.config.dbPoolSize,
        timeoutMs: opts.config.dbTimeoutMs,
        idleTxTimeoutMs: opts.config.dbIdleTxTimeoutMs,
        ...(opts.config.dbIsolation ? { isolation: opts.config.dbIsolation } : {}),
        ...(opts.config.cacheDir !== undefined ? { pgliteCacheDir: opts.config.cacheDir } : {}),
        // A new embedded database starts as a copy of one migrated once (the race lab's schema,
        // with other options, is migrated on its own).
        ...(opts.migrate !== false && opts.migrationOptions?.stockBackstop !== false ? { pgliteSchema: defaultPgliteSchema() } : {}),
        ...(opts.pgliteBuildTemplate ? { pgliteBuildTemplate: opts.pgliteBuildTemplate } : {}),
        onPoolError: opts.onPoolError,
      });
      // A server database is connected to lazily: connect now, so that an unreachable one is
      // reported as such, before anything else.
      if (c.dialect !== 'pglite') {
        try {
          await sql`SELECT 1`.execute(c.db);
        } catch (err) {
          await c.db.destroy().catch(() => undefined);
          throw unreachable(err, database);
        }
      }
      return c;
    }, (c) => {
      const p = c.pglite;
      if (p?.opened === 'spare') return `new: a ready copy of the template ${p.template}, moved into place`;
      if (p?.opened === 'template') return `new: a copy of the template ${p.template}`;
      if (p?.opened !== 'initdb') return undefined;
      return p.cacheDir === null ? 'new: initialised by initdb (ALLOT_CACHE_DIR=off: no template)' : 'new: initialised by initdb (no template yet: the next new data dir will be a copy)';
    });
    try {
      const report = opts.migrate === false
        ? { applied: [] }
        : await step('migrating the schema', () => migrateToLatest(conn, opts.migrationOptions).catch((err: unknown) => {
          throw unreachable(err, database);
        }), (r) => (r.applied.length === 0 ? 'up to date' : `applied ${r.applied.join(', ')}`));
      const metrics = createMetrics();
      const locksUrl = opts.config.locksUrl;
      const lockOpts = { conn, url: locksUrl, databaseUrl: opts.config.databaseUrl, prefix: opts.config.lockPrefix, whenDown: opts.config.locksDown, registry: metrics.registry };
      const locks = await (locksUrl
        ? step(`connecting to the lock backend (${maskUrl(locksUrl)})`, () => openLocks(lockOpts).catch((err: unknown) => {
          throw new AllotError('UNAVAILABLE', `${String((err as Error)?.message ?? err).replace(/\.$/, '')}; check LOCKS_URL / REDIS_URL and that the lock backend is up`, { backend: 'locks' }, { cause: err });
        }))
        : openLocks(lockOpts));
      const store = new SqlClaimStore(conn, { batchOneStatement: opts.groupCommit?.oneStatement ?? !opts.config.groupCommitTransactional });
      const keys = new SqlIdempotencyStore(conn.db, sqlDialect(conn.family));
      const rail = opts.rail ?? railFromConfig(opts.config);
      return new AllotService(store, keys, conn, locks, metrics, opts, opts.clock ?? systemClock, opts.ids ?? randomIds, report, rail);
    } catch (err) {
      await conn.db.destroy().catch(() => undefined);
      throw err;
    }
  }

  /** A new embedded data dir: prepares what the next one is made from. Made from a template: a
   * spare copy of it, so that the next is moved into place rather than copied (about a second on
   * a slow disk). Initialised in place (no template yet): the template and a spare, built in
   * another process. `allot serve` runs it in the background once it listens. */
  async prepareNextDataDir(signal?: AbortSignal): Promise<void> {
    const p = this.conn.pglite;
    if (p?.template !== undefined) await preparePgliteSpare(p.template, signal);
    else if (p?.opened === 'initdb' && p.cacheDir !== null) await buildPgliteTemplatesInBackground(p.cacheDir, signal);
  }

  /** The system of record's query handle (the race lab reads its snapshot through it). */
  get db(): SqlConnection['db'] {
    return this.conn.db;
  }

  get displayUrl(): string {
    return this.conn.displayUrl;
  }

  async createCampaign(input: NewCampaign): Promise<Campaign> {
    const strategyName = input.strategy ?? this.opts.config.defaultStrategy;
    const strategy = this.strategies.get(strategyName);
    if (!strategy) throw new AllotError('VALIDATION_FAILED', `unknown strategy "${strategyName}"`);
    if (!strategy.safe && !this.opts.config.allowUnsafeStrategies) throw new AllotError('UNSAFE_STRATEGY');
    if (strategyName === REDIS_LOCK_STRATEGY && this.locks.missing !== null) throw new AllotError('VALIDATION_FAILED', this.locks.missing, { field: 'strategy' });
    if (strategyName === REDIS_ATOMIC_STRATEGY) {
      if (redisAtomicUrl(this.opts.redisAtomic, this.opts.config.locksUrl) === null) throw new AllotError('VALIDATION_FAILED', 'redis-atomic needs Redis: set REDIS_URL (or a redis:// LOCKS_URL)', { field: 'strategy' });
      if (input.kind === 'lottery') throw new AllotError('VALIDATION_FAILED', 'redis-atomic does not draw lotteries (coupon campaigns only): choose another strategy for a lottery', { field: 'strategy' });
    }
    if (input.id !== undefined && !ID_REGEX.test(input.id)) throw new AllotError('VALIDATION_FAILED', 'id must be 1-128 characters from [A-Za-z0-9_.:-]');
    const id = input.id ?? this.ids.next('cmp_');
    // A lottery's secret seed: 32 random bytes, committed to by its SHA-256 in the campaign view.
    const seed = input.kind === 'lottery' ? randomBytes(32).toString('hex') : null;
    const campaign = buildCampaign(input, id, strategyName, this.clock.now(), seed ?? undefined);
    if (!(await this.store.insertCampaign(campaign, seed))) throw new AllotError('CAMPAIGN_EXISTS', undefined, { id });
    return campaign;
  }

  /** Adds stock to a coupon campaign or to one prize of a lottery; safe beside concurrent claims. */
  async addStock(id: string, add: { prizeId?: string | undefined; add: number }): Promise<Campaign> {
    const c = await this.getCampaign(id);
    if (!Number.isSafeInteger(add.add) || add.add < 1 || add.add > MAX_STOCK) throw new AllotError('VALIDATION_FAILED', `add must be a whole number from 1 to ${MAX_STOCK}`, { field: 'add' });
    if (c.kind === 'lottery' && add.prizeId === undefined) throw new AllotError('VALIDATION_FAILED', 'a lottery has stock per prize: name the prize with "prizeId"', { field: 'prizeId' });
    if (c.kind === 'coupon' && add.prizeId !== undefined) throw new AllotError('VALIDATION_FAILED', 'a coupon campaign has no prizes: leave out "prizeId"', { field: 'prizeId' });
    const prizeId = add.prizeId ?? null;
    // A lottery's total (the sum over prizes) must stay within bounds too.
    const max = c.kind === 'lottery' ? MAX_STOCK - (c.stock - (c.prizes.find((p) => p.id === prizeId)?.stock ?? 0)) : MAX_STOCK;
    const r = await this.store.addStock({ campaignId: id, prizeId }, add.add, max);
    if (r === 'not_found') throw prizeId === null ? new AllotError('CAMPAIGN_NOT_FOUND', undefined, { id }) : new AllotError('PRIZE_NOT_FOUND', undefined, { id: prizeId, campaignId: id });
    if (r === 'too_much') throw new AllotError('VALIDATION_FAILED', `the stock would pass ${MAX_STOCK}`, { field: 'add' });
    this.engine.invalidate(id);
    return this.getCampaign(id);
  }

  /** Pauses or resumes claims (idempotent). Other instances see it within a second. */
  async setPaused(id: string, paused: boolean): Promise<Campaign> {
    if (!(await this.store.setPaused(id, paused))) throw new AllotError('CAMPAIGN_NOT_FOUND', undefined, { id });
    this.engine.invalidate(id);
    return this.getCampaign(id);
  }

  /** Reveals a lottery's seed (an admin call; also automatic once the campaign has ended). */
  async revealSeed(id: string): Promise<{ campaignId: string; seed: string; seedCommitment: string; revealedAt: string }> {
    const c = await this.getCampaign(id);
    if (c.kind !== 'lottery') throw new AllotError('VALIDATION_FAILED', 'only a lottery has a seed to reveal', { id });
    await this.store.revealSeed(id, this.clock.now());
    const s = (await this.store.getSeed(id))!;
    return { campaignId: id, seed: s.seed, seedCommitment: c.seedCommitment ?? '', revealedAt: new Date(s.revealedAt ?? this.clock.now()).toISOString() };
  }

  /** What an outsider needs to recompute a lottery claim's draw; SEED_NOT_REVEALED before the
   * seed is revealed (admin call, or the campaign's end). */
  async drawProof(claimId: string): Promise<DrawProof> {
    const claim = await this.getClaim(claimId);
    const c = await this.getCampaign(claim.campaignId);
    if (c.kind !== 'lottery') throw new AllotError('VALIDATION_FAILED', 'only a lottery draw has a proof: this claim is a coupon', { id: claimId });
    let s = await this.store.getSeed(c.id);
    if (s && s.revealedAt === null && c.endsAt !== null && this.clock.now() >= c.endsAt) {
      await this.store.revealSeed(c.id, this.clock.now());
      s = await this.store.getSeed(c.id);
    }
    if (!s || s.revealedAt === null) throw new AllotError('SEED_NOT_REVEALED', undefined, { campaignId: c.id, seedCommitment: c.seedCommitment });
    const raw = await this.store.getDraw(claimId);
    const draw = raw === null ? { attempts: [], fallback: false } : (JSON.parse(raw) as DrawRecord);
    return { campaignId: c.id, claimId, seedCommitment: c.seedCommitment ?? '', seed: s.seed, attempts: draw.attempts, prizeId: claim.prizeId, fallback: draw.fallback };
  }

  async getCampaign(id: string): Promise<Campaign> {
    const c = await this.store.getCampaign(id);
    if (!c) throw new AllotError('CAMPAIGN_NOT_FOUND', undefined, { id });
    return c;
  }

  async listCampaigns(limit: number, cursor: string | null): Promise<Page<Campaign>> {
    return toPage(await this.store.listCampaigns(limit, decodeCursor(cursor)), limit);
  }

  claim(campaignId: string, userId: string, idempotencyKey: string | null, signal?: AbortSignal): Promise<ClaimOutcome> {
    return this.engine.claim(campaignId, userId, idempotencyKey, signal);
  }

  async listClaims(campaignId: string, userId: string | null, limit: number, cursor: string | null): Promise<Page<Claim>> {
    await this.getCampaign(campaignId);
    return toPage(await this.store.listClaims(campaignId, userId, limit, decodeCursor(cursor)), limit);
  }

  async getClaim(id: string): Promise<Claim> {
    const c = await this.store.getClaim(id);
    if (!c) throw new AllotError('CLAIM_NOT_FOUND', undefined, { id });
    return c;
  }

  async audit(campaignId: string): Promise<{ ok: boolean; checks: AuditCheck[] }> {
    await this.getCampaign(campaignId);
    const checks = await this.store.audit(campaignId);
    return { ok: checks.every((c) => c.ok), checks };
  }

  /** Deletes idempotency keys older than `olderThanMs` (at least 24 h, the API's promise), in
   * batches; returns how many. */
  async purgeIdempotencyKeys(olderThanMs: number, onProgress?: (deleted: number) => void): Promise<number> {
    if (olderThanMs < MIN_KEY_RETENTION_MS) throw new AllotError('VALIDATION_FAILED', 'idempotency keys are kept at least 24 h; choose an age of 24h or more');
    const now = this.clock.now();
    let total = 0;
    for (;;) {
      const n = await this.keys.purge(now - olderThanMs, now, 5000);
      total += n;
      onProgress?.(total);
      if (n < 5000) return total;
    }
  }

  /** Whether this instance can serve (/readyz): 'ready', or 'degraded' while the lock backend is
   * down and LOCKS_DOWN=degrade (lock-based strategies run with the database guard only). Throws
   * AllotError UNAVAILABLE (details.backends) when the database does not answer, or the lock
   * backend does not and LOCKS_DOWN=refuse. */
  async ready(): Promise<{ status: 'ready' | 'degraded'; backends: { database: 'ok'; locks: LocksHealth } }> {
    const [dbError, locks] = await Promise.all([this.store.ping().then(() => null, (err: unknown) => err ?? new Error('database ping failed')), this.locks.health()]);
    if (dbError !== null) throw new AllotError('UNAVAILABLE', 'The database does not answer.', { backends: { database: 'down', locks } }, { cause: dbError });
    if (locks === 'down' && this.locks.whenDown === 'refuse') {
      throw new AllotError('UNAVAILABLE', `The lock backend (${this.locks.kind}) does not answer, and LOCKS_DOWN=refuse: lock-based claims are refused until it returns.`, { backends: { database: 'ok', locks } });
    }
    return { status: locks === 'down' ? 'degraded' : 'ready', backends: { database: 'ok', locks } };
  }

  async close(): Promise<void> {
    // redis-atomic gives its leases' unused units back while the database is still open.
    await (this.strategies.get(REDIS_ATOMIC_STRATEGY) as RedisAtomicStrategy | undefined)?.close().catch(() => undefined);
    await this.keyPurge?.close();
    await this.payouts.close().catch(() => undefined);
    await this.locks.close().catch(() => undefined);
    await this.store.close();
  }
}

/** A database error at start-up: UNAVAILABLE (exit 69 from the CLI) when it cannot be reached. */
function unreachable(err: unknown, database: string): unknown {
  if (err instanceof AllotError || !isUnavailable(err)) return err;
  return new AllotError('UNAVAILABLE', `cannot reach the database (${database}): ${String((err as Error)?.message ?? err).replace(/\.$/, '')}; check DATABASE_URL and that the server is up`, { backend: 'database' }, { cause: err });
}

/** A full page has a cursor (the last id, opaque); a short one is the last. */
function toPage<T extends { id: string }>(items: T[], limit: number): Page<T> {
  const last = items[items.length - 1];
  return { items, nextCursor: items.length === limit && last ? Buffer.from(last.id, 'utf8').toString('base64url') : null };
}

function decodeCursor(cursor: string | null): string | null {
  if (cursor === null) return null;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!ID_REGEX.test(id)) throw new AllotError('VALIDATION_FAILED', 'cursor is not one this server returned', { field: 'cursor' });
  return id;
}
